"""Train the Visual Clean classifier (ResNet-18 or ResNet-50) on a folder-per-label data set.

Built for a 2-core CPU: the images are decoded once, cover-resized a little larger than the
model input and kept in memory as uint8, so an epoch costs only the network's forward/backward
passes. Each training sample is a random crop of 89-100 % of that frame resized to the input (the
evaluation's full view is one of those crops), a horizontal flip, and brightness / contrast /
white-balance jitter that mimic what a duct camera varies. The loss weights the classes by
inverse frequency (field sets are rarely balanced), the best validation epoch is kept, and
training stops early when validation stops improving.

Training starts from the shipped model by default (offline: its weights are rebuilt from the
committed int8 file, see :mod:`models.warm_start`), so a few hundred field images adapt it
instead of teaching a network from nothing; ``--from-scratch`` opts out, ``--init-from FILE``
starts from another exported model or a torchvision-format checkpoint.

``python -m models.train DATA_DIR --out build/visual_clean/resnet18.pt``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agent.vision import LABELS, ModelError
from agent.vision.factory import shipped_model_path
from models.batches import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRAIN_ZOOM,
    batch_loss,
    class_weights,
    image_batch,
    load_images,
    training_views,
)
from models.cli import run
from models.dataset import describe
from models.deposit_maps import (
    DEPOSIT_HEAD_KEY,
    DepositHead,
    load_deposit_head,
    training_masks,
)
from models.folders import class_counts, scan
from models.frozen_stem import head_outputs, merged, stem_features, train_head, with_mirrors
from models.resnet import ResNet, build_model, load_backbone_weights
from models.train_options import SHIPPED, TrainConfig, add_train_arguments, config_from_args

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass(slots=True)
class TrainResult:
    checkpoint: Path
    best_epoch: int
    best_val_accuracy: float
    seconds: float
    history: list[EpochRecord] = field(default_factory=list)


def _evaluate(
    model: nn.Module,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    size: tuple[int, int],
    loss_fn: nn.Module,
) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), 64):
            indices = np.arange(start, min(start + 64, len(images)))
            logits = model(image_batch(images, indices, size, None))
            target = torch.from_numpy(labels[indices])
            total_loss += float(loss_fn(logits, target)) * len(indices)
            correct += int((logits.argmax(1) == target).sum())
    return total_loss / max(1, len(images)), correct / max(1, len(images))


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s weights that later optimiser steps leave alone."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train(data_dir: Path, checkpoint: Path, config: TrainConfig) -> TrainResult:
    """Train, keep the best validation epoch, write ``checkpoint`` (a torch file)."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.monotonic()
    data = scan(data_dir)
    source = start_from(config)  # a wrong path ends here, not after the images are loaded
    logger.info("train %s", data.summary())
    size = config.input_size
    train_images, train_labels = load_images(data.split("train"), size, TRAIN_ZOOM)
    val_images, val_labels = load_images(data.split("val"), size)
    train_masks = training_masks(
        data_dir, data.split("train"), [image.shape for image in train_images]
    )
    counts = class_counts(data.split("train"))
    logger.info(
        "train data=%s train=%s val=%d load_s=%.1f",
        data_dir,
        dict(zip(LABELS, counts, strict=True)),
        len(val_images),
        time.monotonic() - started,
    )
    model = build_model(config.arch, len(LABELS), config.pool)
    initialise(model, source, config, train_images, size)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train_labels, config.synthetic_dirt))
    plain_loss = nn.CrossEntropyLoss()
    use_maps = train_masks is not None and config.deposit_maps and config.arch == "resnet18"
    deposit_head = DepositHead() if use_maps else None
    parameters = list(model.parameters())
    if deposit_head is not None:
        continued = load_deposit_head(deposit_head, config.init_from)
        parameters += list(deposit_head.parameters())
        logger.info(
            "deposit maps: %d of %d training images, head %s",
            sum(m is not None for m in train_masks or []),
            len(train_images),
            f"continued from {config.init_from}" if continued else "new",
        )
    optimiser = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_images) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=max(total_steps, 2), pct_start=0.15
    )
    best_state: dict[str, torch.Tensor]
    best_head: dict[str, torch.Tensor] | None = None
    history: list[EpochRecord]
    if config.freeze_stem:
        best_state, record = _fit_frozen_stem(
            model, (train_images, train_labels), (val_images, val_labels), config, rng
        )
        history = [record]
        best, best_epoch = (record.val_accuracy, record.val_loss), config.epochs
    else:
        best_state = {}
        best = (-1.0, math.inf)  # (val accuracy, -val loss) ordering, see below
        best_epoch, stale, step = 0, 0, 0
        history = []
        for epoch in range(1, config.epochs + 1):
            epoch_started = time.monotonic()
            model.train()
            order = rng.permutation(len(train_images))
            seen, correct, running = 0, 0, 0.0
            for start in range(0, len(order), config.batch_size):
                indices = order[start : start + config.batch_size]
                if len(indices) < 2:  # BatchNorm needs more than one sample
                    continue
                views = training_views(
                    train_images,
                    train_masks if deposit_head is not None else None,
                    indices,
                    size,
                    rng,
                    config.augment,
                    train_labels,
                    config.synthetic_dirt,
                )
                target = views.targets
                loss, logits = batch_loss(model, deposit_head, views, loss_fn, config.bf16)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                step += 1
                if step < total_steps:
                    scheduler.step()
                seen += len(indices)
                running += loss.item() * len(indices)
                correct += int((logits.argmax(1) == target).sum())
                if config.max_steps and step >= config.max_steps:
                    break
            val_loss, val_accuracy = _evaluate(model, val_images, val_labels, size, plain_loss)
            record = EpochRecord(
                epoch,
                running / max(1, seen),
                correct / max(1, seen),
                val_loss,
                val_accuracy,
                time.monotonic() - epoch_started,
            )
            history.append(record)
            print(
                f"epoch {epoch:2d}/{config.epochs}  train_loss {record.train_loss:.4f}"
                f"  train_acc {record.train_accuracy:.3f}  val_loss {val_loss:.4f}"
                f"  val_acc {val_accuracy:.3f}  {record.seconds:.0f}s",
                flush=True,
            )
            # Higher accuracy wins; at equal accuracy the lower loss (better calibrated) wins.
            if (val_accuracy, -val_loss) > (best[0], -best[1]):
                best = (val_accuracy, val_loss)
                best_epoch, stale = epoch, 0
                best_state = _snapshot(model)
                best_head = None if deposit_head is None else _snapshot(deposit_head)
            else:
                stale += 1
            if stale >= config.patience:
                print(f"early stop: no validation improvement for {stale} epochs", flush=True)
                break
            if config.max_steps and step >= config.max_steps:
                break
    seconds = time.monotonic() - started
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "arch": config.arch,
            "state_dict": best_state,
            DEPOSIT_HEAD_KEY: best_head,
            "input_size": list(size),
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "labels": list(LABELS),
            "best_epoch": best_epoch,
            "best_val_accuracy": best[0],
            "train_seconds": seconds,
            "training_data": describe(data_dir),
            "config": asdict(config),
            "history": [asdict(r) for r in history],
        },
        checkpoint,
    )
    logger.info("checkpoint written path=%s best_epoch=%d", checkpoint, best_epoch)
    return TrainResult(checkpoint, best_epoch, best[0], seconds, history)


