"""The simulated board's factory (``[board] kind = "sim"`` or ``--sim``): the only importer of hil.

The configured sensors are wired to byte-level chip simulators at their configured addresses and
ports, through the same drivers a real board uses. Cameras with backend ``sim`` look into the
simulated duct; any other backend is opened as configured (a replay directory plays back on a
simulated board too) or reported unavailable with its reason, never silently replaced. Sensors or
cameras not listed at all are the built-in ones of :mod:`hil.board`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.board import (
    Board,
    BoardSettings,
    CameraSettings,
    SensorSettings,
    add_i2c_sensor,
    add_uart_sensor,
    open_camera,
)
from drivers.camera import Camera
from drivers.clock import Clock
from drivers.registry import CHIPS
from hil.board import DEFAULT_CAMERAS, DEFAULT_SENSORS, simulated_board
from hil.clock import AcceleratedClock, SimClock


@dataclass(frozen=True, slots=True)
class _BuiltinCamera:
    name: str
    backend: str = "sim"
    index: int | None = None
    device: str | None = None
    directory: Any = None
    width: int = 1640
    height: int = 1232
    settle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _BuiltinSensor:
    name: str
    chip: str
    address: int | None = None
    port: str | None = None
    baudrate: int | None = None
    temperature_offset_c: float | None = None
    altitude_m: float | None = None


def build(settings: BoardSettings, realtime: bool = False) -> Board:
    """The simulated board; ``realtime`` runs its world on an accelerated real-time clock."""
    sensors: list[SensorSettings] = list(settings.sensors) or [
        _BuiltinSensor(s.name, s.chip, s.address, s.port) for s in DEFAULT_SENSORS
    ]
    cameras: list[CameraSettings] = list(settings.cameras) or [
        _BuiltinCamera(name) for name in DEFAULT_CAMERAS
    ]
    clock: Clock = AcceleratedClock(settings.sim_speed) if realtime else SimClock()
    sim = simulated_board(
        seed=settings.sim_seed,
        clock=clock,
        sensors=sensors,
        cameras=[c.name for c in cameras if c.backend == "sim"],
    )
    board = Board("sim", {}, {}, {}, clock, sim, sim.wall_clock.time)
    for spec in sensors:
        if CHIPS[spec.chip].bus == "uart":
            add_uart_sensor(board, spec, sim.serial_ports[spec.port or ""])
        else:
            add_i2c_sensor(board, spec, sim.bus, settings.i2c_bus)
    for cam in cameras:
        camera: Camera = sim.cameras[cam.name] if cam.backend == "sim" else open_camera(cam)
        board.cameras[cam.name] = camera
    board._closers.append(sim.close)
    return board
