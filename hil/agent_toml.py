"""The agent.toml of a simulated board, for the scenario runner and the integration tests.

One template, so that a new required key or a renamed section is changed in one place; each
caller sets only what it varies (intervals, cameras, extra lines in a section). The text is
checked by the agent's own strict config model when the agent starts, like any operator's file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SimAgentToml:
    """An agent on the simulated board, publishing to a broker on loopback."""

    device: str
    port: int
    """The broker's MQTT port on 127.0.0.1."""
    state_dir: Path
    control: Path
    """The control socket (``remotair status`` and friends talk to it)."""
    sensors: Mapping[str, str]
    """Sensor name -> simulated chip."""
    uart_ports: Mapping[str, str] = field(default_factory=dict)
    """Sensor name -> serial port, for chips on a UART."""
    cameras: tuple[str, ...] = ()
    sim_speed: float = 50.0
    sensor_interval_s: float = 0.2
    snapshot_interval_s: float = 3600.0
    status_interval_s: float = 1.0
    reconnect_max_s: float = 0.5
    mqtt_extra: str = ""
    """Further lines of the ``[mqtt]`` table."""
    storage_extra: str = ""
    """Further lines of the ``[storage]`` table."""
    vision: str = 'backend = "off"'
    """The body of the ``[vision]`` table."""
    alarms: str = "hold_s = 0"
    """The body of the ``[alarms]`` table."""
    logging_level: str = "info"

    def text(self) -> str:
        sensors = "".join(
            f'[[board.sensors]]\nname = "{name}"\nchip = "{chip}"\n'
            + (f'port = "{self.uart_ports[name]}"\n' if name in self.uart_ports else "")
            for name, chip in self.sensors.items()
        )
        cameras = "".join(
            f'[[board.cameras]]\nname = "{name}"\nbackend = "sim"\n' for name in self.cameras
        )
        return f"""[device]
id = "{self.device}"

[board]
kind = "sim"
sim_speed = {self.sim_speed}
{sensors}{cameras}
[mqtt]
host = "127.0.0.1"
port = {self.port}
protocol = "3.1.1"
keepalive = 10
handshake_timeout_s = 3
reconnect_min_s = 0.1
reconnect_max_s = {self.reconnect_max_s}
{self.mqtt_extra}

[schedule]
sensor_interval_s = {self.sensor_interval_s}
snapshot_interval_s = {self.snapshot_interval_s}
status_interval_s = {self.status_interval_s}

[storage]
dir = "{self.state_dir}"
{self.storage_extra}

[vision]
{self.vision}

[alarms]
{self.alarms}

[control]
socket = "{self.control}"

[logging]
level = "{self.logging_level}"
"""
