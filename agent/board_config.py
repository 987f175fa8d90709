"""The ``[board]`` section: which board, and its ``[[board.sensors]]`` and ``[[board.cameras]]``.

What a chip accepts (bus, addresses, options and their ranges) comes from the chip registry
(:mod:`drivers.registry`); the board factories (:mod:`agent.board`) take this section as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeAlias

from pydantic import model_validator

from agent.config_base import ConfigPath, Problem, Section, TopicLevel, setting
from drivers.registry import (
    ALTITUDE,
    BAUDRATE,
    CHIPS,
    I2C_ADDRESS_MAX,
    I2C_ADDRESS_MIN,
    TEMPERATURE_OFFSET,
    ChipName,
    every_option,
)

BoardKind: TypeAlias = Literal["sim", "pi"]
CameraBackend: TypeAlias = Literal["picamera2", "opencv", "replay", "sim"]


def _takers(option: str) -> str:
    return ", ".join(c.name for c in CHIPS.values() if c.option(option))


class SensorConfig(Section):
    """One sensor chip: on the I2C bus at an address, or on a serial port (UART CO2 sensors)."""

    name: TopicLevel = setting(description="unique sensor name (used in topics)")
    chip: ChipName = setting(description="chip model")
    address: int | None = setting(
        None,
        "I2C address",
        hex=True,
        auto="per chip: "
        + ", ".join(
            f"{c.name} {c.default_address:#04x}"
            for c in CHIPS.values()
            if c.default_address is not None
        ),
    )
    port: str | None = setting(
        None, f"serial device of a UART chip ({_takers('baudrate')})", example="/dev/serial0"
    )
    baudrate: int | None = setting(
        None,
        f"{BAUDRATE.description} ({_takers('baudrate')})",
        auto=f"the chip's default ({BAUDRATE.default:g})",
        example=9600,
    )
    temperature_offset_c: float | None = setting(
        None, f"{TEMPERATURE_OFFSET.description} ({_takers('temperature_offset_c')})", example=2.0
    )
    altitude_m: float | None = setting(
        None, f"{ALTITUDE.description} ({_takers('altitude_m')})", example=250
    )
    interval_s: float | None = setting(
        None,
        "read this sensor at most this often, in seconds (a slow or power-hungry chip); between"
        " two reads its telemetry carries the last sample and its age_s",
        auto="[schedule] sensor_interval_s",
        gt=0,
    )

    @model_validator(mode="before")
    @classmethod
    def _chip_defaults(cls, data: Any) -> Any:
        """The chip's default address and baud rate, from the registry, when not given."""
        if not isinstance(data, dict) or data.get("chip") not in CHIPS:
            return data
        spec = CHIPS[data["chip"]]
        filled = dict(data)
        if spec.default_address is not None:
            filled.setdefault("address", spec.default_address)
        baudrate = spec.option("baudrate")
        if baudrate is not None and baudrate.default is not None:
            filled.setdefault("baudrate", int(baudrate.default))
        return filled

    @property
    def is_uart(self) -> bool:
        """True for the serial CO2 sensors, False for I2C chips."""
        return CHIPS[self.chip].bus == "uart"

    def problems(self) -> Iterator[Problem]:
        if self.is_uart:
            if self.port is None:
                yield ("port",), f"{self.chip} is a UART sensor: set port (e.g. /dev/serial0)"
            if self.address is not None:
                yield ("address",), f"{self.chip} is a UART sensor: address does not apply"
        else:
            if self.port is not None:
                yield ("port",), f"{self.chip} is an I2C sensor: port does not apply"
            if self.address is not None and not (
                I2C_ADDRESS_MIN <= self.address <= I2C_ADDRESS_MAX
            ):
                yield (
                    ("address",),
                    f"{self.address:#04x} is outside the 7-bit I2C range "
                    f"{I2C_ADDRESS_MIN:#04x}-{I2C_ADDRESS_MAX:#04x}",
                )
        spec = CHIPS[self.chip]
        for option in every_option():
            value = getattr(self, option.name)
            if value is None:
                continue
            if spec.option(option.name) is None:
                takers = " and ".join(c.name for c in CHIPS.values() if c.option(option.name))
                yield (option.name,), f"only {takers} take {option.name}, not {self.chip}"
            elif not option.low <= value <= option.high:
                yield (
                    (option.name,),
                    f"{value:g} is outside the range {option.low:g}-{option.high:g}",
                )