def start_from(config: TrainConfig) -> Path | None:
    """The file ``config.init_from`` names (``None``: from scratch); it must exist."""
    if not config.init_from:
        return None
    source = shipped_model_path() if config.init_from == SHIPPED else Path(config.init_from)
    if not source.is_file():
        raise ModelError(
            "no such model or checkpoint to start from (give --init-from an existing .pt or"
            " .onnx file, or --from-scratch)",
            path=source,
        )
    return source


def initialise(
    model: ResNet,
    source: Path | None,
    config: TrainConfig,
    images: Sequence[np.ndarray],
    size: tuple[int, int],
) -> None:
    """Load the starting weights from ``source`` (:func:`start_from`; nothing: from scratch)."""
    from models.warm_start import load_shipped_weights, recalibrate_batchnorm

    if source is None:
        return
    if source.suffix.lower() != ".onnx":
        load_backbone_weights(model, source)
        return
    try:
        load_shipped_weights(model, source)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; start a {config.arch} with --from-scratch or --init-from a matching model"
        ) from None
    order = np.random.default_rng(config.seed).permutation(len(images))[:256]
    batches = (image_batch(images, order[i : i + 64], size, None) for i in range(0, len(order), 64))
    measured = recalibrate_batchnorm(model, batches)
    logger.info("init_from model=%s batchnorm_recalibrated_on=%d", source, measured)


def _fit_frozen_stem(
    model: ResNet,
    train_set: tuple[Sequence[np.ndarray], np.ndarray],
    val_set: tuple[Sequence[np.ndarray], np.ndarray],
    config: TrainConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, torch.Tensor], EpochRecord]:
    """Train ``layer4`` + ``fc`` on cached ``layer3`` maps (see :mod:`models.frozen_stem`)."""
    started = time.monotonic()
    size = config.input_size
    images, labels = train_set
    chunks = [np.arange(i, min(i + 64, len(images))) for i in range(0, len(images), 64)]
    batches = [
        image_batch(images, chunk, size, rng, config.augment)
        for _ in range(config.views)
        for chunk in chunks
    ]
    stems, stem_labels = with_mirrors(
        stem_features(model, batches), np.concatenate([labels] * config.views)
    )
    val_images, val_labels = val_set
    val_chunks = [np.arange(i, min(i + 64, len(val_images))) for i in range(0, len(val_images), 64)]
    val_stems = stem_features(model, [image_batch(val_images, c, size, None) for c in val_chunks])
    print(f"stem maps cached: {len(stems)} views in {time.monotonic() - started:.0f}s", flush=True)
    head = train_head(
        model,
        stems,
        stem_labels,
        epochs=config.epochs,
        lr=config.lr,
        weight_decay=config.weight_decay,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    train_logits, _ = head_outputs(head, stems)
    val_logits, _ = head_outputs(head, val_stems)
    loss_fn = nn.CrossEntropyLoss()
    record = EpochRecord(
        config.epochs,
        float(loss_fn(torch.from_numpy(train_logits), torch.from_numpy(stem_labels))),
        float((train_logits.argmax(1) == stem_labels).mean()),
        float(loss_fn(torch.from_numpy(val_logits), torch.from_numpy(val_labels))),
        float((val_logits.argmax(1) == val_labels).mean()),
        time.monotonic() - started,
    )
    print(
        f"frozen stem, {config.epochs} epochs: train_acc {record.train_accuracy:.3f}"
        f"  val_loss {record.val_loss:.4f}  val_acc {record.val_accuracy:.3f}"
        f"  {record.seconds:.0f}s",
        flush=True,
    )
    return merged(model, head).state_dict(), record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    parser.add_argument(
        "data_dir", type=Path, help="folder-per-label data set (with or without splits)"
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(lambda: _main(args), parser.prog)


def _main(args: argparse.Namespace) -> int:
    result = train(args.data_dir, args.out, config_from_args(args))
    summary: dict[str, Any] = {
        "checkpoint": str(result.checkpoint),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "seconds": round(result.seconds, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
