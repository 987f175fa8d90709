"""Turn the ``[board]`` description into live drivers, through the factory its ``kind`` names.

As gpiozero picks its pin factory by name, a board comes from the factory in
:data:`BOARD_FACTORIES`: :mod:`agent.board_pi` opens real buses, serial ports and cameras;
:mod:`agent.board_sim` builds the simulated board and is the only module of the agent that
imports :mod:`hil`, so a real board never loads the simulator.

Which driver a chip gets, at which address and with which options, comes from the chip registry
(:mod:`drivers.registry`). A part that cannot be opened does not stop the others: it becomes an
:class:`UnavailableSensor` / :class:`UnavailableCamera` whose every use raises the error that
explains why, so the agent reports it as a fault and the technician sees it named.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from drivers.camera import Camera, Frame
from drivers.clock import Clock
from drivers.errors import CameraError, SensorError
from drivers.i2c import I2CBus
from drivers.measurement import Measurement
from drivers.registry import CHIPS, SensorPlacement
from drivers.sensor import Sensor
from drivers.uart import SerialPort

if TYPE_CHECKING:
    from hil.board import SimBoard

log = logging.getLogger(__name__)


class SensorSettings(SensorPlacement, Protocol):
    """What the board needs of one ``[[board.sensors]]`` entry (the simulator needs less)."""

    @property
    def baudrate(self) -> int | None: ...
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
    address: int | None = None
    """The I2C address; None for a UART sensor."""


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
    """The simulated board behind the parts (fault panels, the world); None on real hardware."""
    wall_clock: Callable[[], float] = time.time
    """Epoch seconds for timestamps: the system's, or the simulated board's (which can jump)."""
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


BoardFactory = Callable[[BoardSettings, bool], Board]
"""Builds a board from its settings; the flag asks for real-time simulated chips (the daemon)."""

BOARD_FACTORIES: Mapping[str, str] = {"pi": "agent.board_pi", "sim": "agent.board_sim"}
"""``[board] kind`` -> the module whose ``build`` makes that board (imported only when used)."""


def open_board(settings: BoardSettings, *, simulate: bool = False, realtime: bool = False) -> Board:
    """Open every configured part. ``simulate`` forces the simulated board (``--sim``).

    On the simulated board ``realtime`` runs the world on an accelerated real-time clock (the
    daemon); otherwise on virtual time, so one-shot commands never wait for a chip.
    """
    kind = "sim" if simulate else settings.kind
    module = importlib.import_module(BOARD_FACTORIES[kind])
    build: BoardFactory = module.build
    return build(settings, realtime)


def add_i2c_sensor(
    board: Board, spec: SensorSettings, bus: I2CBus | SensorError, bus_number: int
) -> None:
    """Wire one I2C sensor: the registry's driver at the configured (or default) address."""
    chip = CHIPS[spec.chip]
    address = spec.address if spec.address is not None else chip.default_address
    assert address is not None, f"{chip.name} has no default address"
    board.sensor_info[spec.name] = SensorInfo(
        spec.name, spec.chip, f"i2c-{bus_number} 0x{address:02x}", address
    )
    if isinstance(bus, SensorError):
        board.sensors[spec.name] = UnavailableSensor(spec.chip, bus)
        return
    options = driver_options(spec)
    board.sensors[spec.name] = chip.driver(bus, address, clock=board.clock, **options)


def add_uart_sensor(board: Board, spec: SensorSettings, port: SerialPort | SensorError) -> None:
    """Wire one UART sensor: the registry's driver on the opened serial port."""
    board.sensor_info[spec.name] = SensorInfo(spec.name, spec.chip, spec.port or "?")
    if isinstance(port, SensorError):
        board.sensors[spec.name] = UnavailableSensor(spec.chip, port)
        return
    board.sensors[spec.name] = CHIPS[spec.chip].driver(
        port, clock=board.clock, **driver_options(spec)
    )


def driver_options(spec: SensorSettings) -> dict[str, Any]:
    """The driver keywords of the options the registry lists for this chip, those that are set."""
    options: dict[str, Any] = {}
    for option in CHIPS[spec.chip].options:
        value = getattr(spec, option.name, None)
        if option.for_driver and value is not None:
            options[option.name] = round(value) if option.integer else value
    return options


def baudrate(spec: SensorSettings) -> int:
    """The configured baud rate of a UART sensor, else its chip's default."""
    if spec.baudrate is not None:
        return spec.baudrate
    option = CHIPS[spec.chip].option("baudrate")
    return int(option.default) if option is not None and option.default is not None else 9600


def open_camera(cam: CameraSettings) -> Camera:
    """A camera with a hardware or file backend; ``sim`` cameras come from the sim factory."""
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
    except CameraError as exc:
        return UnavailableCamera(cam.name, exc)
    reason = (
        'a "sim" camera needs the simulated board ([board] kind = "sim" or --sim)'
        if cam.backend == "sim"
        else f"unknown backend {cam.backend!r}"
    )
    return UnavailableCamera(cam.name, CameraError(reason, camera=cam.name))
