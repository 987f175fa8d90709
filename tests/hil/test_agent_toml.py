"""The simulated board's agent.toml passes the agent's own strict config model as written."""

from __future__ import annotations

from pathlib import Path

from agent.config import parse_config
from hil.agent_toml import SimAgentToml


def test_every_field_lands_where_the_agent_reads_it(tmp_path: Path) -> None:
    config = parse_config(
        SimAgentToml(
            device="bench-7",
            port=18830,
            state_dir=tmp_path / "state",
            control=tmp_path / "control.sock",
            sensors={"bme280": "bme280", "mhz19": "mhz19"},
            uart_ports={"mhz19": "/dev/ttySIM0"},
            cameras=("upstream", "downstream"),
            sim_speed=20.0,
            sensor_interval_s=0.5,
            status_interval_s=2.0,
            reconnect_max_s=1.0,
            mqtt_extra="ha_discovery = true",
            storage_extra="snapshots_keep = 2",
            vision='backend = "onnx"',
            alarms="hold_s = 5",
            logging_level="debug",
        ).text()
    )
    assert config.device.id == "bench-7"
    assert config.board.sim_speed == 20.0
    assert [(s.name, s.chip, s.port) for s in config.board.sensors] == [
        ("bme280", "bme280", None),
        ("mhz19", "mhz19", "/dev/ttySIM0"),
    ]
    assert [c.name for c in config.board.cameras] == ["upstream", "downstream"]
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.reconnect_max_s) == (
        "127.0.0.1",
        18830,
        1.0,
    )
    assert config.mqtt.ha_discovery
    assert config.schedule.sensor_interval_s == 0.5 and config.schedule.status_interval_s == 2.0
    assert config.storage.dir == tmp_path / "state" and config.storage.snapshots_keep == 2
    assert config.vision.backend == "onnx"
    assert config.alarms.hold_s == 5
    assert config.control.socket == tmp_path / "control.sock"
    assert config.logging.level == "debug"


def test_the_defaults_make_a_quiet_fast_board(tmp_path: Path) -> None:
    config = parse_config(
        SimAgentToml("d", 1883, tmp_path, tmp_path / "c.sock", {"bme280": "bme280"}).text()
    )
    assert config.vision.backend == "off" and not config.board.cameras
    assert config.alarms.hold_s == 0 and config.schedule.sensor_interval_s == 0.2
