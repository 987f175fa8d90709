"""Doctor's model check: the file matches its manifest hash and classifies a test image."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import doctor
from agent.config import Config
from agent.models.store import ModelStore
from agent.vision.factory import shipped_model_path
from tests.agent.models.conftest import shipped_manifest
from tests.agent.models.tiny_onnx import write_tiny_model


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    shipped = shipped_model_path()
    if not shipped.exists():
        pytest.skip("the shipped model is not built")
    target = tmp_path / shipped.name
    shutil.copyfile(shipped, target)
    shutil.copyfile(shipped.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_model_hash_and_inference_pass(
    config_file: Callable[[str], Config], model_copy: Path
) -> None:
    config = config_file(f'[vision]\nbackend = "onnx"\nmodel = "{model_copy}"\n')
    checks = list(doctor.check_model(config, None))
    assert [(c.name, c.status) for c in checks] == [
        ("hash", "PASS"),
        ("signature", "PASS"),
        ("inference", "PASS"),
    ]
    assert checks[1].detail.startswith("not checked: no [models] trusted_keys")
    assert checks[2].detail.startswith("a synthetic test image -> ")


def test_the_store_s_active_model_is_the_one_checked(
    tmp_path: Path, config_file: Callable[[str], Config]
) -> None:
    model = write_tiny_model(tmp_path / "tiny_constant.onnx", "constant")
    manifest = {
        **shipped_manifest(),
        "model_file": model.name,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    store = ModelStore(tmp_path / "state" / "models")
    store.activate(store.add(model, manifest).sha256)
    config = config_file('[vision]\nbackend = "onnx"\n')  # storage: tmp_path / "state"
    checks = list(doctor.check_model(config, None))
    assert checks[0].detail == f"tiny_constant@{manifest['sha256'][:12]} matches its manifest"
    assert checks[-1].status == "PASS"


def test_a_model_that_does_not_match_its_manifest_fails(
    config_file: Callable[[str], Config], model_copy: Path
) -> None:
    manifest = model_copy.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    config = config_file(f'[vision]\nbackend = "onnx"\nmodel = "{model_copy}"\n')
    (check,) = doctor.check_model(config, None)
    assert (check.name, check.status) == ("hash", "FAIL")
    assert "manifest says 000000000000..." in check.detail


def test_a_missing_model_fails_with_its_path(
    tmp_path: Path, config_file: Callable[[str], Config]
) -> None:
    missing = tmp_path / "gone.onnx"
    config = config_file(f'[vision]\nbackend = "onnx"\nmodel = "{missing}"\n')
    (check,) = doctor.check_model(config, None)
    assert check.status == "FAIL" and str(missing) in check.detail
