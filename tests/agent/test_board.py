"""Boards come from the factory their ``kind`` names; a real board never loads the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.board import UnavailableCamera, open_board
from agent.config import ConfigError, parse_config
from drivers.camera_replay import ReplayCamera
from drivers.errors import CameraError
from hil.cameras import SimulatedCamera

ROOT = Path(__file__).resolve().parents[2]

PI_BOARD = """
[device]
id = "pi-test"
[board]
kind = "pi"
i2c_bus = 99
[[board.sensors]]
name = "t"
chip = "sht4x"
[[board.sensors]]
name = "co2"
chip = "senseair_s8"
port = "{tmp}/no-such-tty"
[[board.cameras]]
name = "cam0"
backend = "replay"
directory = "{tmp}/empty"
[storage]
dir = "{tmp}/state"
[control]
socket = "{tmp}/control.sock"
[mqtt]
host = "127.0.0.1"
port = 9
handshake_timeout_s = 0.5
[vision]
backend = "off"
"""

# Runs every command a technician has, then the agent itself, on a real-board configuration, in a
# fresh interpreter, and prints the hil modules that got imported.
PROBE = """
import json, sys
from pathlib import Path
from agent.cli import main
from agent.config import load_config
from agent.daemon import build_agent
config, out = sys.argv[1], sys.argv[2]
for argv in (
    ["read", "--json"], ["snap", "--out", out], ["doctor", "--json"], ["i2c", "scan"],
    ["status"], ["alarms"], ["outbox"],
):
    main([*argv, "--config", config])
main(["config", "check", config])
agent = build_agent(load_config(Path(config)), config_file=Path(config))
try:
    agent.start()
    agent.tick()
finally:
    agent.shutdown(flush_timeout_s=0.1)
print(json.dumps(sorted(m for m in sys.modules if m == "hil" or m.startswith("hil."))))
"""


def test_a_real_board_config_loads_no_simulator_module(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(PI_BOARD.format(tmp=tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config), str(tmp_path / "shots")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_sim_board_uses_a_configured_replay_camera(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "duct-1.jpg"), np.full((48, 64, 3), 90, np.uint8))
    config = parse_config(
        textwrap.dedent(f"""
        [board]
        kind = "sim"
        [[board.cameras]]
        name = "replayed"
        backend = "replay"
        directory = "{tmp_path}"
        [[board.cameras]]
        name = "simulated"
        backend = "sim"
        """)
    )
    board = open_board(config.board)
    try:
        assert isinstance(board.cameras["replayed"], ReplayCamera)
        assert isinstance(board.cameras["simulated"], SimulatedCamera)
        assert board.sim is not None and set(board.sim.cameras) == {"simulated"}
    finally:
        board.close()


def test_a_sim_board_reports_a_hardware_camera_it_cannot_open() -> None:
    config = parse_config(
        '[board]\nkind = "sim"\n[[board.cameras]]\nname = "usb"\nbackend = "opencv"\n'
        'device = "/dev/no-such-video"\n'
    )
    board = open_board(config.board)
    try:
        camera = board.cameras["usb"]
        assert not isinstance(camera, SimulatedCamera)
        with pytest.raises(CameraError, match="no-such-video"):
            camera.capture()
    finally:
        board.close()


def test_a_real_board_refuses_a_sim_camera() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            '[board]\nkind = "pi"\n[[board.sensors]]\nname = "t"\nchip = "sht4x"\n'
            '[[board.cameras]]\nname = "c"\nbackend = "sim"\n'
        )
    assert info.value.errors == (
        '<string>: board.cameras[0].backend: a "sim" camera needs the simulated board '
        '([board] kind = "sim")',
    )


def test_a_real_board_without_cameras_has_none() -> None:
    config = parse_config(
        '[board]\nkind = "pi"\ni2c_bus = 99\n[[board.sensors]]\nname = "t"\nchip = "sht4x"\n'
    )
    board = open_board(config.board)
    try:
        assert board.kind == "pi" and board.cameras == {} and board.sim is None
    finally:
        board.close()


def test_a_sim_camera_opened_outside_the_sim_factory_is_unavailable() -> None:
    class Sim:
        name, backend, index, device, directory = "c", "sim", None, None, None
        width, height, settle_s = 64, 48, 0.0

    from agent.board import open_camera

    camera = open_camera(Sim())
    assert isinstance(camera, UnavailableCamera)
    assert "simulated board" in str(camera.error)


def test_a_chip_at_its_alternative_address_is_simulated_and_read() -> None:
    config = parse_config(
        '[board]\nkind = "sim"\n[[board.sensors]]\nname = "duct"\nchip = "bme280"\naddress = 0x77\n'
    )
    board = open_board(config.board)
    try:
        assert board.sensor_info["duct"].address == 0x77
        board.sensors["duct"].start()
        assert board.sensors["duct"].read().pressure_pa is not None
    finally:
        board.close()
