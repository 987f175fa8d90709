"""Doctor's checks in-process: model hash and inference, the I2C bus device, free space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent import doctor
from agent.board import open_board
from agent.config import Config, load_config
from agent.vision.factory import shipped_model_path


def config_file(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "agent.toml"
    path.write_text(f'[storage]\ndir = "{tmp_path / "state"}"\n{body}')
    return load_config(path)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    shipped = shipped_model_path()
    if not shipped.exists():
        pytest.skip("the shipped model is not built")
    target = tmp_path / shipped.name
    shutil.copyfile(shipped, target)
    shutil.copyfile(shipped.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_model_hash_and_inference_pass(tmp_path: Path, model_copy: Path) -> None:
    config = config_file(tmp_path, f'[vision]\nbackend = "onnx"\nmodel = "{model_copy}"\n')
    checks = list(doctor.check_model(config, None))
    assert [(c.name, c.status) for c in checks] == [("hash", "PASS"), ("inference", "PASS")]
    assert checks[1].detail.startswith("a synthetic test image -> ")


def test_a_model_that_does_not_match_its_manifest_fails(tmp_path: Path, model_copy: Path) -> None:
    manifest = model_copy.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    config = config_file(tmp_path, f'[vision]\nbackend = "onnx"\nmodel = "{model_copy}"\n')
    (check,) = doctor.check_model(config, None)
    assert (check.name, check.status) == ("hash", "FAIL")
    assert "manifest says 000000000000..." in check.detail


def test_a_missing_model_fails_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone.onnx"
    config = config_file(tmp_path, f'[vision]\nbackend = "onnx"\nmodel = "{missing}"\n')
    (check,) = doctor.check_model(config, None)
    assert check.status == "FAIL" and str(missing) in check.detail


def test_a_missing_i2c_bus_device_fails_with_the_raspi_config_hint(tmp_path: Path) -> None:
    config = config_file(
        tmp_path,
        '[board]\nkind = "pi"\ni2c_bus = 97\n[[board.sensors]]\nname = "t"\nchip = "sht4x"\n',
    )
    board = open_board(config.board)
    try:
        (bus,) = doctor.check_i2c_bus(config, board)
        (chip,) = doctor.check_sensors(board)
    finally:
        board.close()
    assert (bus.status, bus.detail) == ("FAIL", "/dev/i2c-97 does not exist")
    assert "raspi-config" in bus.hint
    assert chip.status == "FAIL" and "/dev/i2c-97" in chip.detail


def test_storage_reports_free_space_and_a_missing_directory(tmp_path: Path) -> None:
    config = config_file(tmp_path, "")
    checks = {c.name: c for c in doctor.check_storage(config)}
    assert checks["storage dir"].status == "WARN"  # not created yet
    assert "MB free on" in checks["free space"].detail
    (tmp_path / "state").mkdir()
    checks = {c.name: c for c in doctor.check_storage(config)}
    assert checks["storage dir"].status == "PASS"
