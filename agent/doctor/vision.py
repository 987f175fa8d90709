"""Doctor's check of the model: its file matches the manifest and it classifies an image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.config import Config
from agent.doctor.checklist import (
    Check,
    _fail,
    _pass,
    _warn,
)


def check_model(config: Config, frame: np.ndarray | None) -> Iterator[Check]:
    """The model file matches its manifest hash and classifies a test image."""
    from agent.vision import VisionError
    from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file

    backend = config.vision.backend
    if backend == "off":
        yield _pass("model", "vision", 'vision is off ([vision] backend = "off")')
        return
    if backend == "rekognition":
        yield _warn(
            "model",
            "vision",
            "cloud backend (Rekognition): not exercised by doctor (each call is billed)",
            "try one image with 'remotair classify IMAGE'",
        )
        return
    path = Path(config.vision.model)
    if not path.exists():
        yield _fail(
            "model",
            "file",
            f"model file {path} is missing",
            "reinstall the package or set [vision] model to the .onnx file",
        )
        return
    try:
        manifest = load_manifest(manifest_path_for(path))
    except VisionError as exc:
        yield _fail("model", "manifest", str(exc), "copy the model's .json manifest next to it")
        return
    actual = sha256_file(path)
    if actual != manifest.sha256:
        yield _fail(
            "model",
            "hash",
            f"{path.name}: sha256 {actual[:12]}... but manifest says {manifest.sha256[:12]}...",
            "the file is damaged or was swapped: copy model and manifest again, together",
        )
        return
    yield _pass("model", "hash", f"{manifest.model_id} matches its manifest")
    from agent.vision.onnx_backend import OnnxClassifier

    image = frame if frame is not None else _test_image()
    source = "a camera frame" if frame is not None else "a synthetic test image"
    try:
        classifier = OnnxClassifier(path, threads=1)
        try:
            verdict = classifier.classify(image)
        finally:
            classifier.close()
    except VisionError as exc:
        yield _fail("model", "inference", str(exc), "reinstall the model; check onnxruntime")
        return
    yield _pass(
        "model",
        "inference",
        f"{source} -> {verdict.label} (p_dirty {verdict.dirty_probability:.2f})"
        f" in {verdict.latency_ms:.0f} ms",
    )


def _test_image() -> np.ndarray:
    """A grey gradient: enough to prove the model runs, with no claim about its verdict."""
    ramp = np.linspace(40, 200, 320, dtype=np.float32)
    grey = np.tile(ramp, (240, 1)).astype(np.uint8)
    return np.stack([grey, grey, grey], axis=2)
