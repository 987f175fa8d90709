"""Decoded images into the network's batches, the same way for every trainer.

:mod:`models.train` and :mod:`models.lofo` both train on images decoded once and kept in memory
as uint8; this module turns them into normalised tensors: a centre view for evaluation, or a
random crop, flip and photometric jitter (plus the camera augmentations of
:mod:`models.augment`) for training, with each view's deposit map cut the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import nn

from agent.vision import CLEAN, DIRTY, LABELS
from agent.vision.preprocess import centre_crop, load_image, normalise, resize_to_cover
from models.augment import camera_augment
from models.deposit_maps import MAP_WEIGHT, DepositHead, cell_targets, map_loss
from models.folders import Sample
from models.resnet import ResNet
from models.synthetic_dirt import paint_deposit

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet statistics: right for a torchvision-initialised backbone, harmless from scratch;
the manifest carries them to the runtime."""

CLEAN_INDEX, DIRTY_INDEX = LABELS.index(CLEAN), LABELS.index(DIRTY)

TRAIN_ZOOM = 1.125
"""Training frames are kept this much larger than the input, room for the random crops."""


def load_images(
    samples: Sequence[Sample], size: tuple[int, int], zoom: float = 1.0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Decode and cover-resize every sample to ``zoom`` x ``size`` (uint8 BGR)."""
    target = (round(size[0] * zoom), round(size[1] * zoom))
    images = [
        resize_to_cover(load_image(s.path, min_short_side=min(target)), target) for s in samples
    ]
    labels = np.asarray([s.label for s in samples], dtype=np.int64)
    return images, labels


def image_batch(
    images: Sequence[np.ndarray],
    indices: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator | None,
    augment: bool = False,
) -> torch.Tensor:
    """Normalised NCHW batch; random crop + photometric jitter when ``rng`` is given, and the
    camera augmentations of :func:`models.augment.camera_augment` when ``augment`` is also set."""
    return training_views(images, None, indices, size, rng, augment).inputs


class Views(NamedTuple):
    """One training batch: inputs, with ``masks`` each view's deposit map and whether it has one,
    and the views' labels (a clean view painted with synthetic dirt is dirty; all zeros when no
    ``labels`` were given)."""

    inputs: torch.Tensor
    maps: torch.Tensor | None
    known: torch.Tensor | None
    targets: torch.Tensor


def training_views(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None,
    indices: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator | None,
    augment: bool = False,
    labels: np.ndarray | None = None,
    synthetic_dirt: float = 0.0,
) -> Views:
    """:func:`image_batch` plus, with ``masks``, each view's deposit map (cropped and flipped as the
    image was, see :mod:`models.deposit_maps`) and whether that image has one. With ``labels``
    and a ``synthetic_dirt`` share, that share of the clean training views gets a deposit of
    :mod:`models.synthetic_dirt` and becomes dirty (its map is the painted pixels)."""
    out = np.empty((len(indices), 3, size[0], size[1]), dtype=np.float32)
    maps: list[np.ndarray] = []
    known: list[bool] = []
    targets = np.zeros(len(indices), np.int64) if labels is None else labels[indices].copy()
    for row, index in enumerate(indices):
        image = images[int(index)]
        mask = None if masks is None else masks[int(index)]
        if rng is None:
            crop = centre_crop(resize_to_cover(image, size), size)
        else:
            height, width = image.shape[:2]
            scale = rng.uniform(1.0 / TRAIN_ZOOM, 1.0)
            crop_h, crop_w = round(height * scale), round(width * scale)
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            window = image[top : top + crop_h, left : left + crop_w]
            if mask is not None:
                mask = mask[top : top + crop_h, left : left + crop_w]
            # No draw at all without synthetic dirt: earlier runs' random streams stay as they were.
            if synthetic_dirt > 0 and targets[row] == CLEAN_INDEX and rng.random() < synthetic_dirt:
                window, painted = paint_deposit(np.ascontiguousarray(window), rng)
                targets[row] = DIRTY_INDEX
                mask = None if masks is None else painted
            crop = np.asarray(
                cv2.resize(window, (size[1], size[0]), interpolation=cv2.INTER_AREA), np.uint8
            )
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
                mask = None if mask is None else mask[:, ::-1]
            if augment:
                crop = camera_augment(np.ascontiguousarray(crop), rng)
            else:
                gain = rng.uniform(0.8, 1.2) * rng.uniform(0.94, 1.06, size=3)
                contrast = rng.uniform(0.8, 1.2)
                pixels = crop.astype(np.float32)
                mean = pixels.mean()
                pixels = (pixels - mean) * contrast + mean
                crop = np.clip(pixels * gain, 0, 255).astype(np.uint8)
        out[row] = normalise(np.ascontiguousarray(crop), IMAGENET_MEAN, IMAGENET_STD)[0]
        if masks is not None:
            known.append(mask is not None)
            empty = np.zeros(size, np.uint8)
            maps.append(cell_targets(np.ascontiguousarray(empty if mask is None else mask), size))
    inputs, views_targets = torch.from_numpy(out), torch.from_numpy(targets)
    if masks is None:
        return Views(inputs, None, None, views_targets)
    return Views(inputs, torch.from_numpy(np.stack(maps)), torch.tensor(known), views_targets)


def class_weights(labels: np.ndarray, synthetic_dirt: float = 0.0) -> torch.Tensor:
    """Cross-entropy weights that balance the labels the views will have: ``synthetic_dirt``
    of the clean ones turn dirty (see :func:`training_views`)."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    moved = counts[CLEAN_INDEX] * synthetic_dirt
    counts[CLEAN_INDEX] -= moved
    counts[DIRTY_INDEX] += moved
    return torch.tensor(len(labels) / (len(LABELS) * np.maximum(counts, 1.0)), dtype=torch.float32)


def batch_loss(
    model: ResNet,
    deposit_head: DepositHead | None,
    views: Views,
    loss_fn: nn.Module,
    bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss of one batch of :func:`training_views` (cross-entropy against the views'
    labels, plus the deposit-map loss when there is a head and maps) and the batch's logits."""
    inputs, maps, known, target = views
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        stem = model.stem(inputs)
        logits = model.fc(model.head_features(stem)).float()
        loss: torch.Tensor = loss_fn(logits, target)
        if deposit_head is not None and maps is not None and known is not None:
            loss = loss + MAP_WEIGHT * map_loss(deposit_head(stem).float(), maps, known)
    return loss, logits
