"""The agent's configuration: one TOML file turned into typed, frozen models, once, at start-up.

Each section is a pydantic model defined beside the component that uses it
(:mod:`agent.board_config`, :mod:`agent.mqtt.settings`, :mod:`agent.alarms`,
:mod:`agent.vision.settings`, ...), built from
:mod:`agent.config_base`. This package only assembles the root (:mod:`.model`), loads the file
(:mod:`.load`: TOML, environment overrides, systemd directories and credentials, error lines) and
generates the example and the reference (:mod:`.docs`).
"""

from __future__ import annotations

from agent.config.docs import example_toml, reference_markdown
from agent.config.load import (
    DEFAULT_CONFIG_PATH,
    ENV_DEVICE_ID,
    ENV_MQTT_HOST,
    ENV_MQTT_PORT,
    ConfigError,
    default_device_id,
    load_config,
    parse_config,
)
from agent.config.model import Config, DeviceConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_DEVICE_ID",
    "ENV_MQTT_HOST",
    "ENV_MQTT_PORT",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "default_device_id",
    "example_toml",
    "load_config",
    "parse_config",
    "reference_markdown",
]
