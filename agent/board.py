"""Turn the ``[board]`` description into live drivers: real buses on a board, simulators otherwise.

This is the only place that opens device files (``/dev/i2c-N``, serial ports, cameras). A part that
cannot be opened does not stop the others: it becomes an :class:`UnavailableSensor` /
:class:`UnavailableCamera` whose every use raises the error that explains why, so the agent reports
it as a fault and the technician sees it named.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.config import I2C_DEFAULT_ADDRESS
from drivers.bme280 import BME280
from drivers.camera import Camera, Frame
from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import CameraError, DeviceAbsentError, SensorError
from drivers.i2c import I2CBus
from drivers.measurement import Measurement
from drivers.mhz19 import MHZ19
from drivers.scd4x import SCD4x
from drivers.scd30 import SCD30
from drivers.sdp8xx import SDP3x, SDP8xx
from drivers.senseair_s8 import SenseairS8
from drivers.sensor import Sensor
from drivers.sht4x import SHT4x
from drivers.uart import SerialPort
from hil.board import (
    DEFAULT_CAMERAS,
    DEFAULT_SENSORS,
    SensorDescription,
    SimBoard,
    simulated_board,
)
from hil.clock import AcceleratedClock, SimClock

log = logging.getLogger(__name__)

I2C_DRIVERS: dict[str, Callable[..., Sensor]] = {
    "bme280": BME280,
    "bmp280": BME280,
    "sht4x": SHT4x,
    "scd4x": SCD4x,
    "scd30": SCD30,
    "sdp8xx": SDP8xx,
    "sdp3x": SDP3x,
}
UART_DRIVERS: dict[str, Callable[..., Sensor]] = {"mhz19": MHZ19, "senseair_s8": SenseairS8}


class SensorSettings(SensorDescription, Protocol):
    """What the board needs of one ``[[board.sensors]]`` entry (the simulator needs less)."""

    @property
    def baudrate(self) -> int: ...
    @property
    def temperature_offset_c(self) -> float | None: ...
    @property
    def altitude_m(self) -> float | None: ...


class CameraSettings(Protocol):
    """What the board needs of one ``[[board.cameras]]`` entry."""

    @property
    def name(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def index(self) -> int | None: ...
    @property
    def device(self) -> str | None: ...
    @property
    def directory(self) -> Any: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def settle_s(self) -> float: ...


class BoardSettings(Protocol):
    """The ``[board]`` section."""

    @property
    def kind(self) -> str: ...
    @property
    def i2c_bus(self) -> int: ...
    @property
    def sim_seed(self) -> int: ...
    @property
    def sim_speed(self) -> float: ...
    @property
    def sensors(self) -> Sequence[SensorSettings]: ...
    @property
    def cameras(self) -> Sequence[CameraSettings]: ...


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """Where a sensor sits, for tables and status: ``i2c-1 0x62`` or ``/dev/serial0``."""

    name: str
    chip: str
    location: str


class UnavailableSensor:
    """A configured sensor whose bus or port could not be opened."""

    def __init__(self, chip: str, error: SensorError) -> None:
        self.chip = chip
        self.error = error

    def start(self) -> None:
        raise self.error

    def read(self) -> Measurement:
        raise self.error

    def stop(self) -> None:
        return None


class UnavailableCamera:
    """A configured camera whose backend could not be opened."""

    def __init__(self, name: str, error: CameraError) -> None:
        self.name = name
        self.error = error

    def capture(self) -> Frame:
        raise self.error

    def close(self) -> None:
        return None


@dataclass
class Board:
    """The live parts of one board, by name."""

    kind: str
    sensors: dict[str, Sensor]
    sensor_info: dict[str, SensorInfo]
    cameras: dict[str, Camera]
    clock: Clock
    sim: SimBoard | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for sensor in self.sensors.values():
            try:
                sensor.stop()
            except SensorError as exc:
                log.debug("stop failed sensor=%s error=%s", sensor.chip, exc)
        for camera in self.cameras.values():
            camera.close()
        for closer in self._closers:
            closer()


@dataclass(frozen=True, slots=True)
class _SimCamera:
    name: str
    backend: str = "sim"
    index: int | None = None
    device: str | None = None
    directory: Any = None
    width: int = 1640
    height: int = 1232
    settle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _Sensor:
    name: str
    chip: str
    address: int | None = None
    port: str | None = None
    baudrate: int = 9600
    temperature_offset_c: float | None = None
    altitude_m: float | None = None


def driver_options(sensors: Sequence[SensorSettings]) -> dict[str, dict[str, Any]]:
    """Extra driver keywords from the sensor entries (CO2 chips' temperature offset, altitude)."""
    options: dict[str, dict[str, Any]] = {}
    for s in sensors:
        if s.chip in ("scd4x", "scd30"):
            options[s.name] = {
                "temperature_offset_c": s.temperature_offset_c,
                "altitude_m": None if s.altitude_m is None else round(s.altitude_m),
            }
    return options


def open_board(settings: BoardSettings, *, simulate: bool = False, realtime: bool = False) -> Board:
    """Open every configured part. ``simulate`` forces the simulated board (``--sim``).

    On the simulated board ``realtime`` runs the world on an accelerated real-time clock (the
    daemon); otherwise on virtual time, so one-shot commands never wait for a chip.
    """
    sensors: Sequence[SensorSettings] = settings.sensors or [
        _Sensor(s.name, s.chip, s.address, s.port) for s in DEFAULT_SENSORS
    ]
    cameras: Sequence[CameraSettings] = settings.cameras or [
        _SimCamera(name) for name in DEFAULT_CAMERAS
    ]
    options = driver_options(sensors)
    if simulate or settings.kind == "sim":
        clock: Clock = AcceleratedClock(settings.sim_speed) if realtime else SimClock()
        sim = simulated_board(
            seed=settings.sim_seed,
            clock=clock,
            sensors=[_Sensor(s.name, s.chip, s.address, s.port) for s in sensors],
            cameras=[c.name for c in cameras],
        )
        board = Board("sim", {}, {}, dict(sim.cameras), clock, sim)
        for spec in sensors:
            if spec.chip in UART_DRIVERS:
                port = spec.port or ""
                serial_port: SerialPort = sim.serial_ports[port]
                _add_uart(board, spec, serial_port, options)
            else:
                _add_i2c(board, spec, sim.bus, settings.i2c_bus, options)
        board._closers.append(sim.close)
        return board
    return _open_real(settings, sensors, cameras, options)


def _add_i2c(
    board: Board,
    spec: SensorSettings,
    bus: I2CBus | SensorError,
    bus_number: int,
    options: dict[str, dict[str, Any]],
) -> None:
    address = spec.address if spec.address is not None else I2C_DEFAULT_ADDRESS[spec.chip]
    board.sensor_info[spec.name] = SensorInfo(
        spec.name, spec.chip, f"i2c-{bus_number} 0x{address:02x}"
    )
    if isinstance(bus, SensorError):
        board.sensors[spec.name] = UnavailableSensor(spec.chip, bus)
        return
    extra = {k: v for k, v in options.get(spec.name, {}).items() if v is not None}
    board.sensors[spec.name] = I2C_DRIVERS[spec.chip](bus, address, clock=board.clock, **extra)


def _add_uart(
    board: Board,
    spec: SensorSettings,
    port: SerialPort | SensorError,
    options: dict[str, dict[str, Any]],
) -> None:
    board.sensor_info[spec.name] = SensorInfo(spec.name, spec.chip, spec.port or "?")
    if isinstance(port, SensorError):
        board.sensors[spec.name] = UnavailableSensor(spec.chip, port)
        return
    board.sensors[spec.name] = UART_DRIVERS[spec.chip](port, clock=board.clock)


def _open_real(
    settings: BoardSettings,
    sensors: Sequence[SensorSettings],
    cameras: Sequence[CameraSettings],
    options: dict[str, dict[str, Any]],
) -> Board:
    board = Board("pi", {}, {}, {}, SYSTEM_CLOCK)
    bus: I2CBus | SensorError | None = None
    for spec in sensors:
        if spec.chip in UART_DRIVERS:
            _add_uart(board, spec, _open_serial(spec, board), options)
            continue
        if bus is None:
            bus = _open_i2c(settings.i2c_bus, board)
        _add_i2c(board, spec, bus, settings.i2c_bus, options)
    for cam in cameras:
        board.cameras[cam.name] = _open_camera(cam)
    return board


def _open_i2c(number: int, board: Board) -> I2CBus | SensorError:
    from smbus2 import SMBus

    try:
        bus = SMBus(number)
    except OSError as exc:
        hint = (
            " (is the user in group 'i2c'?)"
            if isinstance(exc, PermissionError)
            else (" (enable I2C with raspi-config)" if isinstance(exc, FileNotFoundError) else "")
        )
        return DeviceAbsentError(f"cannot open /dev/i2c-{number}: {exc.strerror}{hint}")
    board._closers.append(bus.close)
    return bus


def _open_serial(spec: SensorSettings, board: Board) -> SerialPort | SensorError:
    import serial

    try:
        port = serial.Serial(spec.port, spec.baudrate, timeout=1.0)
    except (OSError, serial.SerialException) as exc:
        hint = " (is the user in group 'dialout'?)" if "ermission" in str(exc) else ""
        return DeviceAbsentError(
            f"cannot open serial port {spec.port}: {exc}{hint}", sensor=spec.name
        )
    board._closers.append(port.close)
    return port  # type: ignore[no-any-return]


def _open_camera(cam: CameraSettings) -> Camera:
    try:
        if cam.backend == "picamera2":
            from drivers.camera_picamera2 import Picamera2Camera

            return Picamera2Camera(
                cam.name, cam.index or 0, cam.width, cam.height, settle_s=cam.settle_s
            )
        if cam.backend == "opencv":
            from drivers.camera_opencv import OpenCVCamera

            device: int | str = cam.device if cam.device is not None else (cam.index or 0)
            return OpenCVCamera(cam.name, device, cam.width, cam.height)
        if cam.backend == "replay":
            from drivers.camera_replay import ReplayCamera

            return ReplayCamera(cam.name, cam.directory)
        if cam.backend == "sim":
            from hil.cameras import SimulatedCamera
            from hil.world import DuctWorld

            return SimulatedCamera(
                cam.name, DuctWorld(SYSTEM_CLOCK), width=cam.width, height=cam.height
            )
    except CameraError as exc:
        return UnavailableCamera(cam.name, exc)
    return UnavailableCamera(
        cam.name, CameraError(f"unknown backend {cam.backend!r}", camera=cam.name)
    )
