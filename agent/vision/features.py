"""The model's raw outputs for a list of image files: what calibration and adaptation fit on.

Images go through the runtime's own decoding and pre-processing (:meth:`OnnxClassifier.outputs`),
so what is fitted here is what the board computes later. One image at a time: the shipped model's
batch dimension is 1, and it keeps the memory of a 100-image adapt run flat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agent.vision import ModelError
from agent.vision.calibration import FEATURES_OUTPUT, Floats
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.preprocess import load_image, to_model_input


def model_outputs(
    classifier: OnnxClassifier,
    paths: Sequence[Path],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Floats, Floats]:
    """The model's own logits [N, 2] and its features [N, D] (head and calibration not applied).

    :class:`ModelError` when the model has no ``features`` output; ImageError for an unreadable
    file (callers that tolerate bad files filter them first).
    """
    manifest = classifier.manifest
    logits = np.zeros((len(paths), len(manifest.labels)))
    features: Floats | None = None
    for index, path in enumerate(paths):
        image = load_image(path, min_short_side=min(manifest.input_size))
        tensor = to_model_input(image, manifest.input_size, manifest.mean, manifest.std)
        row_logits, row_features = classifier.outputs(tensor)
        if row_features is None:
            raise ModelError(
                f"the model has no {FEATURES_OUTPUT!r} output to fit on", path=classifier.model_path
            )
        if features is None:
            features = np.zeros((len(paths), row_features.shape[-1]))
        logits[index] = row_logits.reshape(-1)
        features[index] = row_features.reshape(-1)
        if progress is not None:
            progress(index + 1, len(paths))
    return logits, features if features is not None else np.zeros((0, 0))
