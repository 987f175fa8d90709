"""One line builds a whole simulated board: ``board = simulated_board()``.

The board wires chip simulators onto one simulated I2C bus and simulated serial ports, cameras onto
the same duct world, and everything onto one clock. The sensors and cameras it carries are described
by the same fields as the agent's ``[[board.sensors]]`` / ``[[board.cameras]]`` config tables, so a
config written for a real board runs unchanged on the simulated one.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from drivers.clock import Clock
from drivers.registry import CHIPS, SensorPlacement
from hil.bus import SimulatedBus
from hil.cameras import SimulatedCamera
from hil.chips.base import EnvironmentSource
from hil.chips.bme280 import SimBME280
from hil.chips.mhz19 import SimMHZ19
from hil.chips.scd4x import SimSCD4x
from hil.chips.scd30 import SimSCD30
from hil.chips.sdp8xx import SimSDP3x, SimSDP8xx
from hil.chips.senseair_s8 import SimSenseairS8
from hil.chips.sht4x import SimSHT4x
from hil.clock import SimClock, WallClock
from hil.faults import ChipFaults
from hil.uart import SimulatedSerial
from hil.world import DuctWorld

SimulatorFactory: TypeAlias = Callable[[EnvironmentSource, Clock, int], object]
"""Builds one chip simulator: (environment, clock, I2C address; 0 for a UART chip)."""

SIMULATORS: Mapping[str, SimulatorFactory] = types.MappingProxyType(
    {
        # One simulator under each name of drivers.registry.CHIPS (a test keeps them equal).
        "bme280": lambda env, clock, address: SimBME280(env, clock, address),
        "bmp280": lambda env, clock, address: SimBME280(env, clock, address, chip_id=0x58),
        "sht4x": lambda env, clock, address: SimSHT4x(env, clock, address),
        "scd4x": lambda env, clock, address: SimSCD4x(env, clock, address),
        "scd30": lambda env, clock, address: SimSCD30(env, clock, address),
        "sdp8xx": lambda env, clock, address: SimSDP8xx(env, clock, address),
        "sdp3x": lambda env, clock, address: SimSDP3x(env, clock, address),
        "mhz19": lambda env, clock, _address: SimMHZ19(env, clock),
        "senseair_s8": lambda env, clock, _address: SimSenseairS8(env, clock),
    }
)


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A sensor on the board (mirrors the config's sensor table)."""

    name: str
    chip: str
    address: int | None = None
    port: str | None = None


DEFAULT_SENSORS: tuple[SensorSpec, ...] = (
    SensorSpec("bme280", "bme280", 0x76),
    SensorSpec("sht41", "sht4x", 0x44),
    SensorSpec("scd41", "scd4x", 0x62),
    SensorSpec("scd30", "scd30", 0x61),
    SensorSpec("filter_dp", "sdp8xx", 0x25),
    SensorSpec("mhz19", "mhz19", port="/dev/ttySIM0"),
    SensorSpec("s8", "senseair_s8", port="/dev/ttySIM1"),
)
DEFAULT_CAMERAS: tuple[str, ...] = ("upstream", "downstream")


@dataclass
class SimBoard:
    """A simulated board: the world, the clock, the bus, the ports, the cameras, the chips."""

    world: DuctWorld
    clock: Clock
    bus: SimulatedBus
    serial_ports: dict[str, SimulatedSerial] = field(default_factory=dict)
    cameras: dict[str, SimulatedCamera] = field(default_factory=dict)
    chips: dict[str, object] = field(default_factory=dict)
    """Sensor name -> simulator (I2C chips and UART chips alike)."""
    wall_clock: WallClock = field(default_factory=WallClock)
    """The time the board's readings are stamped with; it can jump (see :class:`WallClock`)."""

    def faults(self, name: str) -> ChipFaults:
        """A sensor's fault panel by board name: ``board.faults("scd41").absent = True``."""
        faults: ChipFaults = getattr(self.chips[name], "faults")  # noqa: B009 - duck-typed sims
        return faults

    def close(self) -> None:
        self.bus.close()
        for port in self.serial_ports.values():
            port.close()


def simulated_board(
    *,
    seed: int = 0,
    clock: Clock | None = None,
    sensors: Sequence[SensorPlacement] = DEFAULT_SENSORS,
    cameras: Sequence[str] = DEFAULT_CAMERAS,
    camera_size: tuple[int, int] = (1640, 1232),
    world: DuctWorld | None = None,
) -> SimBoard:
    """Build a simulated board. With no arguments: every supported chip and two cameras.

    ``clock`` defaults to a :class:`hil.clock.SimClock` (virtual time: nothing really waits).
    """
    clock = clock or SimClock()
    world = world or DuctWorld(clock, seed=seed)
    board = SimBoard(world=world, clock=clock, bus=SimulatedBus())
    for spec in sensors:
        chip_spec = CHIPS.get(spec.chip)
        factory = SIMULATORS.get(spec.chip)
        if chip_spec is None or factory is None:
            raise ValueError(f"no simulator for chip {spec.chip!r}")
        if chip_spec.bus == "i2c":
            address = spec.address or chip_spec.default_address or 0
            chip = factory(world.environment, clock, address)
            board.bus.attach(chip)  # type: ignore[arg-type]
        else:
            chip = factory(world.environment, clock, 0)
            port = spec.port or f"/dev/ttySIM{len(board.serial_ports)}"
            board.serial_ports[port] = SimulatedSerial(chip, port=port)  # type: ignore[arg-type]
        board.chips[spec.name] = chip
    width, height = camera_size
    for index, name in enumerate(cameras):
        board.cameras[name] = SimulatedCamera(
            name, world, seed=seed * 100 + index, width=width, height=height, clock=clock
        )
    return board
