"""Every supported sensor chip, described once.

A :class:`ChipSpec` says what the rest of the system needs to know about a chip: the bus it sits
on, the addresses it can answer at, the driver class, the quantities it measures (with units and
the range a working chip can report at all), the options it takes, and how long it needs after
power-up. Config validation, board wiring, ``remotair i2c scan``, ``doctor``, Home Assistant
discovery and the documentation's sensor table all derive from :data:`CHIPS`; the simulated board
(:mod:`hil`) registers one simulator under each name.

Adding a chip is: a driver, its spec here, its simulator in ``hil``, its tests.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from drivers.bme280 import BME280
from drivers.mhz19 import MHZ19
from drivers.scd4x import ALTITUDE_RANGE_M, TEMPERATURE_OFFSET_RANGE_C, SCD4x
from drivers.scd30 import SCD30
from drivers.sdp8xx import SDP3x, SDP8xx
from drivers.senseair_s8 import SenseairS8
from drivers.sensor import Sensor
from drivers.sht4x import SHT4x

Bus: TypeAlias = Literal["i2c", "uart"]

I2C_ADDRESS_MIN = 0x03
I2C_ADDRESS_MAX = 0x77
"""The 7-bit addresses a device may use (i2cdetect's default range)."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """One measured quantity: its field name in :class:`drivers.measurement.Measurement`."""

    name: str
    label: str
    unit: str
    plausible: tuple[float, float]
    """What a working chip can report at all (datasheet ranges, a little wider for the duct)."""


QUANTITIES: Mapping[str, Quantity] = types.MappingProxyType(
    {
        q.name: q
        for q in (
            Quantity("temperature_c", "temperature", "°C", (-40.0, 85.0)),
            Quantity("humidity_rh", "humidity", "%", (0.0, 100.0)),
            Quantity("pressure_pa", "pressure", "Pa", (30_000.0, 110_000.0)),
            Quantity("co2_ppm", "CO2", "ppm", (250.0, 40_000.0)),
            Quantity(
                "differential_pressure_pa",
                "filter differential pressure",
                "Pa",
                (-4_000.0, 4_000.0),
            ),
        )
    }
)


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """A per-sensor setting a chip takes (a ``[[board.sensors]]`` key)."""

    name: str
    description: str
    low: float
    high: float
    default: float | None = None
    integer: bool = False
    """The chip takes whole numbers only (the configured value is rounded)."""
    for_driver: bool = True
    """Passed to the driver's constructor; False: used to open the bus (the baud rate)."""


TEMPERATURE_OFFSET = OptionSpec(
    "temperature_offset_c",
    "temperature offset: the heat of the board the chip's own temperature reading includes",
    *TEMPERATURE_OFFSET_RANGE_C,
)
ALTITUDE = OptionSpec(
    "altitude_m",
    "altitude above sea level for the CO2 pressure compensation",
    *ALTITUDE_RANGE_M,
    integer=True,
)
BAUDRATE = OptionSpec(
    "baudrate", "UART baud rate", 1200, 115_200, default=9600, integer=True, for_driver=False
)


@dataclass(frozen=True, slots=True)
class ChipSpec:
    """One chip: everything outside its driver that needs to know about it."""

    name: str
    title: str
    bus: Bus
    driver: Callable[..., Sensor]
    quantities: tuple[str, ...]
    startup_s: float
    """Power-up time until the chip answers (datasheet)."""
    default_address: int | None = None
    alternative_addresses: tuple[int, ...] = ()
    options: tuple[OptionSpec, ...] = ()

    @property
    def addresses(self) -> tuple[int, ...]:
        """Every address the chip can answer at, the default first (empty for UART chips)."""
        first = () if self.default_address is None else (self.default_address,)
        return first + self.alternative_addresses

    def option(self, name: str) -> OptionSpec | None:
        """The option called ``name``, or None when this chip does not take it."""
        return next((o for o in self.options if o.name == name), None)


def _chips(*specs: ChipSpec) -> Mapping[str, ChipSpec]:
    return types.MappingProxyType({s.name: s for s in specs})


# Start-up times: BME280 datasheet 5.1 (2 ms), SHT4x 4.1 (1 ms), SCD4x 3.1 (1 s), SCD30 interface
# description 1.1 (2 s boot), SDP8xx 2.2 / SDP3x 2.2 (25 ms / 20 ms), MH-Z19B preheat (3 min),
# Senseair S8 warm-up (30 s).
CHIPS: Mapping[str, ChipSpec] = _chips(
    ChipSpec(
        "bme280",
        "BME280",
        "i2c",
        BME280,
        ("temperature_c", "humidity_rh", "pressure_pa"),
        0.002,
        0x76,
        (0x77,),
    ),
    ChipSpec(
        "bmp280", "BMP280", "i2c", BME280, ("temperature_c", "pressure_pa"), 0.002, 0x76, (0x77,)
    ),
    ChipSpec(
        "sht4x", "SHT4x", "i2c", SHT4x, ("temperature_c", "humidity_rh"), 0.001, 0x44, (0x45, 0x46)
    ),
    ChipSpec(
        "scd4x",
        "SCD4x",
        "i2c",
        SCD4x,
        ("co2_ppm", "temperature_c", "humidity_rh"),
        1.0,
        0x62,
        options=(TEMPERATURE_OFFSET, ALTITUDE),
    ),
    ChipSpec(
        "scd30",
        "SCD30",
        "i2c",
        SCD30,
        ("co2_ppm", "temperature_c", "humidity_rh"),
        2.0,
        0x61,
        options=(TEMPERATURE_OFFSET, ALTITUDE),
    ),
    ChipSpec(
        "sdp8xx", "SDP8xx", "i2c", SDP8xx, ("differential_pressure_pa",), 0.025, 0x25, (0x26,)
    ),
    ChipSpec(
        "sdp3x", "SDP3x", "i2c", SDP3x, ("differential_pressure_pa",), 0.020, 0x21, (0x22, 0x23)
    ),
    ChipSpec("mhz19", "MH-Z19", "uart", MHZ19, ("co2_ppm",), 180.0, options=(BAUDRATE,)),
    ChipSpec(
        "senseair_s8", "Senseair S8", "uart", SenseairS8, ("co2_ppm",), 30.0, options=(BAUDRATE,)
    ),
)

ChipName: TypeAlias = Literal[
    "bme280", "bmp280", "sht4x", "scd4x", "scd30", "sdp8xx", "sdp3x", "mhz19", "senseair_s8"
]
"""The names of :data:`CHIPS`, as a type (a test keeps the two equal)."""


class SensorPlacement(Protocol):
    """Where one configured sensor sits: what wiring needs of a ``[[board.sensors]]`` entry."""

    @property
    def name(self) -> str: ...
    @property
    def chip(self) -> str: ...
    @property
    def address(self) -> int | None: ...
    @property
    def port(self) -> str | None: ...


def chips_at(address: int) -> tuple[ChipSpec, ...]:
    """The I2C chips that can answer at ``address`` (what ``i2c scan`` shows)."""
    return tuple(s for s in CHIPS.values() if address in s.addresses)


def every_option() -> tuple[OptionSpec, ...]:
    """Each option any chip takes, once, in a stable order."""
    seen: dict[str, OptionSpec] = {}
    for spec in CHIPS.values():
        for option in spec.options:
            seen.setdefault(option.name, option)
    return tuple(seen.values())


def sensor_table_markdown() -> str:
    """The supported chips as a Markdown table (for the documentation)."""
    rows = [
        "| Chip | Bus | Address | Measures | Options |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in CHIPS.values():
        address = ", ".join(f"`{a:#04x}`" for a in s.addresses) or "serial port"
        measures = ", ".join(f"{q} ({QUANTITIES[q].unit})" for q in s.quantities)
        options = ", ".join(f"`{o.name}` {o.low:g}..{o.high:g}" for o in s.options) or "-"
        rows.append(
            f"| `{s.name}` ({s.title}) | {s.bus.upper()} | {address} | {measures} | {options} |"
        )
    return "\n".join(rows) + "\n"