class CameraConfig(Section):
    """One camera looking into the duct."""

    name: TopicLevel = setting(description="unique camera name (used in topics)")
    backend: CameraBackend = setting(
        description='capture backend ("sim" only on the simulated board)'
    )
    index: int | None = setting(
        None, "camera index (picamera2: required; opencv: index or device)", ge=0
    )
    device: str | None = setting(None, "video device of an opencv camera", example="/dev/video0")
    directory: ConfigPath | None = setting(
        None, "image directory a replay camera plays back", example="/srv/replay/cam0"
    )
    width: int = setting(1640, "capture width in pixels", gt=0)
    height: int = setting(1232, "capture height in pixels", gt=0)
    settle_s: float = setting(1.0, "time for exposure to settle before a still capture", ge=0)

    def problems(self) -> Iterator[Problem]:
        if self.backend == "picamera2" and self.index is None:
            yield ("index",), "a picamera2 camera needs index (0, 1, ...)"
        if self.backend == "opencv" and self.index is None and self.device is None:
            yield ("index",), "an opencv camera needs index or device"
        if self.backend == "opencv" and self.index is not None and self.device is not None:
            yield ("device",), "an opencv camera takes index or device, not both"
        if self.backend == "replay" and self.directory is None:
            yield ("directory",), "a replay camera needs directory"


SENSOR_EXAMPLES = (
    {"name": "duct", "chip": "bme280", "address": 0x76},
    {"name": "humidity", "chip": "sht4x"},
    {"name": "co2", "chip": "scd4x", "altitude_m": 250},
    {"name": "filter", "chip": "sdp8xx"},
    {"name": "co2_uart", "chip": "senseair_s8", "port": "/dev/serial0"},
)
CAMERA_EXAMPLES = (
    {"name": "upstream", "backend": "picamera2", "index": 0},
    {"name": "downstream", "backend": "picamera2", "index": 1},
)


UNSTATED_KIND = (
    '[board] kind is not set: say which board this is, kind = "pi" (the chips listed in'
    ' [[board.sensors]]) or kind = "sim" (the simulated board: made-up readings marked "sim": true)'
)
"""Why a configuration file that does not name its board is refused (see ``kind_stated``)."""


class BoardConfig(Section):
    """Which board: the built-in simulated one, or a Raspberry Pi with its chips and cameras."""

    kind: BoardKind = setting(
        "sim", "sim: simulated (no sensors listed = the built-in board); pi: a real board"
    )
    i2c_bus: int = setting(1, "I2C bus number (/dev/i2c-N)", ge=0)
    sim_seed: int = setting(0, "seed of the simulated world and cameras")
    sim_speed: float = setting(1.0, "time acceleration of the simulated world", gt=0)
    sensors: tuple[SensorConfig, ...] = setting(
        (), "[[board.sensors]] tables", example=SENSOR_EXAMPLES, strict=False
    )
    cameras: tuple[CameraConfig, ...] = setting(
        (), "[[board.cameras]] tables", example=CAMERA_EXAMPLES, strict=False
    )

    @property
    def kind_stated(self) -> bool:
        """The configuration says which board it is for (``kind`` written, not defaulted).

        ``remotair run`` and ``config check`` refuse a file that does not: a service must never
        publish simulated readings because nobody said otherwise.
        """
        return "kind" in self.model_fields_set

    @property
    def is_builtin_sim(self) -> bool:
        """A simulated board with nothing listed: the board builder supplies the default one."""
        return self.kind == "sim" and not self.sensors and not self.cameras

    def problems(self) -> Iterator[Problem]:
        if self.kind == "pi" and not self.sensors:
            yield ("sensors",), 'a "pi" board needs at least one [[board.sensors]] table'
        for i, camera in enumerate(self.cameras):
            if self.kind != "sim" and camera.backend == "sim":
                yield (
                    ("cameras", i, "backend"),
                    'a "sim" camera needs the simulated board ([board] kind = "sim")',
                )
        yield from _unique_names("sensors", [s.name for s in self.sensors])
        yield from _unique_names("cameras", [c.name for c in self.cameras])
        owners: dict[object, str] = {}
        for i, sensor in enumerate(self.sensors):
            if sensor.is_uart:
                where: object = ("port", sensor.port)
                key = "port"
                shown = str(sensor.port)
            else:
                where = ("address", sensor.address)
                key = "address"
                shown = f"{sensor.address:#04x}" if sensor.address is not None else "None"
            if where in owners:
                yield ("sensors", i, key), f"{shown} is already used by sensor {owners[where]!r}"
            else:
                owners[where] = sensor.name


def _unique_names(key: str, names: Sequence[str]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield (key, i, "name"), f"{name!r} is used twice; names must be unique"
        seen.add(name)
