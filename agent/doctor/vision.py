"""Doctor's check of the model the agent runs (the store's active one, else the configured one):
its file matches the manifest, its signature holds when keys are trusted, it classifies an image."""

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
from agent.models.settings import model_settings, running_model_path
from agent.vision.manifest import manifest_path_for


def check_model(config: Config, frame: np.ndarray | None) -> Iterator[Check]:
    """The model file matches its manifest hash and classifies a test image."""
    from agent.vision import VisionError
    from agent.vision.manifest import load_manifest, sha256_file

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
    path = running_model_path(config)
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
    yield _signature(config, path, actual)
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


def _signature(config: Config, path: Path, sha256: str) -> Check:
    """With trusted keys configured, the model must be signed by one of them (or the agent
    refuses to run it); without, say that nothing is checked."""
    from agent.models import ModelRolloutError
    from agent.models.signing import read_manifest_json, verify_release

    trusted = model_settings(config).install.trusted
    if not trusted:
        return _pass(
            "model",
            "signature",
            "not checked: no [models] trusted_keys (remote model installs are refused too)",
        )
    try:
        release = verify_release(
            read_manifest_json(manifest_path_for(path)), trusted, now=None, file_sha256=sha256
        )
    except ModelRolloutError as exc:
        return _fail(
            "model",
            "signature",
            f"{path.name}: {exc}; the agent refuses to run it",
            "install a model signed by a trusted key (remotair model sign), or roll back",
        )
    return _pass(
        "model", "signature", f"version {release.model_version}, signed by {release.key_id}"
    )


def _test_image() -> np.ndarray:
    """A grey gradient: enough to prove the model runs, with no claim about its verdict."""
    ramp = np.linspace(40, 200, 320, dtype=np.float32)
    grey = np.tile(ramp, (240, 1)).astype(np.uint8)
    return np.stack([grey, grey, grey], axis=2)
