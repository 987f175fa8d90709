"""Fixtures of the vision tests: the shipped model loaded once a module, a copy to damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.vision.factory import shipped_model_path
from agent.vision.onnx_backend import OnnxClassifier
from tests.support.vision_models import copy_shipped_model


@pytest.fixture(scope="module")
def shipped() -> OnnxClassifier:
    return OnnxClassifier(shipped_model_path(), threads=2)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    return copy_shipped_model(tmp_path)
