"""The model's raw outputs for a list of image files: what calibration and adaptation fit on.

Images go through the runtime's own decoding and pre-processing (:meth:`OnnxClassifier.outputs`),
so what is fitted here is what the board computes later. One image at a time: the shipped model's
batch dimension is 1, and it keeps the memory of an adapt run flat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.vision import ImageError, ModelError
from agent.vision.calibration import FEATURES_OUTPUT, Floats
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.preprocess import load_image, to_model_input


@dataclass(frozen=True, slots=True, eq=False)
class ModelOutputs:
    """Rows for the images that decoded, in input order; the others listed with why."""

    logits: Floats
    """The logits the model decides on [N, 2], before calibration."""
    features: Floats
    """[N, D]."""
    used: tuple[int, ...]
    """Index in the input list of each row."""
    skipped: tuple[tuple[Path, str], ...] = ()


def model_outputs(
    classifier: OnnxClassifier,
    paths: Sequence[Path],
    *,
    skip_unreadable: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ModelOutputs:
    """Run the model on every file. :class:`ModelError` when it has no ``features`` output;
    an undecodable file raises ImageError unless ``skip_unreadable`` lists it instead."""
    manifest = classifier.manifest
    logits: list[np.ndarray] = []
    features: list[np.ndarray] = []
    used: list[int] = []
    skipped: list[tuple[Path, str]] = []
    for index, path in enumerate(paths):
        try:
            image = load_image(path, min_short_side=min(manifest.input_size))
        except ImageError as exc:
            if not skip_unreadable:
                raise
            skipped.append((path, str(exc).removeprefix(f"{path}: ")))
            continue
        tensor = to_model_input(image, manifest.input_size, manifest.mean, manifest.std)
        row_logits, row_features = classifier.outputs(tensor)
        if row_features is None:
            raise ModelError(
                f"the model has no {FEATURES_OUTPUT!r} output to fit on", path=classifier.model_path
            )
        logits.append(row_logits.reshape(-1).astype(np.float64))
        features.append(row_features.reshape(-1).astype(np.float64))
        used.append(index)
        if progress is not None:
            progress(index + 1, len(paths))
    return ModelOutputs(
        np.stack(logits) if logits else np.zeros((0, len(manifest.labels))),
        np.stack(features) if features else np.zeros((0, 0)),
        tuple(used),
        tuple(skipped),
    )
