"""Doctor's checks of the hardware: the I2C bus device, every sensor, every camera."""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.board import Board
from agent.config import Config
from agent.doctor.checklist import (
    Check,
    _fail,
    _pass,
    _warn,
)
from drivers.camera import frame_problem
from drivers.errors import CameraError, CrcError, DeviceAbsentError, SensorError, SensorTimeoutError
from drivers.measurement import Measurement
from drivers.registry import QUANTITIES


def check_i2c_bus(config: Config, board: Board) -> Iterator[Check]:
    """The bus device exists and this user may open it (group ``i2c`` on Raspberry Pi OS)."""
    number = config.board.i2c_bus
    has_i2c = any(not loc.location.startswith("/") for loc in board.sensor_info.values())
    if not has_i2c:
        return
    if board.kind == "sim":
        yield _pass("board", f"i2c-{number}", f"simulated bus i2c-{number}")
        return
    device = Path(f"/dev/i2c-{number}")
    if not device.exists():
        yield _fail(
            "board",
            f"i2c-{number}",
            f"{device} does not exist",
            "enable I2C: sudo raspi-config nonint do_i2c 0, then reboot (or check [board] i2c_bus)",
        )
        return
    yield from _device_access("board", f"i2c-{number}", device)


def _device_access(group: str, name: str, device: Path) -> Iterator[Check]:
    info = device.stat()
    try:
        owner_group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        owner_group = str(info.st_gid)
    mode = stat.filemode(info.st_mode)
    if os.access(device, os.R_OK | os.W_OK):
        yield _pass(group, name, f"{device} accessible ({mode} group {owner_group})")
    else:
        yield _fail(
            group,
            name,
            f"{device} not accessible to this user ({mode} group {owner_group})",
            f"add the user to group {owner_group!r}: sudo usermod -aG {owner_group} $USER"
            " (log in again)",
        )


def check_sensors(board: Board) -> Iterator[Check]:
    """Each chip answers with the right identity (the driver's start checks it) and reads a
    plausible value."""
    for name, sensor in board.sensors.items():
        info = board.sensor_info[name]
        uart = info.location.startswith("/")
        group = "uart" if uart else "chips"
        label = f"{name} ({info.chip} at {info.location})"
        try:
            sensor.start()
            measurement = sensor.read()
        except SensorError as exc:
            yield _fail(group, name, f"{label}: {exc.detail}", _sensor_hint(exc, uart))
            continue
        odd = _implausible(measurement)
        values = _values_text(measurement)
        if odd:
            yield _warn(
                group,
                name,
                f"{label}: implausible reading {odd} ({values})",
                "a damaged or contaminated sensor; compare with a reference instrument",
            )
        else:
            yield _pass(group, name, f"{label}: {values}")


def _sensor_hint(exc: SensorError, uart: bool) -> str:
    if uart:
        return (
            "check the port name, TX/RX crossed, 5 V supply, baud rate, and group 'dialout'"
            " (sudo usermod -aG dialout $USER)"
        )
    if isinstance(exc, CrcError):
        return "noisy bus: shorten the cable, check pull-ups and grounding"
    if isinstance(exc, SensorTimeoutError):
        return "the chip is slow or stuck: power-cycle the board"
    if isinstance(exc, DeviceAbsentError):
        return "check wiring, power and address; 'remotair i2c scan' lists what answers"
    return "power-cycle the board; if it persists, replace the sensor"


def _implausible(m: Measurement) -> str | None:
    for quantity, value in m.values().items():
        spec = QUANTITIES.get(quantity)
        low, high = spec.plausible if spec else (float("-inf"), float("inf"))
        if not low <= value <= high:
            return f"{quantity}={value:g} outside {low:g}..{high:g}"
    return None


def _values_text(m: Measurement) -> str:
    return ", ".join(f"{k}={v:.1f}" for k, v in m.values().items())


def check_cameras(board: Board) -> tuple[list[Check], np.ndarray | None]:
    """Two frames from each camera: neither black nor frozen. Returns a good frame for the model
    check (a real image is a better test than a synthetic one)."""
    checks: list[Check] = []
    good: np.ndarray | None = None
    for name, camera in board.cameras.items():
        try:
            first = camera.capture()
            second = camera.capture()
        except CameraError as exc:
            checks.append(
                _fail(
                    "cameras",
                    name,
                    f"no frame: {exc.detail}",
                    "check the ribbon cable / USB and [board.cameras]; 'remotair snap' retries",
                )
            )
            continue
        problem = frame_problem(first.image) or frame_problem(second.image, first.image)
        if problem:
            hint = (
                "lens covered or lighting off: check the duct LED"
                if "black" in problem
                else "the camera stream is stuck: power-cycle the board"
            )
            checks.append(_fail("cameras", name, problem, hint))
        else:
            checks.append(_pass("cameras", name, f"two live frames {first.width}x{first.height}"))
            if good is None:
                good = first.image
    return checks, good
