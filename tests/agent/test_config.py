"""The TOML configuration: schema, strict validation, environment, credentials, example, CLI."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import models
from agent.alarms import AlarmsConfig
from agent.cli import config as config_cli
from agent.cli import run as run_command
from agent.config import (
    Config,
    ConfigError,
    example_toml,
    load_config,
    parse_config,
    reference_markdown,
)
from agent.errors import ExitCode, RemotairError, describe_exception
from agent.mqtt import MqttSettings

DATA = Path(__file__).parent / "data"
NO_ENV: dict[str, str] = {}


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(text, source="agent.toml", env=NO_ENV if env is None else env)


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env)
    return list(caught.value.errors)


@pytest.fixture(autouse=True)
def fixed_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.config.load.socket.gethostname", lambda: "duct-board.local")


# -- defaults ---------------------------------------------------------------------------------


def test_no_file_gives_the_builtin_simulated_board_with_documented_defaults() -> None:
    config = load_config(None, env=NO_ENV)
    assert config.board.kind == "sim"
    assert config.board.sensors == () and config.board.cameras == ()
    assert config.board.is_builtin_sim
    assert config.device.id == "duct-board"
    assert config.device.name == "Remotair duct-board"
    assert config.mqtt.client_id == "duct-board"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.protocol) == (
        "localhost",
        1883,
        "3.1.1",
    )
    assert config.mqtt.tls is None
    assert config.schedule.sensor_interval_s == 30.0
    assert config.schedule.snapshot_interval_s == 900.0
    assert config.storage.dir == Path("/var/lib/remotair")
    assert config.control.socket == Path("/run/remotair/control.sock")
    assert config.vision.backend == "onnx"
    models_dir = Path(models.__file__).parent
    assert config.vision.model == models_dir / "visual_clean_resnet18_int8.onnx"
    assert config.alarms == AlarmsConfig()
    assert config.logging.level == "info"


def test_host_name_becomes_a_topic_safe_device_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.config.load.socket.gethostname", lambda: "my board#1.lan")
    assert load_config(None, env=NO_ENV).device.id == "my-board-1"


def test_systemd_directories_become_the_defaults_unless_set_explicitly() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/remotair-x:/var/lib/other", "RUNTIME_DIRECTORY": "/run/rx"}
    config = load_config(None, env=env)
    assert config.storage.dir == Path("/var/lib/remotair-x")
    assert config.control.socket == Path("/run/rx/control.sock")
    explicit = parse('[storage]\ndir = "/data/r"\n[control]\nsocket = "/tmp/c.sock"\n', env)
    assert explicit.storage.dir == Path("/data/r")
    assert explicit.control.socket == Path("/tmp/c.sock")


def test_sensor_addresses_default_per_chip() -> None:
    config = parse(
        "[board]\nkind = 'pi'\n"
        + "".join(
            f"[[board.sensors]]\nname = '{chip}'\nchip = '{chip}'\n"
            for chip in ("bme280", "bmp280", "sht4x", "scd4x", "scd30", "sdp8xx", "sdp3x")
            if chip != "bmp280"
        )
        + "[[board.sensors]]\nname = 'uart'\nchip = 'mhz19'\nport = '/dev/ttyAMA0'\n"
    )
    addresses = {s.chip: s.address for s in config.board.sensors}
    # Datasheet default addresses.
    assert addresses == {
        "bme280": 0x76,
        "sht4x": 0x44,
        "scd4x": 0x62,
        "scd30": 0x61,
        "sdp8xx": 0x25,
        "sdp3x": 0x21,
        "mhz19": None,
    }
    uart = config.board.sensors[-1]
    assert uart.is_uart and uart.port == "/dev/ttyAMA0" and uart.baudrate == 9600


# -- a full real board ------------------------------------------------------------------------


def copy_pi_board(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    shutil.copy(DATA / "pi_board.toml", path)
    (tmp_path / "certs").mkdir()
    for name in ("ca.pem", "device.pem.crt", "device.pem.key"):
        (tmp_path / "certs" / name).write_text("placeholder\n")
    return path


def test_full_pi_board_file(tmp_path: Path) -> None:
    config = load_config(copy_pi_board(tmp_path), env=NO_ENV)
    assert config.device.id == "ahu-2" and config.device.name == "AHU 2 supply duct"
    board = config.board
    assert board.kind == "pi" and not board.is_builtin_sim
    assert [(s.name, s.chip, s.address) for s in board.sensors] == [
        ("duct", "bme280", 0x77),
        ("humidity", "sht4x", 0x44),
        ("co2", "scd4x", 0x62),
        ("filter", "sdp8xx", 0x25),
        ("co2_uart", "senseair_s8", None),
    ]
    co2 = board.sensors[2]
    assert co2.temperature_offset_c == 2.5 and co2.altitude_m == 320.0
    assert isinstance(co2.altitude_m, float)
    assert board.sensors[4].port == "/dev/serial0"
    upstream, usb, replay = board.cameras
    assert (upstream.backend, upstream.index, upstream.settle_s) == ("picamera2", 0, 2.0)
    assert (usb.device, usb.width, usb.height) == ("/dev/video0", 1280, 720)
    assert replay.directory == tmp_path / "replay-images"  # relative to the file
    mqtt = config.mqtt
    assert (mqtt.port, mqtt.protocol, mqtt.keepalive, mqtt.client_id) == (8883, "5", 30, "ahu-2")
    assert mqtt.tls is not None
    assert mqtt.tls.ca == tmp_path / "certs" / "ca.pem"
    assert mqtt.tls.key == tmp_path / "certs" / "device.pem.key"
    assert config.schedule.snapshot_interval_s == 600.5
    assert config.storage.dir == Path("/srv/remotair")
    assert config.storage.outbox_max_messages == 5000
    vision = config.vision
    assert (vision.backend, vision.threads, vision.uncertain_low) == ("cascade", 2, 0.3)
    assert vision.rekognition.min_confidence == 60.0
    assert vision.rekognition.effective_region == "eu-west-1"
    assert vision.rekognition.label_map["Mould"] == "dirty"
    assert config.alarms.co2_warning_ppm == 900.0
    assert config.alarms.co2_critical_ppm == AlarmsConfig().co2_critical_ppm
    assert config.control.socket == Path("/run/remotair/ctl.sock")
    assert config.logging.level == "debug"


def test_fractional_intervals_are_accepted() -> None:
    config = parse("[schedule]\nsensor_interval_s = 0.05\nsnapshot_interval_s = 1\n")
    assert config.schedule.sensor_interval_s == 0.05
    assert config.schedule.snapshot_interval_s == 1.0
    assert isinstance(config.schedule.snapshot_interval_s, float)


# -- unknown keys, types, ranges --------------------------------------------------------------


def test_unknown_key_names_file_section_and_a_suggestion() -> None:
    assert errors_of("[mqtt]\nprot = 8883\n") == [
        "agent.toml: [mqtt] prot: unknown key (did you mean 'port'?)"
    ]


def test_unknown_section_and_nested_unknown_keys() -> None:
    assert errors_of("[mqt]\nhost = 'x'\n") == [
        "agent.toml: [mqt]: unknown section (did you mean 'mqtt'?)"
    ]
    assert errors_of("[mqtt.tls]\ncertificate = 'x'\n") == [
        "agent.toml: [mqtt.tls] certificate: unknown key (did you mean 'cert'?)"
    ]
    assert errors_of("[alarms]\nco2_warn_ppm = 900\n") == [
        "agent.toml: [alarms] co2_warn_ppm: unknown key (did you mean 'co2_warning_ppm'?)"
    ]
    assert errors_of("[logging]\nzzz = 1\n") == ["agent.toml: [logging] zzz: unknown key"]


def test_unknown_key_inside_an_array_of_tables() -> None:
    text = "[[board.sensors]]\nname = 'a'\nchip = 'sht4x'\nadress = 0x45\n"
    assert errors_of(text) == [
        "agent.toml: board.sensors[0].adress: unknown key (did you mean 'address'?)"
    ]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('[mqtt]\nport = "1883"', "[mqtt] port", 'expected an integer, got "1883" (a string)'),
        (
            "[mqtt]\nkeepalive = true",
            "[mqtt] keepalive",
            "expected an integer, got true (a boolean)",
        ),
        ("[mqtt]\nport = 1883.0", "[mqtt] port", "expected an integer, got 1883.0 (a number)"),
        (
            "[mqtt]\nha_discovery = 1",
            "[mqtt] ha_discovery",
            "expected true or false, got 1 (an integer)",
        ),
        (
            "[mqtt]\nprotocol = 5",
            "[mqtt] protocol",
            'expected one of "3.1.1", "5", got 5 (an integer)',
        ),
        (
            "[board]\nkind = 'rpi'",
            "[board] kind",
            'expected one of "sim", "pi", got "rpi" (a string)',
        ),
        (
            "[schedule]\nsensor_interval_s = '30'",
            "[schedule] sensor_interval_s",
            'expected a number, got "30" (a string)',
        ),
        (
            "[storage]\ndir = 3",
            "[storage] dir",
            "expected a path (a non-empty string), got 3 (an integer)",
        ),
        ("mqtt = 3", "[mqtt]", "expected a table, got 3 (an integer)"),
        (
            "[board]\nsensors = 'x'",
            "[board] sensors",
            'expected an array of tables, got "x" (a string)',
        ),
        (
            "[logging]\nlevel = 'verbose'",
            "[logging] level",
            'expected one of "debug", "info", "warning", "error", got "verbose" (a string)',
        ),
    ],
)
def test_wrong_types_are_errors(text: str, key: str, message: str) -> None:
    assert errors_of(text) == [f"agent.toml: {key}: {message}"]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("[mqtt]\nport = 0", "[mqtt] port", "0 is outside the range 1-65535"),
        ("[mqtt]\nport = 65536", "[mqtt] port", "65536 is outside the range 1-65535"),
        ("[mqtt]\ninflight = 0", "[mqtt] inflight", "0 is outside the range 1-100"),
        ("[mqtt]\ninflight = 101", "[mqtt] inflight", "101 is outside the range 1-100"),
        (
            "[schedule]\nsensor_interval_s = 0",
            "[schedule] sensor_interval_s",
            "must be greater than 0, got 0.0",
        ),
        (
            "[schedule]\nstatus_interval_s = -5",
            "[schedule] status_interval_s",
            "must be greater than 0, got -5.0",
        ),
        (
            "[schedule]\nsnapshot_interval_s = nan",
            "[schedule] snapshot_interval_s",
            "nan is not a finite number",
        ),
        (
            "[storage]\noutbox_max_messages = 0",
            "[storage] outbox_max_messages",
            "must be at least 1, got 0",
        ),
        ("[vision]\nuncertain_low = 1.5", "[vision] uncertain_low", "1.5 is outside the range 0-1"),
        (
            "[vision.rekognition]\nmin_confidence = 101",
            "[vision.rekognition] min_confidence",
            "101.0 is outside the range 0-100",
        ),
        ("[board]\nsim_speed = 0", "[board] sim_speed", "must be greater than 0, got 0.0"),
    ],
)
def test_out_of_range_values_are_errors(text: str, key: str, message: str) -> None:
    assert errors_of(text) == [f"agent.toml: {key}: {message}"]


def test_int_is_accepted_for_float_but_bool_is_not() -> None:
    assert parse("[alarms]\nhold_s = 60\n").alarms.hold_s == 60.0
    assert errors_of("[alarms]\nhold_s = true\n") == [
        "agent.toml: [alarms] hold_s: expected a number, got true (a boolean)"
    ]


# -- the board ---------------------------------------------------------------------------------


def sensors(*tables: str, kind: str = "pi") -> str:
    return f"[board]\nkind = '{kind}'\n" + "".join(f"[[board.sensors]]\n{t}\n" for t in tables)


def test_i2c_address_outside_the_7_bit_range() -> None:
    text = sensors(
        "name = 'a'\nchip = 'sht4x'",
        "name = 'b'\nchip = 'scd4x'",
        "name = 'c'\nchip = 'bme280'\naddress = 0x99",
        "name = 'd'\nchip = 'sdp8xx'\naddress = 0x02",
    )
    assert errors_of(text) == [
        "agent.toml: board.sensors[2].address: 0x99 is outside the 7-bit I2C range 0x03-0x77",
        "agent.toml: board.sensors[3].address: 0x02 is outside the 7-bit I2C range 0x03-0x77",
    ]


def test_sensor_names_unique_and_topic_safe() -> None:
    text = sensors(
        "name = 'rh'\nchip = 'sht4x'",
        "name = 'rh'\nchip = 'bme280'",
        "name = 'duct 1'\nchip = 'scd30'",
    )
    assert errors_of(text) == [
        "agent.toml: board.sensors[2].name: 'duct 1' is not topic-safe: "
        "use only letters, digits, '_' and '-'"
    ]  # the invalid entry stops the board-level checks; fix it and uniqueness shows
    fixed = text.replace("duct 1", "duct_1")
    assert errors_of(fixed) == [
        "agent.toml: board.sensors[1].name: 'rh' is used twice; names must be unique"
    ]


def test_uart_and_i2c_rules() -> None:
    text = sensors(
        "name = 'co2'\nchip = 'mhz19'",
        "name = 's8'\nchip = 'senseair_s8'\nport = '/dev/ttyUSB0'\naddress = 0x68",
        "name = 'rh'\nchip = 'sht4x'\nport = '/dev/serial0'",
        "name = 'p'\nchip = 'bme280'\naltitude_m = 100",
    )
    assert errors_of(text) == [
        "agent.toml: board.sensors[0].port: mhz19 is a UART sensor: set port (e.g. /dev/serial0)",
        "agent.toml: board.sensors[1].address: senseair_s8 is a UART sensor: "
        "address does not apply",
        "agent.toml: board.sensors[2].port: sht4x is an I2C sensor: port does not apply",
        "agent.toml: board.sensors[3].altitude_m: only scd4x and scd30 take altitude_m, not bme280",
    ]


def test_two_sensors_on_one_address_or_port() -> None:
    text = sensors(
        "name = 'a'\nchip = 'bme280'",
        "name = 'b'\nchip = 'bmp280'",
        "name = 'c'\nchip = 'mhz19'\nport = '/dev/serial0'",
        "name = 'd'\nchip = 'senseair_s8'\nport = '/dev/serial0'",
    )
    assert errors_of(text) == [
        "agent.toml: board.sensors[1].address: 0x76 is already used by sensor 'a'",
        "agent.toml: board.sensors[3].port: /dev/serial0 is already used by sensor 'c'",
    ]


def test_required_sensor_keys_and_unknown_chip() -> None:
    assert errors_of(sensors("name = 'x'", "name = 'y'\nchip = 'sht31'")) == [
        "agent.toml: board.sensors[0].chip: missing (required)",
        'agent.toml: board.sensors[1].chip: expected one of "bme280", "bmp280", "sht4x", '
        '"scd4x", "scd30", "sdp8xx", "sdp3x", "mhz19", "senseair_s8", got "sht31" (a string)',
    ]


def test_pi_board_needs_sensors_but_sim_board_does_not() -> None:
    assert errors_of("[board]\nkind = 'pi'\n") == [
        'agent.toml: [board] sensors: a "pi" board needs at least one [[board.sensors]] table'
    ]
    assert parse("[board]\nkind = 'sim'\n").board.is_builtin_sim
    listed = parse(sensors("name = 'rh'\nchip = 'sht4x'", kind="sim")).board
    assert listed.kind == "sim" and not listed.is_builtin_sim


def test_camera_backend_requirements() -> None:
    text = (
        "[[board.cameras]]\nname = 'a'\nbackend = 'replay'\n"
        "[[board.cameras]]\nname = 'b'\nbackend = 'opencv'\n"
        "[[board.cameras]]\nname = 'c'\nbackend = 'picamera2'\n"
        "[[board.cameras]]\nname = 'd'\nbackend = 'opencv'\nindex = 0\ndevice = '/dev/video0'\n"
        "[[board.cameras]]\nname = 'a'\nbackend = 'sim'\n"
        "[[board.cameras]]\nname = 'f'\nbackend = 'sim'\nwidth = 0\n"
    )
    assert errors_of(text) == [
        "agent.toml: board.cameras[0].directory: a replay camera needs directory",
        "agent.toml: board.cameras[1].index: an opencv camera needs index or device",
        "agent.toml: board.cameras[2].index: a picamera2 camera needs index (0, 1, ...)",
        "agent.toml: board.cameras[3].device: an opencv camera takes index or device, not both",
        "agent.toml: board.cameras[5].width: must be greater than 0, got 0",
    ]
    valid = text.replace("width = 0\n", "")
    assert "agent.toml: board.cameras[4].name: 'a' is used twice; names must be unique" in (
        errors_of(valid)
    )


# -- mqtt and vision cross-field rules ----------------------------------------------------------


def test_mqtt_cross_field_rules(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    text = (
        f"[mqtt]\npassword = 'a'\npassword_file = '{secret}'\n"
        "reconnect_min_s = 10\nreconnect_max_s = 5\ntopic_root = 'remotair/#'\nha_prefix = '/ha'\n"
        f"[mqtt.tls]\ncert = '{cert}'\n"
    )
    assert errors_of(text) == [
        "agent.toml: [mqtt.tls] key: cert and key go together: set both or neither",
        "agent.toml: [mqtt] password_file: set password or password_file, not both",
        "agent.toml: [mqtt] reconnect_max_s: 5 is less than reconnect_min_s 10",
        "agent.toml: [mqtt] topic_root: 'remotair/#' must not contain the wildcards '+' or '#'",
        "agent.toml: [mqtt] ha_prefix: '/ha' is not a topic prefix: "
        "no empty level, no leading or trailing '/'",
    ]


def test_empty_tls_table_means_tls_with_system_cas() -> None:
    tls = parse("[mqtt]\nport = 8883\n[mqtt.tls]\n").mqtt.tls
    assert tls is not None and (tls.ca, tls.cert, tls.key) == (None, None, None)


def test_vision_rules() -> None:
    text = (
        "[vision]\nbackend = 'rekognition'\nuncertain_low = 0.7\nuncertain_high = 0.6\n"
        "[vision.rekognition]\nlabel_map = { Dust = 'grimy' }\n"
    )
    assert errors_of(text) == [
        'agent.toml: [vision.rekognition.label_map] Dust: \'grimy\' must be "clean" or "dirty"',
        "agent.toml: [vision] uncertain_high: 0.6 must be greater than uncertain_low 0.7",
        'agent.toml: [vision.rekognition] project_version_arn: backend "rekognition" needs '
        "[vision.rekognition] project_version_arn",
    ]
    assert errors_of("[vision.rekognition]\nproject_version_arn = 'my-model'\n") == [
        "agent.toml: [vision.rekognition] project_version_arn: 'my-model' is not a "
        "Rekognition project version ARN"
    ]
    assert errors_of("[vision.rekognition]\nlabel_map = { Dust = 1 }\n") == [
        "agent.toml: [vision.rekognition.label_map] Dust: expected a string, got 1 (an integer)"
    ]


# -- reporting --------------------------------------------------------------------------------


def test_every_error_is_reported_together() -> None:
    text = "[mqtt]\nprot = 1\nkeepalive = 0\n[schedule]\nsensor_interval_s = -1\n[logg]\n"
    with pytest.raises(ConfigError) as caught:
        parse(text)
    error = caught.value
    assert error.errors == (
        "agent.toml: [logg]: unknown section (did you mean 'logging'?)",
        "agent.toml: [mqtt] prot: unknown key (did you mean 'port'?)",
        "agent.toml: [mqtt] keepalive: 0 is outside the range 1-65535",
        "agent.toml: [schedule] sensor_interval_s: must be greater than 0, got -1.0",
    )
    assert isinstance(error, RemotairError)
    message, code = describe_exception(error)
    assert code == ExitCode.USAGE
    assert int(code) == 2
    assert message.splitlines()[0] == "4 configuration errors:"
    assert all(line in message for line in error.errors)


def test_toml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[mqtt]\nhost = 'a'\nport = = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=NO_ENV)
    (line,) = caught.value.errors
    assert line.startswith(f"{path}: TOML syntax error: ")
    assert "line 3, column" in line


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=NO_ENV)
    assert caught.value.errors == (f"{path}: no such configuration file",)


# -- environment overrides -----------------------------------------------------------------------


def test_environment_overrides_device_id_and_broker() -> None:
    env = {
        "REMOTAIR_DEVICE_ID": "env-id",
        "REMOTAIR_MQTT_HOST": "broker.lan",
        "REMOTAIR_MQTT_PORT": "8883",
    }
    config = parse("[device]\nid = 'file-id'\n[mqtt]\nhost = 'file-host'\nport = 1884\n", env)
    assert config.device.id == "env-id"
    assert config.mqtt.client_id == "env-id"
    assert (config.mqtt.host, config.mqtt.port) == ("broker.lan", 8883)
    assert load_config(None, env=env).device.id == "env-id"


def test_empty_environment_variables_are_ignored() -> None:
    env = {"REMOTAIR_MQTT_HOST": "", "REMOTAIR_MQTT_PORT": ""}
    config = parse("[mqtt]\nhost = 'file-host'\n", env)
    assert (config.mqtt.host, config.mqtt.port) == ("file-host", 1883)


def test_invalid_environment_overrides_name_the_variable() -> None:
    assert errors_of("", {"REMOTAIR_MQTT_PORT": "88a"}) == [
        '$REMOTAIR_MQTT_PORT (overrides [mqtt] port): expected an integer, got "88a" (a string)'
    ]
    assert errors_of("", {"REMOTAIR_MQTT_PORT": "70000"}) == [
        "$REMOTAIR_MQTT_PORT (overrides [mqtt] port): 70000 is outside the range 1-65535"
    ]
    assert errors_of("", {"REMOTAIR_DEVICE_ID": "board/1"}) == [
        "$REMOTAIR_DEVICE_ID (overrides [device] id): 'board/1' is not topic-safe: "
        "use only letters, digits, '_' and '-'"
    ]


# -- secrets and systemd credentials -------------------------------------------------------------


def test_password_file_is_read_and_trailing_newline_dropped(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt.pw").write_text("pa ss\n")
    path = tmp_path / "agent.toml"
    path.write_text("[mqtt]\nusername = 'u'\npassword_file = 'secrets/mqtt.pw'\n")
    mqtt = load_config(path, env=NO_ENV).mqtt
    assert mqtt.password == "pa ss"
    assert mqtt.password_file == tmp_path / "secrets" / "mqtt.pw"
    assert "pa ss" not in repr(mqtt)


def test_credentials_directory_resolution(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    for name, content in (("mqtt-password", "from-systemd\n"), ("key", "k"), ("cert", "c")):
        (creds / name).write_text(content)
    text = (
        "[mqtt]\npassword_file = 'credential:mqtt-password'\n"
        "[mqtt.tls]\ncert = 'credential:cert'\nkey = 'credential:key'\n"
    )
    config = parse(text, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.mqtt.password == "from-systemd"
    assert config.mqtt.tls is not None
    assert (config.mqtt.tls.cert, config.mqtt.tls.key) == (creds / "cert", creds / "key")


def test_credential_without_credentials_directory(tmp_path: Path) -> None:
    assert errors_of("[mqtt]\npassword_file = 'credential:mqtt-password'\n") == [
        "agent.toml: [mqtt] password_file: credential:mqtt-password needs "
        "$CREDENTIALS_DIRECTORY, which is not set (systemd sets it for a unit with LoadCredential=)"
    ]
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert errors_of("[mqtt.tls]\nca = 'credential:ca'\n", env) == [
        f"agent.toml: [mqtt.tls] ca: credential:ca: credential file {tmp_path / 'ca'} "
        "does not exist (is LoadCredential=ca:... in the unit?)"
    ]


def test_missing_or_empty_secret_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert errors_of(f"[mqtt.tls]\nca = '{tmp_path / 'ca.pem'}'\n") == [
        f"agent.toml: [mqtt.tls] ca: no such file: {tmp_path / 'ca.pem'}"
    ]
    assert errors_of(f"[mqtt]\npassword_file = '{empty}'\n") == [
        f"agent.toml: [mqtt] password_file: {empty} is empty"
    ]


# -- the generated example and reference ---------------------------------------------------------


def test_example_loads_to_the_default_configuration() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/remotair-test"}
    assert parse(example_toml(), env) == load_config(None, env=env)


def test_example_writes_fixed_defaults_uncommented() -> None:
    document = tomllib.loads(example_toml())
    assert document["schedule"] == {
        "sensor_interval_s": 30.0,
        "snapshot_interval_s": 900.0,
        "status_interval_s": 300.0,
    }
    assert document["mqtt"]["port"] == 1883
    assert "tls" not in document["mqtt"]  # TLS is opt-in, shown commented out
    assert "id" not in document["device"]  # computed from the host name at load time


def test_example_sample_board_is_valid_when_uncommented() -> None:
    # The commented [[board.*]] samples sit between the board keys and [mqtt].
    lines = []
    in_samples = False
    for line in example_toml().splitlines():
        in_samples = (in_samples or line.startswith("# [[board.")) and line != "[mqtt]"
        if in_samples and re.fullmatch(r"# (\[\[board\.\w+\]\]|\w+ = .*)", line):
            line = line[2:]
        lines.append(line)
    text = "\n".join(lines).replace('kind = "sim"', 'kind = "pi"')
    board = parse(text).board
    assert [s.chip for s in board.sensors] == ["bme280", "sht4x", "scd4x", "sdp8xx", "senseair_s8"]
    assert [(c.name, c.index) for c in board.cameras] == [("upstream", 0), ("downstream", 1)]


def leaf_keys(cls: type[BaseModel], prefix: str) -> list[str]:
    keys = []
    for name, f in cls.model_fields.items():
        tp = f.annotation
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) is tuple:
            keys += leaf_keys(args[0], f"{prefix}{name}[].")
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            keys += leaf_keys(tp, f"{prefix}{name}.")
        elif args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            keys += leaf_keys(args[0], f"{prefix}{name}.")
        else:
            assert f.description, f"{prefix}{name} has no description"
            keys.append(prefix + name)
    return keys


def test_every_field_is_documented_and_in_the_reference() -> None:
    reference = reference_markdown()
    rows = {line.split("`")[1]: line for line in reference.splitlines()[2:]}
    keys = leaf_keys(Config, "")
    assert sorted(rows) == sorted(keys)
    for name in (
        "device.id", "board.kind", "mqtt.host", "mqtt.port", "mqtt.tls.ca", "mqtt.tls.cert",
        "mqtt.tls.key", "mqtt.keepalive", "mqtt.username", "storage.dir",
        "board.sensors[].address", "board.cameras[].backend",
    ):  # fmt: skip
        assert name in rows
    assert (
        "| `schedule.sensor_interval_s` | number | `30.0` |" in rows["schedule.sensor_interval_s"]
    )
    assert '| `mqtt.protocol` | "3.1.1" \\| "5" | `"3.1.1"` |' in rows["mqtt.protocol"]
    assert "| required |" in rows["board.sensors[].name"]
    assert "the host name" in rows["device.id"]


# -- the command line -----------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="remotair")
    config_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_check_ok_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy_pi_board(tmp_path)
    assert run_cli(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: OK"
    assert "ahu-2" in out[1]
    assert "pi board, 5 sensors, 3 cameras" in out[2]
    assert "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883 (TLS)" in out[3]


def test_cli_check_of_the_example_names_the_builtin_board(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("REMOTAIR_DEVICE_ID", "REMOTAIR_MQTT_HOST", "REMOTAIR_MQTT_PORT"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "agent.toml"
    path.write_text(example_toml())
    assert run_cli(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:4] == [
        "  device id  duct-board",
        "  board      built-in simulated board",
        "  broker     localhost:1883",
    ]


def test_cli_check_reports_every_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[mqtt]\nprot = 1\n[board]\nkind = 'pi'\n")
    assert run_cli(["config", "check", str(path)]) == ExitCode.USAGE
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f'{path}: [board] sensors: a "pi" board needs at least one [[board.sensors]] table',
        f"{path}: [mqtt] prot: unknown key (did you mean 'port'?)",
        f"{path}: 2 errors",
    ]
    assert run_cli(["config", "check", "--json", str(path)]) == ExitCode.USAGE
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and len(result["errors"]) == 2


def test_a_file_that_does_not_name_its_board_fails_the_check_and_is_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[device]\nid = "duct-7"\n[board]\ni2c_bus = 1\n')
    assert run_cli(["config", "check", str(path)]) == ExitCode.USAGE
    [error, count] = capsys.readouterr().err.splitlines()
    assert error.startswith(f"{path}: [board] kind is not set: ")
    assert 'kind = "pi"' in error and 'kind = "sim"' in error and count == f"{path}: 1 error"
    parser = argparse.ArgumentParser(prog="remotair")
    run_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["run", "--config", str(path)])
    with pytest.raises(ConfigError, match=r"\[board\] kind is not set"):
        args.func(args)  # refused before anything starts: no simulated board by default


def test_cli_example_and_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["config", "example"]) == 0
    assert capsys.readouterr().out == example_toml()
    assert run_cli(["config", "reference"]) == 0
    assert capsys.readouterr().out.startswith("| Key | Type | Default | Description |")


# -- every topic the configuration can produce ---------------------------------------------------


def test_a_topic_root_too_deep_for_some_topic_fails_the_check() -> None:
    assert parse("[mqtt]\ntopic_root = 'a/b/c/d/e'\n").mqtt.topic_root == "a/b/c/d/e"
    assert errors_of("[mqtt]\ntopic_root = 'a/b/c/d/e/f'\n") == [
        "agent.toml: [mqtt] topic_root: topic a/b/c/d/e/f/duct-board/vision/<camera> has 9 "
        "levels, over 8: shorten [mqtt] topic_root, [device] id or names"
    ]
    (line,) = errors_of("[mqtt]\nha_discovery = true\nha_prefix = 'a/b/c/d/e'\n")
    assert line.startswith("agent.toml: [mqtt] ha_prefix: topic a/b/c/d/e/sensor/duct-board/")


def test_a_topic_too_long_fails_the_check() -> None:
    (line,) = errors_of(f"[device]\nid = '{'d' * 240}'\n")
    assert line.startswith("agent.toml: [mqtt] topic_root: topic remotair/v1/ddd")
    assert "bytes long, over 256" in line


def test_a_section_built_in_code_checks_its_own_rules() -> None:
    with pytest.raises(ValidationError, match="reconnect_max_s: 5 is less than reconnect_min_s"):
        MqttSettings(reconnect_min_s=10, reconnect_max_s=5)
    with pytest.raises(ValidationError, match="extra"):
        MqttSettings(prot=8883)  # type: ignore[call-arg]


def test_the_reference_shows_both_bounds() -> None:
    rows = {line.split("`")[1]: line for line in reference_markdown().splitlines()[2:]}
    assert rows["alarms.outbox_near_full_fraction"].endswith("(> 0, <= 1) |")
    assert rows["mqtt.port"].endswith("(1-65535) |")
    assert rows["storage.outbox_max_messages"].endswith("(>= 1) |")
