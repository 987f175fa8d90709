"""``remotair read`` and ``remotair snap`` through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

from hil.board import DEFAULT_SENSORS


def remotair(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3])},
    )


def test_read_sim_json_has_every_sensor_with_values() -> None:
    done = remotair("read", "--sim", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["board"] == "sim"
    by_name = {s["name"]: s for s in data["sensors"]}
    assert set(by_name) == {s.name for s in DEFAULT_SENSORS}
    assert all(s["ok"] for s in by_name.values())
    assert 300 < by_name["scd41"]["values"]["co2_ppm"] < 5000
    assert 50 < by_name["filter_dp"]["values"]["differential_pressure_pa"] < 500
    assert by_name["bme280"]["values"]["pressure_pa"] > 90_000


def test_read_table_is_human_readable() -> None:
    done = remotair("read", "--sim")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "board: simulated"
    assert lines[1].split()[:3] == ["SENSOR", "CHIP", "AT"]
    assert any(line.startswith("scd41") and line.rstrip().endswith("ok") for line in lines)


def test_missing_bus_is_a_clear_line_and_exit_code_3(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[board]\nkind = "pi"\ni2c_bus = 97\n'
        '[[board.sensors]]\nname = "co2"\nchip = "scd4x"\n'
        '[[board.sensors]]\nname = "uart_co2"\nchip = "mhz19"\nport = "/dev/ttyNOPE"\n'
    )
    done = remotair("read", "--config", str(config))
    assert done.returncode == 3
    assert "Traceback" not in done.stdout + done.stderr
    co2 = next(line for line in done.stdout.splitlines() if line.startswith("co2 "))
    assert "FAIL: cannot open /dev/i2c-97" in co2
    uart = next(line for line in done.stdout.splitlines() if line.startswith("uart_co2"))
    assert "FAIL: cannot open serial port /dev/ttyNOPE" in uart


def test_config_typo_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[board]\nkind = "sim"\nsim_sed = 3\n')
    done = remotair("read", "--config", str(config))
    assert done.returncode == 2
    assert "agent.toml" in done.stderr and "sim_sed" in done.stderr and "sim_seed" in done.stderr
    assert "Traceback" not in done.stderr


def test_snap_writes_one_decodable_jpeg_per_camera(tmp_path: Path) -> None:
    done = remotair("snap", "--sim", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shots = json.loads(done.stdout)["snapshots"]
    assert {s["camera"] for s in shots} == {"upstream", "downstream"}
    jpegs = sorted(tmp_path.glob("*.jpg"))
    assert len(jpegs) == 2
    for jpeg in jpegs:
        image = cv2.imread(str(jpeg))
        assert image is not None and image.shape == (1232, 1640, 3)
        assert json.loads(jpeg.with_suffix(".json").read_text())["camera"] in {
            "upstream",
            "downstream",
        }


def test_snap_out_dir_and_dead_camera(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(
        '[board]\nkind = "pi"\n'
        '[[board.sensors]]\nname = "t"\nchip = "sht4x"\n'
        f'[[board.cameras]]\nname = "cam0"\nbackend = "replay"\ndirectory = "{empty}"\n'
    )
    done = remotair("snap", "--config", str(config), "--out", str(tmp_path / "shots"))
    assert done.returncode == 3
    line = next(x for x in done.stdout.splitlines() if x.startswith("cam0"))
    assert "FAIL" in line and "Traceback" not in done.stderr
