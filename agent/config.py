"""The agent's configuration: one TOML file turned into typed, frozen objects, once, at start-up.

Every section is a frozen dataclass whose fields carry their description in
``field(metadata={"doc": ...})``. One generic loader walks that tree, so the schema, the
validation, the commented example (:func:`example_toml`) and the README's key reference
(:func:`reference_markdown`) all come from the same place and cannot drift apart.

The loader is strict on purpose: a board runs unattended for years, and a typo that silently
falls back to a default (``prot = 8883``) is found months later. Unknown keys, wrong types and
impossible values are errors; every message names the file and the dotted key, and all of them
are reported together.

Field metadata understood by the loader:

``doc``       the description (required on every field);
``gt``/``ge``/``le``  numeric bounds;
``topic_safe`` the string must match ``[A-Za-z0-9_-]+`` (it becomes an MQTT topic level);
``secret``    a path to a secret: ``credential:NAME`` means ``$CREDENTIALS_DIRECTORY/NAME``
              (systemd ``LoadCredential=``) and the file must exist;
``auto``      text describing a default computed at load time (host name, systemd directories);
``example``   a value shown (commented out) in the example for fields that are unset by default;
``hex``       show integers in hexadecimal.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import re
import socket
import textwrap
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeAlias

from agent.alarms import AlarmsConfig
from agent.errors import ExitCode, RemotairError
from drivers.registry import CHIPS, I2C_ADDRESS_MAX, I2C_ADDRESS_MIN, ChipName, every_option

_log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/remotair/agent.toml")
SHIPPED_MODEL_NAME = "visual_clean_resnet18_int8.onnx"

ENV_DEVICE_ID = "REMOTAIR_DEVICE_ID"
ENV_MQTT_HOST = "REMOTAIR_MQTT_HOST"
ENV_MQTT_PORT = "REMOTAIR_MQTT_PORT"

BoardKind: TypeAlias = Literal["sim", "pi"]
Chip: TypeAlias = ChipName
CameraBackend: TypeAlias = Literal["picamera2", "opencv", "replay", "sim"]
MqttProtocol: TypeAlias = Literal["3.1.1", "5"]
VisionBackend: TypeAlias = Literal["onnx", "rekognition", "cascade", "off"]
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]

_TOPIC_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_CREDENTIAL_PREFIX = "credential:"

Problem: TypeAlias = tuple[tuple[str | int, ...], str]
"""A cross-field finding of a section: the key path relative to the section, and the message."""


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """Who this board is."""

    id: str = field(
        default="remotair",
        metadata=_doc(
            "device id: the MQTT topic level remotair/v1/<id>/ and the default client id",
            topic_safe=True,
            auto="the host name, made topic-safe",
        ),
    )
    name: str = field(
        default="",
        metadata=_doc(
            "friendly name shown by Home Assistant", auto='"Remotair <id>"', example="Duct AHU-2"
        ),
    )


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """One sensor chip: on the I2C bus at an address, or on a serial port (UART CO2 sensors)."""

    name: str = field(metadata=_doc("unique sensor name (used in topics)", topic_safe=True))
    chip: Chip = field(metadata=_doc("chip model"))
    address: int | None = field(
        default=None,
        metadata=_doc(
            "I2C address",
            hex=True,
            auto="per chip: "
            + ", ".join(
                f"{c.name} {c.default_address:#04x}"
                for c in CHIPS.values()
                if c.default_address is not None
            ),
        ),
    )
    port: str | None = field(
        default=None,
        metadata=_doc("serial device of a UART chip (mhz19, senseair_s8)", example="/dev/serial0"),
    )
    baudrate: int | None = field(
        default=None,
        metadata=_doc("UART baud rate", auto="the chip's default (9600)", example=9600),
    )
    temperature_offset_c: float | None = field(
        default=None,
        metadata=_doc("temperature offset of a CO2 chip (scd4x, scd30)", example=2.0),
    )
    altitude_m: float | None = field(
        default=None,
        metadata=_doc("altitude above sea level for CO2 compensation (scd4x, scd30)", example=250),
    )

    def __post_init__(self) -> None:
        spec = CHIPS.get(self.chip)
        if spec is None:
            return
        if self.address is None:
            object.__setattr__(self, "address", spec.default_address)
        baudrate = spec.option("baudrate")
        if self.baudrate is None and baudrate is not None and baudrate.default is not None:
            object.__setattr__(self, "baudrate", int(baudrate.default))

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
                takers = [c.name for c in CHIPS.values() if c.option(option.name)]
                yield (
                    (option.name,),
                    f"only {' and '.join(takers)} take {option.name}, not {self.chip}",
                )
            elif not option.low <= value <= option.high:
                yield (
                    (option.name,),
                    f"{value:g} is outside the range {option.low:g}-{option.high:g}",
                )


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """One camera looking into the duct."""

    name: str = field(metadata=_doc("unique camera name (used in topics)", topic_safe=True))
    backend: CameraBackend = field(metadata=_doc("capture backend"))
    index: int | None = field(
        default=None,
        metadata=_doc("camera index (picamera2: required; opencv: index or device)", ge=0),
    )
    device: str | None = field(
        default=None, metadata=_doc("video device of an opencv camera", example="/dev/video0")
    )
    directory: Path | None = field(
        default=None,
        metadata=_doc("image directory a replay camera plays back", example="/srv/replay/cam0"),
    )
    width: int = field(default=1640, metadata=_doc("capture width in pixels", gt=0))
    height: int = field(default=1232, metadata=_doc("capture height in pixels", gt=0))
    settle_s: float = field(
        default=1.0, metadata=_doc("time for exposure to settle before a still capture", ge=0)
    )

    def problems(self) -> Iterator[Problem]:
        if self.backend == "picamera2" and self.index is None:
            yield ("index",), "a picamera2 camera needs index (0, 1, ...)"
        if self.backend == "opencv" and self.index is None and self.device is None:
            yield ("index",), "an opencv camera needs index or device"
        if self.backend == "opencv" and self.index is not None and self.device is not None:
            yield ("device",), "an opencv camera takes index or device, not both"
        if self.backend == "replay" and self.directory is None:
            yield ("directory",), "a replay camera needs directory"


_SENSOR_EXAMPLES = (
    {"name": "duct", "chip": "bme280", "address": 0x76},
    {"name": "humidity", "chip": "sht4x"},
    {"name": "co2", "chip": "scd4x", "altitude_m": 250},
    {"name": "filter", "chip": "sdp8xx"},
    {"name": "co2_uart", "chip": "senseair_s8", "port": "/dev/serial0"},
)
_CAMERA_EXAMPLES = (
    {"name": "upstream", "backend": "picamera2", "index": 0},
    {"name": "downstream", "backend": "picamera2", "index": 1},
)


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """Which board: the built-in simulated one, or a Raspberry Pi with its chips and cameras."""

    kind: BoardKind = field(
        default="sim",
        metadata=_doc("sim: simulated (no sensors listed = the built-in board); pi: a real board"),
    )
    i2c_bus: int = field(default=1, metadata=_doc("I2C bus number (/dev/i2c-N)", ge=0))
    sim_seed: int = field(default=0, metadata=_doc("seed of the simulated world and cameras"))
    sim_speed: float = field(
        default=1.0, metadata=_doc("time acceleration of the simulated world", gt=0)
    )
    sensors: tuple[SensorConfig, ...] = field(
        default=(), metadata=_doc("[[board.sensors]] tables", example=_SENSOR_EXAMPLES)
    )
    cameras: tuple[CameraConfig, ...] = field(
        default=(), metadata=_doc("[[board.cameras]] tables", example=_CAMERA_EXAMPLES)
    )

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


@dataclass(frozen=True, slots=True)
class MqttTlsConfig:
    """TLS to the broker. Present (even empty) means TLS; empty uses the system CA store."""

    ca: Path | None = field(
        default=None,
        metadata=_doc(
            "CA bundle to verify the broker", secret=True, example="/etc/remotair/ca.pem"
        ),
    )
    cert: Path | None = field(
        default=None,
        metadata=_doc(
            "client certificate (AWS IoT Core style)",
            secret=True,
            example="credential:device-cert",
        ),
    )
    key: Path | None = field(
        default=None,
        metadata=_doc("client private key", secret=True, example="credential:device-key"),
    )

    def problems(self) -> Iterator[Problem]:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            yield (missing,), "cert and key go together: set both or neither"


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The broker and how to talk to it."""

    host: str = field(default="localhost", metadata=_doc("broker host name or address"))
    port: int = field(
        default=1883,
        metadata=_doc("broker port (8883 for TLS; not changed by [mqtt.tls])", ge=1, le=65535),
    )
    protocol: MqttProtocol = field(default="3.1.1", metadata=_doc("MQTT protocol version"))
    client_id: str = field(
        default="", metadata=_doc("MQTT client id", auto="the device id", example="remotair-01")
    )
    keepalive: int = field(default=60, metadata=_doc("keep-alive in seconds", ge=1, le=65535))
    username: str | None = field(default=None, metadata=_doc("user name", example="remotair-01"))
    password: str | None = field(
        default=None,
        repr=False,
        metadata=_doc("password (prefer password_file)", example="change-me"),
    )
    password_file: Path | None = field(
        default=None,
        metadata=_doc("file holding the password", secret=True, example="credential:mqtt-password"),
    )
    handshake_timeout_s: float = field(
        default=10.0, metadata=_doc("TCP connect and TLS handshake timeout", gt=0)
    )
    inflight: int = field(
        default=20, metadata=_doc("QoS 1 messages awaiting PUBACK at once", ge=1, le=65535)
    )
    reconnect_min_s: float = field(default=1.0, metadata=_doc("first reconnect delay", gt=0))
    reconnect_max_s: float = field(
        default=120.0, metadata=_doc("longest reconnect delay (exponential back-off)", gt=0)
    )
    topic_root: str = field(default="remotair/v1", metadata=_doc("topic prefix before the id"))
    ha_discovery: bool = field(default=False, metadata=_doc("publish Home Assistant discovery"))
    ha_prefix: str = field(
        default="homeassistant", metadata=_doc("Home Assistant discovery prefix")
    )
    tls: MqttTlsConfig | None = field(default=None, metadata=_doc("[mqtt.tls]: enables TLS"))

    def problems(self) -> Iterator[Problem]:
        if not self.host:
            yield ("host",), "must not be empty"
        if self.password is not None and self.password_file is not None:
            yield ("password_file",), "set password or password_file, not both"
        if self.reconnect_min_s > self.reconnect_max_s:
            yield (
                ("reconnect_max_s",),
                f"{self.reconnect_max_s:g} is less than reconnect_min_s {self.reconnect_min_s:g}",
            )
        for key in ("topic_root", "ha_prefix"):
            message = _topic_prefix_problem(getattr(self, key))
            if message:
                yield (key,), message


