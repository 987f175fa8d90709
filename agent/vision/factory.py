"""Build the configured classifier from the ``[vision]`` section (:class:`VisionConfig`).

The section arrives validated, as the loader built it; the backends stay importable one by one
(onnxruntime and boto3 are imported only when their backend is built).
"""

from __future__ import annotations

from pathlib import Path

from agent.vision import Classifier, VisionError
from agent.vision.settings import (
    BACKENDS,
    SHIPPED_MODEL,
    RekognitionSettings,
    VisionConfig,
    shipped_model_path,
)

__all__ = [
    "BACKENDS",
    "SHIPPED_MODEL",
    "RekognitionSettings",
    "VisionConfig",
    "build_classifier",
    "shipped_model_path",
]


def build_classifier(vision: VisionConfig, *, retry_dir: Path | None = None) -> Classifier | None:
    """The classifier of ``vision.backend`` (``None`` for ``off``).

    The model's manifest must sit next to it. Snapshots the cloud could not take wait in
    ``retry_dir`` (no queue when None). Whatever the backend, the image-quality gate
    (:mod:`agent.vision.quality`) comes first unless ``vision.quality_gate`` is off: an unusable
    picture reaches no model.
    """
    classifier = _backend(vision, retry_dir)
    if classifier is None or not vision.quality_gate:
        return classifier
    from agent.vision.quality import QualityGatedClassifier

    return QualityGatedClassifier(classifier)


def _backend(vision: VisionConfig, retry_dir: Path | None) -> Classifier | None:
    if vision.backend == "off":
        return None
    if vision.backend in ("onnx", "cascade"):
        from agent.vision.onnx_backend import OnnxClassifier

        local = OnnxClassifier(vision.model, threads=vision.threads)
        if vision.backend == "onnx":
            return local
    from agent.vision.rekognition import RekognitionClassifier, RetryQueue

    cloud = RekognitionClassifier(
        vision.rekognition,
        retry_queue=RetryQueue(retry_dir) if retry_dir is not None else None,
    )
    if vision.backend == "rekognition":
        return cloud
    from agent.vision.cascade import CascadeClassifier

    try:
        return CascadeClassifier(
            local, cloud, uncertain_low=vision.uncertain_low, uncertain_high=vision.uncertain_high
        )
    except ValueError as exc:
        raise VisionError(f"[vision]: {exc}") from exc
