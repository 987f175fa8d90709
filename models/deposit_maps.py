"""Deposit maps: a second, dense training signal from the renderer's deposit masks.

A clean/dirty label says only *whether* a duct is dirty: one bit per image, and on a 2-core CPU
a few thousand images are not enough for a network to find out from that bit alone that small
blobs of any colour, on any wall, are what matters (trained so, it stayed near chance). A
generated set also knows *where* the deposits are (:data:`models.dataset.MASKS_FILE`: the pixels
that differ from the same duct rendered clean). During training a 1x1 convolution on the
``layer3`` maps predicts, for each 16 x 16 pixel cell of the input, whether it shows a deposit;
its loss teaches the backbone what a deposit looks like on every cell of every image. The head is
dropped at export: the shipped network, its size and its latency are unchanged. Its weights stay
in the training checkpoint, so that a later stage started from that checkpoint continues it.

Clean images have empty maps; a dirty image without a mask (a field set) adds no map loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from agent.vision import CLEAN, LABELS
from models.dataset import load_masks
from models.folders import Sample

GRID_STRIDE = 16
"""Input pixels per ``layer3`` cell of a ResNet (stride 2 x maxpool 2 x layer2 2 x layer3 2)."""
FULL_SHARE = 0.05
"""A cell whose pixels show a deposit for this share or more counts as a deposit cell."""
MAP_WEIGHT = 1.0
"""Weight of the map loss beside the clean/dirty cross-entropy."""
DEPOSIT_HEAD_KEY = "deposit_head"
"""Checkpoint key of the head's weights (None in a checkpoint trained without maps)."""

Mask = np.ndarray


def training_masks(
    root: Path, samples: Sequence[Sample], shapes: Sequence[tuple[int, ...]]
) -> list[Mask | None] | None:
    """Per sample, its deposit mask as uint8 at ``shapes[i]`` (height, width, ...): zeros for a
    clean image, None for a dirty one without a mask. None when the set has no masks at all."""
    stored = load_masks(root)
    if not stored:
        return None
    clean = LABELS.index(CLEAN)
    out: list[Mask | None] = []
    for sample, shape in zip(samples, shapes, strict=True):
        height, width = shape[:2]
        if sample.label == clean:
            out.append(np.zeros((height, width), np.uint8))
            continue
        mask = stored.get(sample.path.relative_to(root).as_posix())
        out.append(
            None
            if mask is None
            else np.asarray(cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR))
        )
    return out


def cell_targets(mask: Mask, size: tuple[int, int]) -> np.ndarray:
    """A (cropped, flipped) mask as the ``layer3`` grid of an input of ``size``: 0..1 per cell."""
    rows, cols = -(-size[0] // GRID_STRIDE), -(-size[1] // GRID_STRIDE)
    share = cv2.resize(mask.astype(np.float32) / 255.0, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.asarray(np.clip(share / FULL_SHARE, 0.0, 1.0), np.float32)


class DepositHead(nn.Module):
    """Training-only head: a deposit logit per ``layer3`` cell."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, stem: Tensor) -> Tensor:
        out: Tensor = self.conv(stem)[:, 0]
        return out


def load_deposit_head(head: DepositHead, init_from: str) -> bool:
    """Continue ``head`` from the checkpoint ``init_from`` names, when it is a torch checkpoint
    that kept one: a warm start then keeps what the map already learned. False otherwise (no
    ``init_from``, an ONNX model, or a checkpoint trained without maps)."""
    source = Path(init_from) if init_from else None
    if source is None or source.suffix.lower() != ".pt" or not source.is_file():
        return False
    state = torch.load(source, map_location="cpu", weights_only=True)
    saved = state.get(DEPOSIT_HEAD_KEY) if isinstance(state, dict) else None
    if not saved:
        return False
    head.load_state_dict(saved)
    return True


def map_loss(logits: Tensor, targets: Tensor, known: Tensor) -> Tensor:
    """Mean binary cross-entropy over the cells of the images whose map is ``known``."""
    if not bool(known.any()):
        return logits.sum() * 0.0
    per_cell = nn.functional.binary_cross_entropy_with_logits(
        logits[known], targets[known], reduction="mean"
    )
    return per_cell
