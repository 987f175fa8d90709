"""The real board's factory: ``/dev/i2c-N``, serial ports and cameras (``[board] kind = "pi"``).

The only place that opens device files. It never imports :mod:`hil`: nothing simulated can end up
on a real board, not even a default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.board import (
    Board,
    BoardSettings,
    SensorSettings,
    add_i2c_sensor,
    add_uart_sensor,
    baudrate,
    open_camera,
)
from drivers.clock import SYSTEM_CLOCK
from drivers.errors import DeviceAbsentError, SensorError
from drivers.i2c import I2CBus
from drivers.registry import CHIPS
from drivers.uart import SerialPort

if TYPE_CHECKING:
    from smbus2 import SMBus


def build(settings: BoardSettings, realtime: bool = True) -> Board:
    """Open every configured part of a real board (``realtime`` is always so here)."""
    board = Board("pi", {}, {}, {}, SYSTEM_CLOCK)
    bus: I2CBus | SensorError | None = None
    for spec in settings.sensors:
        if CHIPS[spec.chip].bus == "uart":
            add_uart_sensor(board, spec, _open_serial(spec, board))
            continue
        if bus is None:
            bus = _open_i2c(settings.i2c_bus, board)
        add_i2c_sensor(board, spec, bus, settings.i2c_bus)
    for cam in settings.cameras:
        board.cameras[cam.name] = open_camera(cam)
    return board


def open_i2c_bus(number: int) -> SMBus:
    """``/dev/i2c-<number>``; a :class:`DeviceAbsentError` that says how to fix it otherwise."""
    from smbus2 import SMBus

    try:
        return SMBus(number)
    except OSError as exc:
        hint = (
            " (is the user in group 'i2c'?)"
            if isinstance(exc, PermissionError)
            else (" (enable I2C with raspi-config)" if isinstance(exc, FileNotFoundError) else "")
        )
        raise DeviceAbsentError(f"cannot open /dev/i2c-{number}: {exc.strerror}{hint}") from exc


def _open_i2c(number: int, board: Board) -> I2CBus | SensorError:
    try:
        bus = open_i2c_bus(number)
    except DeviceAbsentError as exc:
        return exc
    board._closers.append(bus.close)
    return bus


def _open_serial(spec: SensorSettings, board: Board) -> SerialPort | SensorError:
    import serial

    try:
        port = serial.Serial(spec.port, baudrate(spec), timeout=1.0)
    except (OSError, serial.SerialException) as exc:
        hint = " (is the user in group 'dialout'?)" if "ermission" in str(exc) else ""
        return DeviceAbsentError(
            f"cannot open serial port {spec.port}: {exc}{hint}", sensor=spec.name
        )
    board._closers.append(port.close)
    return port  # type: ignore[no-any-return]
