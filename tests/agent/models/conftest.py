"""A small model release to sign, store and tamper with: bytes plus a valid manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.vision.factory import shipped_model_path
from agent.vision.manifest import manifest_path_for

MakeModel = Callable[..., Path]


RELEASE_KEYS = (
    "signature",
    "model_version",
    "created",
    "expires",
    "requires_agent",
    "size_bytes",
    "reference",
)
FITTED_TO_THE_SHIPPED_MODEL = ("calibration", "ood", "head")
"""Parts of a manifest that only the shipped model's outputs satisfy."""


def shipped_manifest() -> dict[str, Any]:
    """The shipped model's manifest as another model's: no release, no signature, no parts fitted
    to the shipped model's features."""
    data: dict[str, Any] = json.loads(manifest_path_for(shipped_model_path()).read_text())
    dropped = (*RELEASE_KEYS, *FITTED_TO_THE_SHIPPED_MODEL)
    return {k: v for k, v in data.items() if k not in dropped}


def write_model(directory: Path, content: bytes = b"model-bytes", name: str = "duct") -> Path:
    """Write ``name.onnx`` holding ``content`` and a manifest describing it into ``directory``.

    The store and the signature never run the model, so any bytes do; the manifest is the shipped
    one with the file name and hash replaced, so it passes the vision manifest checks.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / f"{name}.onnx"
    model.write_bytes(content)
    manifest = shipped_manifest()
    manifest["model_file"] = model.name
    manifest["sha256"] = hashlib.sha256(content).hexdigest()
    manifest_path_for(model).write_text(json.dumps(manifest, indent=2))
    return model


@pytest.fixture
def make_model(tmp_path: Path) -> MakeModel:
    """``make_model(content, name=..., folder=...)``: :func:`write_model` under ``tmp_path``."""

    def make(content: bytes = b"model-bytes", *, name: str = "duct", folder: str = "src") -> Path:
        return write_model(tmp_path / folder, content, name)

    return make


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
