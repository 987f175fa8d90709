"""Build the configured classifier from plain values (the ``[vision]`` config section).

The config layer parses and validates the file; this module only needs the values, so it stays
testable without a config file and the backends stay importable one by one (onnxruntime and boto3
are imported only when their backend is built).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.vision import Classifier, VisionError

BACKENDS: tuple[str, ...] = ("onnx", "rekognition", "cascade", "off")
SHIPPED_MODEL = "visual_clean_resnet18_int8.onnx"
DEFAULT_THREADS = 1
DEFAULT_UNCERTAIN_BAND = (0.35, 0.65)


def shipped_model_path() -> Path:
    """The int8 ResNet-18 committed in ``models/`` (installed as package data)."""
    return Path(str(importlib.resources.files("models").joinpath(SHIPPED_MODEL)))


def rekognition_settings(values: Mapping[str, Any]) -> Any:
    """:class:`~agent.vision.rekognition.RekognitionSettings` from a ``[vision.rekognition]`` table.

    Keys: ``project_version_arn`` (required), ``region``, ``min_confidence`` (percent),
    ``label_map`` (table: project label -> clean/dirty), ``s3_bucket``, ``s3_prefix``,
    ``timeout_s``, and for tests ``endpoint_url``. Unknown keys are an error; ``None`` values
    mean "not set" (so ``dataclasses.asdict`` of the config section can be passed as it is).
    """
    from agent.vision.rekognition import RekognitionSettings

    allowed = {
        "project_version_arn",
        "region",
        "min_confidence",
        "label_map",
        "s3_bucket",
        "s3_prefix",
        "timeout_s",
        "endpoint_url",
    }
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise VisionError(
            f"[vision.rekognition]: unknown key(s) {unknown}; allowed {sorted(allowed)}"
        )
    if not values.get("project_version_arn"):
        raise VisionError("[vision.rekognition]: project_version_arn is required")
    kwargs = {k: v for k, v in values.items() if v is not None}
    if "label_map" in kwargs:
        kwargs["label_map"] = dict(kwargs["label_map"])
    try:
        return RekognitionSettings(**kwargs)
    except (TypeError, ValueError) as exc:
        raise VisionError(f"[vision.rekognition]: {exc}") from exc


def build_classifier(
    backend: str,
    *,
    model: Path | None = None,
    threads: int = DEFAULT_THREADS,
    rekognition: Mapping[str, Any] | None = None,
    uncertain_low: float = DEFAULT_UNCERTAIN_BAND[0],
    uncertain_high: float = DEFAULT_UNCERTAIN_BAND[1],
    retry_dir: Path | None = None,
) -> Classifier | None:
    """The classifier for ``backend`` (``None`` for ``off``).

    ``model`` defaults to the shipped model; its manifest must sit next to it. ``rekognition`` is
    the ``[vision.rekognition]`` table (see :func:`rekognition_settings`). Snapshots the cloud could
    not take wait in ``retry_dir`` (no queue when None). Whatever the backend, the image-quality
    gate (:mod:`agent.vision.quality`) comes first: an unusable picture reaches no model.
    """
    classifier = _backend(
        backend,
        model=model,
        threads=threads,
        rekognition=rekognition,
        uncertain_low=uncertain_low,
        uncertain_high=uncertain_high,
        retry_dir=retry_dir,
    )
    if classifier is None:
        return None
    from agent.vision.quality import QualityGatedClassifier

    return QualityGatedClassifier(classifier)


def _backend(
    backend: str,
    *,
    model: Path | None,
    threads: int,
    rekognition: Mapping[str, Any] | None,
    uncertain_low: float,
    uncertain_high: float,
    retry_dir: Path | None,
) -> Classifier | None:
    if backend not in BACKENDS:
        raise VisionError(f"unknown vision backend {backend!r}; expected one of {BACKENDS}")
    if backend == "off":
        return None
    if backend in ("onnx", "cascade"):
        from agent.vision.onnx_backend import OnnxClassifier

        local = OnnxClassifier(model or shipped_model_path(), threads=threads)
        if backend == "onnx":
            return local
    if rekognition is None:
        raise VisionError(f"vision backend {backend!r} needs a [vision.rekognition] section")
    from agent.vision.rekognition import RekognitionClassifier, RetryQueue

    cloud = RekognitionClassifier(
        rekognition_settings(rekognition),
        retry_queue=RetryQueue(retry_dir) if retry_dir is not None else None,
    )
    if backend == "rekognition":
        return cloud
    from agent.vision.cascade import CascadeClassifier

    try:
        return CascadeClassifier(
            local, cloud, uncertain_low=uncertain_low, uncertain_high=uncertain_high
        )
    except ValueError as exc:
        raise VisionError(f"[vision]: {exc}") from exc
