"""Fine-tuning with a frozen stem: only ``layer4`` and the head learn, on cached features.

A full ResNet-18 fine-tune at 144 x 192 costs about 0.15 s of CPU per image and epoch, three
quarters of it in the layers before ``layer4``. Starting from the shipped model, its layers up
to ``layer3`` already see edges, blobs and textures; what must change for new deposits, materials
and lights is mostly how ``layer4`` and the head combine them. So the stem (``conv1`` ..
``layer3``) runs once per training image (augmented views, each also mirrored: ``layer3`` outputs
are nearly flip-equivariant, so mirroring the cached maps is a second view for free), and the
epochs train ``layer4`` + ``fc`` on those cached maps: several times cheaper than a full fine-tune.

Measured (models/MODEL_CARD.md): from the previous model on the randomised renderer's 3000 images
this reached only 0.635 validation accuracy in 2 epochs: the previous model's ``layer3`` does not
carry what the new deposits need. Use it to adapt to data close to what the model knows.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from agent.vision import LABELS
from models.resnet import ResNet

FLOAT = torch.float16
"""Cached maps are stored in half precision: 55 kB an image at 144 x 192."""


def stem_features(
    model: ResNet, batches: Sequence[torch.Tensor], frozen_blocks: int = 0
) -> torch.Tensor:
    """``layer3`` outputs (and of the first ``frozen_blocks`` blocks of ``layer4``) of the given
    normalised input batches, as one half-precision tensor."""
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [model.layer4[:frozen_blocks](model.stem(batch)).to(FLOAT) for batch in batches]
        )


def with_mirrors(stems: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The cached maps and their left-right mirror images (same labels)."""
    return torch.cat([stems, torch.flip(stems, dims=[3])]), np.concatenate([labels, labels])


class Head(nn.Module):
    """``layer4`` (less its first ``frozen_blocks`` blocks) + pooling + ``fc`` of a ResNet: what a
    frozen-stem run trains."""

    def __init__(self, model: ResNet, frozen_blocks: int = 0) -> None:
        super().__init__()
        self.frozen_blocks = frozen_blocks
        self.layer4 = copy.deepcopy(model.layer4[frozen_blocks:])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = copy.deepcopy(model.fc)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.layer4(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(self.features(x))
        return logits


def head_outputs(head: Head, stems: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Logits and penultimate features of cached maps (evaluation mode)."""
    head.eval()
    logits, features = [], []
    with torch.no_grad():
        for start in range(0, len(stems), 128):
            f = head.features(stems[start : start + 128].float())
            features.append(f)
            logits.append(head.fc(f))
    return torch.cat(logits).numpy(), torch.cat(features).numpy()


def one_cycle(
    module: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    per_epoch: int,
    batch_size: int = 32,
) -> Callable[[torch.Tensor], None]:
    """An optimiser step for ``module``'s loss: AdamW on a one-cycle schedule (15 % warm-up)."""
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    total = max(2, epochs * math.ceil(per_epoch / batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=total, pct_start=0.15
    )
    taken = [0]

    def step(loss: torch.Tensor) -> None:
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        taken[0] += 1
        if taken[0] < total:
            scheduler.step()

    return step


def train_head(
    base: ResNet,
    stems: torch.Tensor,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 1234,
    frozen_blocks: int = 0,
) -> Head:
    """Fine-tune ``layer4`` + ``fc`` of ``base`` on cached maps: class-weighted cross-entropy,
    one-cycle AdamW. ``base`` itself is not modified."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = Head(base, frozen_blocks)
    counts = np.bincount(labels, minlength=len(LABELS))
    weights = torch.tensor([len(labels) / (len(LABELS) * max(1, int(c))) for c in counts])
    loss_fn = nn.CrossEntropyLoss(weight=weights.float())
    step = one_cycle(
        head,
        lr=lr,
        weight_decay=weight_decay,
        epochs=epochs,
        per_epoch=len(labels),
        batch_size=batch_size,
    )
    targets = torch.from_numpy(labels)
    for _ in range(epochs):
        head.train()
        order = rng.permutation(len(labels))
        for start in range(0, len(order), batch_size):
            indices = torch.from_numpy(order[start : start + batch_size])
            if len(indices) < 2:  # BatchNorm needs more than one sample
                continue
            step(loss_fn(head(stems[indices].float()), targets[indices]))
    return head


def merged(base: ResNet, head: Head) -> ResNet:
    """A full ResNet: ``base``'s stem with the trained ``layer4`` and ``fc``."""
    model = copy.deepcopy(base)
    model.layer4[head.frozen_blocks :].load_state_dict(head.layer4.state_dict())
    model.fc.load_state_dict(head.fc.state_dict())
    return model