def _topic_prefix_problem(value: str) -> str | None:
    levels = value.split("/")
    if not value or any(not level for level in levels):
        return f"{value!r} is not a topic prefix: no empty level, no leading or trailing '/'"
    if any(c in value for c in "+#\x00"):
        return f"{value!r} must not contain the wildcards '+' or '#'"
    return None


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """How often things happen. Fractions of a second are allowed (tests run fast)."""

    sensor_interval_s: float = field(default=30.0, metadata=_doc("sensor sampling period", gt=0))
    snapshot_interval_s: float = field(
        default=900.0, metadata=_doc("camera snapshot period (each camera)", gt=0)
    )
    status_interval_s: float = field(
        default=300.0, metadata=_doc("retained status message period", gt=0)
    )


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where the outbox, alarm state and snapshots live."""

    dir: Path = field(
        default=Path("/var/lib/remotair"),
        metadata=_doc(
            "state directory", auto="$STATE_DIRECTORY when systemd sets it, else /var/lib/remotair"
        ),
    )
    outbox_max_messages: int = field(
        default=100_000, metadata=_doc("outbox bound in messages", ge=1)
    )
    outbox_max_mb: float = field(default=64.0, metadata=_doc("outbox bound in megabytes", gt=0))
    snapshots_keep: int = field(
        default=500, metadata=_doc("snapshots kept on disk, oldest deleted first", ge=0)
    )


@dataclass(frozen=True, slots=True)
class RekognitionConfig:
    """Amazon Rekognition Custom Labels (backend "rekognition", or "cascade" when uncertain)."""

    project_version_arn: str | None = field(
        default=None,
        metadata=_doc(
            "model version ARN (DetectCustomLabels ProjectVersionArn)",
            example="arn:aws:rekognition:eu-west-1:123456789012:project/ducts/version/v1/1",
        ),
    )
    region: str | None = field(
        default=None,
        metadata=_doc("AWS region", auto="the region in project_version_arn", example="eu-west-1"),
    )
    min_confidence: float = field(
        default=50.0, metadata=_doc("MinConfidence in percent", ge=0, le=100)
    )
    label_map: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            'Custom Labels label -> "clean" or "dirty" (labels named clean/dirty map themselves)',
            example={"Clean duct": "clean", "Dust": "dirty"},
        ),
    )
    s3_bucket: str | None = field(
        default=None,
        metadata=_doc(
            "send images through this S3 bucket instead of inline bytes", example="ducts"
        ),
    )
    s3_prefix: str = field(default="", metadata=_doc("key prefix inside s3_bucket"))
    timeout_s: float = field(default=10.0, metadata=_doc("request timeout", gt=0))

    @property
    def effective_region(self) -> str | None:
        """The configured region, else the one inside the ARN."""
        if self.region:
            return self.region
        parts = (self.project_version_arn or "").split(":")
        return parts[3] if len(parts) > 3 and parts[3] else None

    def problems(self) -> Iterator[Problem]:
        arn = self.project_version_arn
        if arn is not None and not re.fullmatch(
            r"arn:aws[a-z-]*:rekognition:[a-z0-9-]+:\d{12}:project/.+/version/.+", arn
        ):
            yield ("project_version_arn",), f"{arn!r} is not a Rekognition project version ARN"
        for label, verdict in self.label_map.items():
            if verdict not in ("clean", "dirty"):
                yield ("label_map", label), f'{verdict!r} must be "clean" or "dirty"'


def _shipped_model() -> Path:
    return Path(str(resources.files("models"))) / SHIPPED_MODEL_NAME


@dataclass(frozen=True, slots=True)
class VisionConfig:
    """Visual Clean: how a snapshot becomes a clean/dirty verdict."""

    backend: VisionBackend = field(
        default="onnx",
        metadata=_doc(
            "onnx (local), rekognition (cloud), cascade (local, cloud if uncertain), off"
        ),
    )
    model: Path = field(
        default_factory=_shipped_model,
        metadata=_doc(
            "ONNX model (its manifest sits beside it)",
            auto=f"the shipped models/{SHIPPED_MODEL_NAME}",
            example="/etc/remotair/model.onnx",
        ),
    )
    threads: int = field(default=1, metadata=_doc("ONNX Runtime intra-op threads", ge=1))
    uncertain_low: float = field(
        default=0.35,
        metadata=_doc("dirty probability above which a verdict is uncertain", ge=0, le=1),
    )
    uncertain_high: float = field(
        default=0.65,
        metadata=_doc("dirty probability below which a verdict is uncertain", ge=0, le=1),
    )
    rekognition: RekognitionConfig = field(
        default_factory=RekognitionConfig, metadata=_doc("[vision.rekognition]")
    )

    def problems(self) -> Iterator[Problem]:
        if self.uncertain_low >= self.uncertain_high:
            yield (
                ("uncertain_high",),
                f"{self.uncertain_high:g} must be greater than uncertain_low "
                f"{self.uncertain_low:g}",
            )
        if self.backend in ("rekognition", "cascade") and not self.rekognition.project_version_arn:
            yield (
                ("rekognition", "project_version_arn"),
                f'backend "{self.backend}" needs [vision.rekognition] project_version_arn',
            )


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The local control socket the CLI talks to."""

    socket: Path = field(
        default=Path("/run/remotair/control.sock"),
        metadata=_doc(
            "Unix socket path",
            auto="$RUNTIME_DIRECTORY/control.sock when systemd sets it, "
            "else /run/remotair/control.sock",
        ),
    )


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """What the agent logs."""

    level: LogLevel = field(default="info", metadata=_doc("log level"))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole agent configuration. Build it with :func:`load_config`."""

    device: DeviceConfig = field(default_factory=DeviceConfig, metadata=_doc("[device]"))
    board: BoardConfig = field(default_factory=BoardConfig, metadata=_doc("[board]"))
    mqtt: MqttConfig = field(default_factory=MqttConfig, metadata=_doc("[mqtt]"))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata=_doc("[schedule]"))
    storage: StorageConfig = field(default_factory=StorageConfig, metadata=_doc("[storage]"))
    vision: VisionConfig = field(default_factory=VisionConfig, metadata=_doc("[vision]"))
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig, metadata=_doc("[alarms]"))
    control: ControlConfig = field(default_factory=ControlConfig, metadata=_doc("[control]"))
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata=_doc("[logging]"))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ConfigError(RemotairError):
    """The configuration is not usable. ``errors`` holds every problem found, one line each."""

    exit_code = ExitCode.USAGE

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        if len(self.errors) == 1:
            text = self.errors[0]
        else:
            text = f"{len(self.errors)} configuration errors:\n" + "\n".join(
                f"  {line}" for line in self.errors
            )
        super().__init__(text)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_config(path: Path | None, *, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate ``path`` (``None``: the defaults, i.e. the built-in simulated board).

    Environment overrides (``REMOTAIR_DEVICE_ID``, ``REMOTAIR_MQTT_HOST``,
    ``REMOTAIR_MQTT_PORT``) and systemd's directories and credentials come from ``env``.
    Raises :class:`ConfigError` listing every problem.
    """
    if path is None:
        return parse_config("", source="<defaults>", env=env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_config(text, source=str(path), env=env, base_dir=path.parent)


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    env: Mapping[str, str] = os.environ,
    base_dir: Path | None = None,
) -> Config:
    """Validate TOML ``text``; ``source`` names it in messages, relative paths use ``base_dir``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from None
    loader = _Loader(source=source, env=env, base_dir=base_dir or Path.cwd())
    loader.apply_environment(document)
    config = loader.load(Config, document, ())
    if loader.errors or not isinstance(config, Config):
        raise ConfigError(loader.errors)
    config = loader.fill_automatic(config)
    if loader.errors:
        raise ConfigError(loader.errors)
    _log.debug(
        "config loaded source=%s device=%s board=%s sensors=%d cameras=%d broker=%s:%d",
        source,
        config.device.id,
        config.board.kind,
        len(config.board.sensors),
        len(config.board.cameras),
        config.mqtt.host,
        config.mqtt.port,
    )
    return config


class _Invalid:
    """Marks a value that failed validation (its error is already recorded)."""


_INVALID = _Invalid()
_Where: TypeAlias = tuple[str | int, ...]


def _dotted(where: _Where) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")


def _describe_key(where: _Where) -> str:
    """``[mqtt] port`` for plain section keys, ``board.sensors[2].address`` inside arrays."""
    if not where:
        return ""
    if any(isinstance(p, int) for p in where):
        return _dotted(where)
    if len(where) == 1:
        return f"[{where[0]}]"
    return f"[{_dotted(where[:-1])}] {where[-1]}"


def _describe_value(value: object) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), f"a {type(value).__name__}")
    if isinstance(value, dict | list):
        return kind
    shown = _toml_value(value) if isinstance(value, bool | int | float | str) else str(value)
    return f"{shown} ({kind})"


class _Loader:
    """Walks the dataclass tree over a TOML document, collecting every error."""

    def __init__(self, *, source: str, env: Mapping[str, str], base_dir: Path) -> None:
        self.source = source
        self.env = env
        self.base_dir = base_dir
        self.errors: list[str] = []
        self.origins: dict[str, str] = {}  # dotted key -> environment variable that set it
        self.present: set[str] = set()  # dotted keys given in the document (or environment)

    def error(self, where: _Where, message: str) -> None:
        variable = self.origins.get(_dotted(where))
        if variable is not None:
            self.errors.append(f"${variable} (overrides {_describe_key(where)}): {message}")
        else:
            key = _describe_key(where)
            self.errors.append(
                f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}"
            )

    def apply_environment(self, document: dict[str, Any]) -> None:
        overrides: tuple[tuple[str, str, str, bool], ...] = (
            (ENV_DEVICE_ID, "device", "id", False),
            (ENV_MQTT_HOST, "mqtt", "host", False),
            (ENV_MQTT_PORT, "mqtt", "port", True),
        )
        for variable, section, key, numeric in overrides:
            raw = self.env.get(variable, "")
            if not raw:
                continue
            table = document.setdefault(section, {})
            if not isinstance(table, dict):
                continue  # the section's own type error is reported by the loader
            value: object = raw
            if numeric and re.fullmatch(r"\s*\d+\s*", raw):
                value = int(raw)
            table[key] = value
            self.origins[f"{section}.{key}"] = variable

    # -- the generic walk ---------------------------------------------------------------------

    def load(self, cls: type[Any], table: object, where: _Where) -> Any:
        if not isinstance(table, dict):
            self.error(where, f"expected a table, got {_describe_value(table)}")
            return _INVALID
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for key in table:
            if key not in fields:
                self.error((*where, key), self._unknown(key, list(fields), section=not where))
        values: dict[str, Any] = {}
        ok = True
        for name, f in fields.items():
            if name not in table:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    self.error((*where, name), "missing (required)")
                    ok = False
                continue
            self.present.add(_dotted((*where, name)))
            value = self.convert(table[name], hints[name], (*where, name), f.metadata)
            if value is _INVALID or not self.check_bounds(value, (*where, name), f.metadata):
                ok = False
                continue
            values[name] = value
        if not ok:
            return _INVALID
        try:
            obj = cls(**values)
        except (TypeError, ValueError) as exc:  # a section's own __post_init__ checks
            self.error(where, str(exc))
            return _INVALID
        problems = getattr(obj, "problems", None)
        if problems is not None:
            for relative, message in problems():
                self.error(where + relative, message)
        return obj

    def _unknown(self, key: str, known: list[str], *, section: bool) -> str:
        what = "unknown section" if section else "unknown key"
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or [
            k
            for k in known
            if len(k) > 2 and key.startswith(k)  # "certificate" -> "cert"
        ]
        return f"{what} (did you mean {close[0]!r}?)" if close else what

    def convert(self, value: object, tp: Any, where: _Where, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            (inner,) = [a for a in args if a is not type(None)]  # only "X | None" is used
            return self.convert(value, inner, where, meta)
        if origin is Literal:
            if isinstance(value, str) and value in args:
                return value
            choices = ", ".join(json.dumps(a) for a in args)
            self.error(where, f"expected one of {choices}, got {_describe_value(value)}")
            return _INVALID
        if origin is tuple:
            return self.convert_array_of_tables(value, args[0], where)
        if origin is dict:
            return self.convert_table_of(value, args[1], where, meta)
        if dataclasses.is_dataclass(tp):
            return self.load(typing.cast(type[Any], tp), value, where)
        if tp is bool:
            if isinstance(value, bool):
                return value
            return self.wrong_type(where, "true or false", value)
        if tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return self.wrong_type(where, "an integer", value)
        if tp is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value):
                    self.error(where, f"{value} is not a finite number")
                    return _INVALID
                return float(value)
            return self.wrong_type(where, "a number", value)
        if tp is str:
            if not isinstance(value, str):
                return self.wrong_type(where, "a string", value)
            if meta.get("topic_safe") and not _TOPIC_SAFE.fullmatch(value):
                self.error(
                    where, f"{value!r} is not topic-safe: use only letters, digits, '_' and '-'"
                )
                return _INVALID
            return value
        if tp is Path:
            if not isinstance(value, str) or not value:
                return self.wrong_type(where, "a path (a non-empty string)", value)
            return self.resolve_path(value, where, secret=bool(meta.get("secret")))
        raise TypeError(f"config schema: unsupported field type {tp!r} at {_dotted(where)}")

    def wrong_type(self, where: _Where, expected: str, value: object) -> _Invalid:
        self.error(where, f"expected {expected}, got {_describe_value(value)}")
        return _INVALID

    def convert_array_of_tables(self, value: object, item: type[Any], where: _Where) -> Any:
        if not isinstance(value, list):
            return self.wrong_type(where, "an array of tables", value)
        items = [self.load(item, entry, (*where, i)) for i, entry in enumerate(value)]
        return _INVALID if any(v is _INVALID for v in items) else tuple(items)

    def convert_table_of(
        self, value: object, item: Any, where: _Where, meta: Mapping[str, Any]
    ) -> Any:
        if not isinstance(value, dict):
            return self.wrong_type(where, "a table", value)
        converted = {k: self.convert(v, item, (*where, k), meta) for k, v in value.items()}
        return _INVALID if any(v is _INVALID for v in converted.values()) else converted

    def check_bounds(self, value: object, where: _Where, meta: Mapping[str, Any]) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return True
        ge, le, gt = meta.get("ge"), meta.get("le"), meta.get("gt")
        shown = _toml_value(value)
        if ge is not None and le is not None and not ge <= value <= le:
            self.error(where, f"{shown} is outside the range {ge}-{le}")
            return False
        if ge is not None and value < ge:
            self.error(where, f"must be at least {ge}, got {shown}")
            return False
        if le is not None and value > le:
            self.error(where, f"must be at most {le}, got {shown}")
            return False
        if gt is not None and value <= gt:
            self.error(where, f"must be greater than {gt}, got {shown}")
            return False
        return True

    def resolve_path(self, raw: str, where: _Where, *, secret: bool) -> Path | _Invalid:
        if secret and raw.startswith(_CREDENTIAL_PREFIX):
            name = raw[len(_CREDENTIAL_PREFIX) :]
            if not name or "/" in name:
                self.error(
                    where, f"{raw!r}: a credential name is one file name, e.g. credential:key"
                )
                return _INVALID
            directory = self.env.get("CREDENTIALS_DIRECTORY", "")
            if not directory:
                self.error(
                    where,
                    f"{raw} needs $CREDENTIALS_DIRECTORY, which is not set "
                    "(systemd sets it for a unit with LoadCredential=)",
                )
                return _INVALID
            path = Path(directory) / name
            if not path.is_file():
                self.error(
                    where,
                    f"{raw}: credential file {path} does not exist "
                    f"(is LoadCredential={name}:... in the unit?)",
                )
                return _INVALID
            return path
        path = Path(raw)
        if not path.is_absolute():
            path = self.base_dir / path
        if secret and not path.is_file():
            self.error(where, f"no such file: {path}")
            return _INVALID
        return path

    # -- defaults that depend on the environment or on other keys ----------------------------

    def fill_automatic(self, config: Config) -> Config:
        device = config.device
        if "device.id" not in self.present:
            device = dataclasses.replace(device, id=default_device_id())
        if "device.name" not in self.present:
            device = dataclasses.replace(device, name=f"Remotair {device.id}")
        mqtt = config.mqtt
        if "mqtt.client_id" not in self.present:
            mqtt = dataclasses.replace(mqtt, client_id=device.id)
        if mqtt.password_file is not None:
            password = self.read_secret(mqtt.password_file, ("mqtt", "password_file"))
            mqtt = dataclasses.replace(mqtt, password=password)
        storage = config.storage
        state = _first_systemd_directory(self.env.get("STATE_DIRECTORY", ""))
        if "storage.dir" not in self.present and state is not None:
            storage = dataclasses.replace(storage, dir=state)
        control = config.control
        runtime = _first_systemd_directory(self.env.get("RUNTIME_DIRECTORY", ""))
        if "control.socket" not in self.present and runtime is not None:
            control = dataclasses.replace(control, socket=runtime / "control.sock")
        return dataclasses.replace(
            config, device=device, mqtt=mqtt, storage=storage, control=control
        )

    def read_secret(self, path: Path, where: _Where) -> str | None:
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            self.error(where, f"cannot read {path}: {exc}")
            return None
        if not text:
            self.error(where, f"{path} is empty")
            return None
        return text


def default_device_id() -> str:
    """The host name's first label, made topic-safe (``pi.local`` -> ``pi``)."""
    host = socket.gethostname().split(".")[0]
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", host).strip("-")
    return safe or "remotair"


