"""Alarm rules (this file is being completed: the engine lands beside the settings below)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AlarmsConfig:
    """The ``[alarms]`` section: thresholds follow DESIGN.md's domain references."""

    co2_warning_ppm: float = field(
        default=1000.0,
        metadata={"doc": "CO2 warning threshold (EN 16798-1 / ASHRAE 62.1 practice)"},
    )
    co2_critical_ppm: float = field(default=1500.0, metadata={"doc": "CO2 critical threshold"})
    co2_hysteresis_ppm: float = field(
        default=100.0, metadata={"doc": "CO2 must fall this far below a threshold to clear"}
    )
    humidity_high_rh: float = field(
        default=70.0, metadata={"doc": "relative humidity above which mould risk is raised"}
    )
    humidity_hysteresis_rh: float = field(
        default=5.0, metadata={"doc": "humidity must fall this far below to clear"}
    )
    temperature_high_c: float = field(
        default=35.0, metadata={"doc": "duct air temperature high threshold"}
    )
    temperature_low_c: float = field(
        default=5.0, metadata={"doc": "duct air temperature low threshold (frost risk)"}
    )
    temperature_hysteresis_c: float = field(default=1.0, metadata={"doc": "temperature hysteresis"})
    filter_dp_high_pa: float = field(
        default=250.0, metadata={"doc": "filter differential pressure that calls for a change"}
    )
    filter_dp_hysteresis_pa: float = field(
        default=20.0, metadata={"doc": "filter pressure drop hysteresis"}
    )
    hold_s: float = field(
        default=120.0,
        metadata={"doc": "a condition must hold this long before raising or clearing"},
    )
    dirty_consecutive: int = field(
        default=3,
        metadata={"doc": "consecutive dirty verdicts of one camera that raise duct_dirty"},
    )
    sensor_fault_consecutive: int = field(
        default=3, metadata={"doc": "consecutive failed reads that raise sensor_fault"}
    )
    camera_fault_consecutive: int = field(
        default=2, metadata={"doc": "consecutive failed captures that raise camera_fault"}
    )
    outbox_near_full_fraction: float = field(
        default=0.9, metadata={"doc": "outbox fill fraction that raises outbox_near_full"}
    )
