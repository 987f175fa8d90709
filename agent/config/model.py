"""The root of the configuration: one field per section, each section defined beside its component.

Adding a section is one model class beside the component that uses it and one field here.
"""

from __future__ import annotations

from collections.abc import Iterator

from agent import wire
from agent.alarm_rules import RULES, AlarmsConfig, alarm_name
from agent.board_config import BoardConfig
from agent.config_base import Problem, Section, TopicLevel, setting
from agent.control import ControlConfig
from agent.logging_setup import LoggingConfig
from agent.models.config import ModelsConfig
from agent.mqtt.settings import MqttSettings
from agent.scheduler import ScheduleConfig
from agent.storage import StorageConfig
from agent.vision.settings import VisionConfig

LONGEST_COMMAND = "x" * 32
"""Stands for any command name when checking ``cmd/<command>`` and ``result/<command>`` topics."""


class DeviceConfig(Section):
    """Who this board is."""

    id: TopicLevel = setting(
        "remotair",
        "device id: the MQTT topic level remotair/v1/<id>/ and the default client id",
        auto="the host name, made topic-safe",
    )
    name: str = setting(
        "", "friendly name shown by Home Assistant", auto='"Remotair <id>"', example="Duct AHU-2"
    )


class Config(Section):
    """The whole agent configuration. Build it with :func:`agent.config.load_config`."""

    device: DeviceConfig = setting(default_factory=DeviceConfig, description="[device]")
    board: BoardConfig = setting(default_factory=BoardConfig, description="[board]")
    mqtt: MqttSettings = setting(default_factory=MqttSettings, description="[mqtt]")
    schedule: ScheduleConfig = setting(default_factory=ScheduleConfig, description="[schedule]")
    storage: StorageConfig = setting(default_factory=StorageConfig, description="[storage]")
    vision: VisionConfig = setting(default_factory=VisionConfig, description="[vision]")
    models: ModelsConfig = setting(default_factory=ModelsConfig, description="[models]")
    alarms: AlarmsConfig = setting(default_factory=AlarmsConfig, description="[alarms]")
    control: ControlConfig = setting(default_factory=ControlConfig, description="[control]")
    logging: LoggingConfig = setting(default_factory=LoggingConfig, description="[logging]")

    def problems(self) -> Iterator[Problem]:
        """Every topic this configuration can publish or subscribe to fits the wire format.

        Checked here rather than at the first publish: a topic that is too deep or too long would
        otherwise stop the agent in a restart loop under systemd.
        """
        if any(where[0] in ("topic_root", "ha_prefix") for where, _ in self.mqtt.problems()):
            return  # reported by [mqtt] itself
        for shown, topic in self.topics():
            try:
                wire.validate_topic(topic)
            except wire.WireError as exc:
                where = "ha_prefix" if shown.endswith("/<entity>/config") else "topic_root"
                reason = str(exc).replace(repr(topic), shown)
                yield ("mqtt", where), f"{reason}: shorten [mqtt] {where}, [device] id or names"
                return

    def topics(self) -> list[tuple[str, str]]:
        """(pattern, longest instance) of every topic the agent may publish or subscribe to.

        The instance uses the longest configured sensor or camera name and any command name.
        """
        root, device = self.mqtt.topic_root, self.device.id
        cameras = [c.name for c in self.board.cameras] or ["x" * 16]
        sources = [s.name for s in self.board.sensors] + cameras
        camera, source = max(cameras, key=len), max(sources, key=len)
        rule = max(RULES, key=len)
        levels = [
            ("telemetry", "telemetry"),
            ("status", "status"),
            ("vision/<camera>", f"vision/{camera}"),
            ("cmd/<command>", f"cmd/{LONGEST_COMMAND}"),
            ("result/<command>", f"result/{LONGEST_COMMAND}"),
            ("alarm/<alarm>", f"alarm/{alarm_name(rule, source)}"),
        ]
        topics = [
            (f"{root}/{device}/{shown}", f"{root}/{device}/{level}") for shown, level in levels
        ]
        if self.mqtt.ha_discovery:
            object_id = f"{source}_differential_pressure_pa"
            topics.append(
                (
                    f"{self.mqtt.ha_prefix}/sensor/{device}/<entity>/config",
                    f"{self.mqtt.ha_prefix}/sensor/{device}/{object_id}/config",
                )
            )
        return topics