def _first_systemd_directory(value: str) -> Path | None:
    # systemd joins several StateDirectory=/RuntimeDirectory= entries with ':'.
    first = value.split(":")[0]
    return Path(first) if first else None


# --------------------------------------------------------------------------------------------
# The commented example and the key reference
# --------------------------------------------------------------------------------------------


def _toml_value(value: object, *, hex_int: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:#04x}" if hex_int else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _type_name(inner)
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin is tuple:
        return "array of tables"
    if origin is dict:
        return f"table of {_type_name(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "table"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    return names.get(tp, str(tp))


def _static_default(f: dataclasses.Field[Any]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _constraint_hint(f: dataclasses.Field[Any]) -> str:
    meta = f.metadata
    hints = []
    if meta.get("ge") is not None and meta.get("le") is not None:
        hints.append(f"{meta['ge']}-{meta['le']}")
    elif meta.get("ge") is not None:
        hints.append(f">= {meta['ge']}")
    if meta.get("gt") is not None:
        hints.append(f"> {meta['gt']}")
    if meta.get("topic_safe"):
        hints.append("letters, digits, _ and -")
    if meta.get("secret"):
        hints.append("credential:NAME reads $CREDENTIALS_DIRECTORY/NAME")
    return f" ({'; '.join(hints)})" if hints else ""


def _comment(text: str, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=99,
        initial_indent=first,
        subsequent_indent=rest or first,
        break_on_hyphens=False,
    )


def _first_line(cls: type[Any]) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0]


def example_toml() -> str:
    """A complete, commented ``agent.toml`` generated from the schema.

    Keys with a fixed default are written out (loading this text gives the default
    configuration); keys that are unset or computed at load time are commented out.
    """
    lines = [
        "# Remotair agent configuration (generated by `remotair config example`).",
        "# Validate with `remotair config check FILE`. Relative paths are relative to this file.",
        f"# Environment overrides: {ENV_DEVICE_ID}, {ENV_MQTT_HOST}, {ENV_MQTT_PORT}.",
    ]
    for section in dataclasses.fields(Config):
        lines.append("")
        _example_section(typing.get_type_hints(Config)[section.name], (section.name,), lines, "")
    return "\n".join(lines) + "\n"


def _example_section(cls: type[Any], where: tuple[str, ...], lines: list[str], prefix: str) -> None:
    hints = typing.get_type_hints(cls)
    lines.append(f"{prefix}# {_first_line(cls)}")
    lines.append(f"{prefix}[{'.'.join(where)}]")
    tables: list[dataclasses.Field[Any]] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        origin = typing.get_origin(tp)
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if (
            dataclasses.is_dataclass(tp)
            or origin is tuple
            or (inner and dataclasses.is_dataclass(inner[0]))
        ):
            tables.append(f)
            continue
        _example_key(f, tp, lines, prefix)
    for f in tables:
        tp = hints[f.name]
        origin = typing.get_origin(tp)
        lines.append("")
        if origin is tuple:
            _example_array(f, typing.get_args(tp)[0], (*where, f.name), lines)
        elif dataclasses.is_dataclass(tp):
            _example_section(typing.cast(type[Any], tp), (*where, f.name), lines, prefix)
        else:  # an optional table: shown commented out
            (inner_cls,) = [a for a in typing.get_args(tp) if a is not type(None)]
            _example_section(inner_cls, (*where, f.name), lines, "# ")


def _example_key(f: dataclasses.Field[Any], tp: Any, lines: list[str], prefix: str) -> None:
    meta = f.metadata
    doc = meta["doc"] + _constraint_hint(f)
    if typing.get_origin(tp) is Literal:
        doc += "; one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    if "auto" in meta:
        doc += f"; default: {meta['auto']}"
    lines.extend(_comment(doc, f"{prefix}# "))
    default = _static_default(f)
    if "auto" in meta or default is None or default == {}:
        shown = meta.get("example", default)
        if shown is None or shown == {} or shown is dataclasses.MISSING:
            return
        lines.append(f"# {f.name} = {_toml_value(shown, hex_int=bool(meta.get('hex')))}")
        return
    lines.append(f"{prefix}{f.name} = {_toml_value(default, hex_int=bool(meta.get('hex')))}")


def _example_array(
    f: dataclasses.Field[Any], item: type[Any], where: tuple[str, ...], lines: list[str]
) -> None:
    header = f"[[{'.'.join(where)}]]"
    lines.append(f"# {_first_line(item)} Keys:")
    hints = typing.get_type_hints(item)
    for sub in dataclasses.fields(item):
        default = _static_default(sub)
        note = "required" if default is dataclasses.MISSING else None
        if "auto" in sub.metadata:
            note = f"default: {sub.metadata['auto']}"
        elif note is None and default is not None:
            note = f"default: {_toml_value(default)}"
        choices = ""
        if typing.get_origin(hints[sub.name]) is Literal:
            choices = (
                " (" + ", ".join(json.dumps(a) for a in typing.get_args(hints[sub.name])) + ")"
            )
        tail = f"; {note}" if note else ""
        lines.extend(
            _comment(f"{sub.name}: {sub.metadata['doc']}{choices}{tail}", "#   ", "#       ")
        )
    for sample in f.metadata.get("example", ()):
        lines.append(f"# {header}")
        for key, value in sample.items():
            hex_int = bool(
                next(s for s in dataclasses.fields(item) if s.name == key).metadata.get("hex")
            )
            lines.append(f"# {key} = {_toml_value(value, hex_int=hex_int)}")


def reference_markdown() -> str:
    """A Markdown table of every key: key, type, default, description (for the README)."""
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for section in dataclasses.fields(Config):
        _reference_rows(typing.get_type_hints(Config)[section.name], section.name, rows)
    return "\n".join(rows) + "\n"


def _reference_rows(cls: type[Any], prefix: str, rows: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}.{f.name}"
        origin = typing.get_origin(tp)
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if origin is tuple:
            _reference_rows(typing.get_args(tp)[0], f"{key}[]", rows)
            continue
        if dataclasses.is_dataclass(tp):
            _reference_rows(typing.cast(type[Any], tp), key, rows)
            continue
        if inner and dataclasses.is_dataclass(inner[0]):
            _reference_rows(typing.cast(type[Any], inner[0]), key, rows)
            continue
        default = _static_default(f)
        if "auto" in f.metadata:
            shown = str(f.metadata["auto"])
        elif default is dataclasses.MISSING:
            shown = "required"
        elif default is None or default == {}:
            shown = "unset"
        else:
            shown = f"`{_toml_value(default, hex_int=bool(f.metadata.get('hex')))}`"
        description = (f.metadata["doc"] + _constraint_hint(f)).replace("|", "\\|")
        rows.append(
            f"| `{key}` | {_type_name(tp)} | {shown.replace('|', chr(92) + '|')} | {description} |"
        )
