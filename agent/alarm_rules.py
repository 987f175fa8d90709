"""The alarm rules declared as data: the ``[alarms]`` settings, the threshold rules, alarm events.

:mod:`agent.alarms` evaluates them (hold timers, streaks, the active set); this module only says
what each rule watches, where its limits come from and how its messages read, so that adding a
threshold rule is one :class:`ThresholdRule` row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from agent.active_alarms import Severity
from agent.config_base import Problem, Section, setting

AlarmState = Literal["raised", "cleared"]


class AlarmsConfig(Section):
    """The ``[alarms]`` section: thresholds follow DESIGN.md's domain references."""

    co2_warning_ppm: float = setting(
        1000.0, "CO2 warning threshold (EN 16798-1 / ASHRAE 62.1 practice)"
    )
    co2_critical_ppm: float = setting(1500.0, "CO2 critical threshold")
    co2_hysteresis_ppm: float = setting(
        100.0, "CO2 must fall this far below a threshold to clear", ge=0
    )
    humidity_high_rh: float = setting(70.0, "relative humidity above which mould risk is raised")
    humidity_hysteresis_rh: float = setting(5.0, "humidity must fall this far below to clear", ge=0)
    temperature_high_c: float = setting(35.0, "duct air temperature high threshold")
    temperature_low_c: float = setting(5.0, "duct air temperature low threshold (frost risk)")
    temperature_hysteresis_c: float = setting(1.0, "temperature hysteresis", ge=0)
    filter_dp_high_pa: float = setting(
        250.0, "filter differential pressure that calls for a change"
    )
    filter_dp_hysteresis_pa: float = setting(20.0, "filter pressure drop hysteresis", ge=0)
    hold_s: float = setting(
        120.0, "a condition must hold this long before raising or clearing", ge=0
    )
    dirty_consecutive: int = setting(
        3, "consecutive dirty verdicts of one camera that raise duct_dirty", ge=1
    )
    sensor_fault_consecutive: int = setting(
        3, "consecutive failed reads that raise sensor_fault", ge=1
    )
    camera_fault_consecutive: int = setting(
        2, "consecutive failed captures that raise camera_fault", ge=1
    )
    outbox_near_full_fraction: float = setting(
        0.9, "outbox fill fraction that raises outbox_near_full", gt=0, le=1
    )
    outbox_hysteresis_fraction: float = setting(
        0.1, "outbox fill must fall this far below the threshold to clear", ge=0, le=1
    )

    def problems(self) -> Iterator[Problem]:
        if self.outbox_hysteresis_fraction >= self.outbox_near_full_fraction:
            yield (
                ("outbox_hysteresis_fraction",),
                f"{self.outbox_hysteresis_fraction:g} must be below outbox_near_full_fraction "
                f"{self.outbox_near_full_fraction:g}",
            )


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One transition of one alarm, as published on ``alarm/<name>``."""

    name: str
    rule: str
    source: str
    state: AlarmState
    severity: Severity
    value: float | None
    threshold: float | None
    message: str
    ts: float
    sensors: tuple[str, ...] = ()
    """Threshold alarms: the sensors whose readings agree (the alarm is per quantity)."""

    def to_body(self) -> dict[str, object]:
        """The MQTT body without the envelope (``v``, ``device``, ``seq``, ``ts`` from ``ts``)."""
        return {
            "name": self.name,
            "rule": self.rule,
            "source": self.source,
            "sensors": list(self.sensors),
            "state": self.state,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A rule on one :class:`Measurement` quantity, declared as data (see the module table)."""

    rule: str
    quantity: str
    direction: Literal["above", "below"]
    severity: Severity
    threshold: Callable[[AlarmsConfig], float]
    hysteresis: Callable[[AlarmsConfig], float]
    label: str
    unit: str
    decimals: int
    level: str
    advice: str = ""

    def tripped(self, value: float, config: AlarmsConfig) -> bool:
        limit = self.threshold(config)
        return value >= limit if self.direction == "above" else value <= limit

    def clear_level(self, config: AlarmsConfig) -> float:
        margin = self.hysteresis(config)
        limit = self.threshold(config)
        return limit - margin if self.direction == "above" else limit + margin

    def cleared(self, value: float, config: AlarmsConfig) -> bool:
        level = self.clear_level(config)
        return value < level if self.direction == "above" else value > level

    def raised_message(self, source: str, value: float, config: AlarmsConfig) -> str:
        text = (
            f"{self.label} {self._fmt(value)} {self.unit} at {source} is {self.direction} "
            f"the {self.level} {self._fmt(self.threshold(config))} {self.unit}"
        )
        return f"{text}: {self.advice}" if self.advice else text

    def cleared_message(self, source: str, value: float, config: AlarmsConfig) -> str:
        back = "below" if self.direction == "above" else "above"
        return (
            f"{self.label} {self._fmt(value)} {self.unit} at {source} is back {back} "
            f"{self._fmt(self.clear_level(config))} {self.unit} "
            f"({self.level} {self._fmt(self.threshold(config))} {self.unit})"
        )

    def _fmt(self, number: float) -> str:
        text = f"{number:.{self.decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text


THRESHOLD_RULES: tuple[ThresholdRule, ...] = (
    ThresholdRule(
        "co2_warning", "co2_ppm", "above", "warning",
        lambda c: c.co2_warning_ppm, lambda c: c.co2_hysteresis_ppm,
        "CO2", "ppm", 0, "warning threshold", "ventilation is not keeping up",
    ),
    ThresholdRule(
        "co2_critical", "co2_ppm", "above", "critical",
        lambda c: c.co2_critical_ppm, lambda c: c.co2_hysteresis_ppm,
        "CO2", "ppm", 0, "critical threshold",
    ),
    ThresholdRule(
        "humidity_high", "humidity_rh", "above", "warning",
        lambda c: c.humidity_high_rh, lambda c: c.humidity_hysteresis_rh,
        "Humidity", "%RH", 1, "high threshold", "sustained, this is a mould risk in the duct",
    ),
    ThresholdRule(
        "temperature_high", "temperature_c", "above", "warning",
        lambda c: c.temperature_high_c, lambda c: c.temperature_hysteresis_c,
        "Temperature", "°C", 1, "high threshold",
    ),
    ThresholdRule(
        "temperature_low", "temperature_c", "below", "warning",
        lambda c: c.temperature_low_c, lambda c: c.temperature_hysteresis_c,
        "Temperature", "°C", 1, "low threshold", "frost risk",
    ),
    ThresholdRule(
        "filter_clogged", "differential_pressure_pa", "above", "warning",
        lambda c: c.filter_dp_high_pa, lambda c: c.filter_dp_hysteresis_pa,
        "Filter differential pressure", "Pa", 0, "clogged-filter threshold",
        "the filter needs changing",
    ),
)  # fmt: skip

RULES: frozenset[str] = frozenset(
    {r.rule for r in THRESHOLD_RULES}
    | {"duct_dirty", "sensor_fault", "camera_fault", "outbox_near_full"}
)

_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def alarm_name(rule: str, source: str) -> str:
    """``<rule>_<source>``, or ``<rule>`` for board-wide alarms; safe as one MQTT topic level."""
    return _TOPIC_UNSAFE.sub("_", f"{rule}_{source}" if source else rule)
