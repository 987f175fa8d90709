"""A soak scenario file (TOML): the agent to run, a timeline of faults, what must hold throughout.

Strict like the agent's own config: unknown keys are refused, types are not coerced, and every
problem is one line naming the file and the dotted key (``faults[2].for_s``), all at once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FaultKind = Literal[
    "broker_down",
    "agent_kill",
    "disk_full",
    "sensor_unplug",
    "crc_storm",
    "camera_unplug",
    "camera_black",
    "camera_frozen",
    "clock_jump",
    "cpu_stop",
    "cpu_hog",
]

TARGETED: frozenset[str] = frozenset(
    {"sensor_unplug", "crc_storm", "camera_unplug", "camera_black", "camera_frozen"}
)
"""Faults of one sensor or camera: they need ``target``."""
ASKED: frozenset[str] = TARGETED | {"clock_jump"}
"""Faults asked of the agent on its control socket: it must be running and not stopped."""
SENSORS = ("bme280", "scd41", "filter_dp", "mhz19")
"""The simulated board a scenario runs: three I2C chips and a UART one."""
CRC_SENSORS = ("scd41", "filter_dp", "mhz19")
"""The sensors whose answers carry a checksum (the BME280's do not)."""
CAMERAS = ("upstream",)


class ScenarioError(ValueError):
    """A scenario file that cannot be run: one line per problem, file and key named."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AlarmExpectation(_Strict):
    """The alarm a fault must raise while it lasts and clear once mended."""

    name: str = Field(min_length=1, description="alarm name, e.g. sensor_fault_scd41")
    raised_within_s: float = Field(gt=0, description="raised at most this long after the fault")
    cleared_within_s: float | None = Field(
        default=None, gt=0, description="cleared at most this long after the fault is mended"
    )


class Fault(_Strict):
    """One fault of the timeline, injected ``at_s`` after the agent started, for ``for_s``."""

    at_s: float = Field(ge=0)
    kind: FaultKind
    for_s: float = Field(default=0.0, ge=0, description="how long it lasts (0: one-shot)")
    target: str | None = Field(default=None, description="the sensor or camera it breaks")
    jump_s: float | None = Field(default=None, description="clock_jump: seconds, may be negative")
    processes: int = Field(default=1, ge=1, le=8, description="cpu_hog: busy processes")
    alarm: AlarmExpectation | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Fault:
        if self.kind in TARGETED:
            known = {"sensor_unplug": SENSORS, "crc_storm": CRC_SENSORS}.get(self.kind, CAMERAS)
            if self.target not in known:
                raise ValueError(f"{self.kind} needs target = one of {', '.join(known)}")
        elif self.target is not None:
            raise ValueError(f"{self.kind} takes no target")
        if (self.kind == "clock_jump") != (self.jump_s is not None):
            raise ValueError("jump_s goes with kind = 'clock_jump', and only there")
        lasting = self.kind not in ("clock_jump", "agent_kill")
        if lasting and self.for_s <= 0:
            raise ValueError(f"{self.kind} needs for_s > 0 (how long the fault lasts)")
        if self.alarm is not None and self.alarm.cleared_within_s is not None and not lasting:
            raise ValueError(f"{self.kind} is one-shot: its alarm cannot be cleared on mending")
        return self

    @property
    def ends_at_s(self) -> float:
        return self.at_s + self.for_s


class AgentSettings(_Strict):
    """How the agent under test is configured (the rest is fixed: the simulated board)."""

    sensor_interval_s: float = Field(default=0.2, gt=0)
    snapshot_interval_s: float = Field(default=3.0, gt=0)
    status_interval_s: float = Field(default=1.0, gt=0)
    outbox_max_messages: int = Field(default=10000, ge=10)
    sim_speed: float = Field(default=50.0, gt=0)
    disk_mib: int = Field(
        default=8, ge=2, description="size of the tmpfs under the state directory (disk_full)"
    )


class Expectations(_Strict):
    """What must hold over the whole run."""

    max_lost: int = Field(default=0, ge=0, description="stream seqs neither received nor reported")
    drain_within_s: float = Field(
        default=30.0, gt=0, description="after the timeline, every seq arrives within this"
    )
    threads_alive: bool = Field(default=True, description="every job still runs at the end")
    max_rss_growth_mib: float | None = Field(
        default=None, gt=0, description="RSS growth of one agent process after warm_up_s"
    )
    warm_up_s: float = Field(default=5.0, ge=0)


class Scenario(_Strict):
    """A whole scenario file."""

    name: str = Field(min_length=1)
    duration_s: float = Field(gt=0)
    description: str = ""
    agent: AgentSettings = AgentSettings()
    faults: list[Fault] = Field(default_factory=list)
    expect: Expectations = Expectations()

    @model_validator(mode="after")
    def _inside(self) -> Scenario:
        for i, fault in enumerate(self.faults):
            if fault.ends_at_s > self.duration_s:
                raise ValueError(
                    f"faults[{i}] ({fault.kind}) ends at {fault.ends_at_s:g} s,"
                    f" after duration_s = {self.duration_s:g}"
                )
        away = [(j, f) for j, f in enumerate(self.faults) if f.kind in ("cpu_stop", "agent_kill")]
        for i, fault in enumerate(self.faults):
            if fault.kind not in ASKED:
                continue
            for moment in {fault.at_s, fault.ends_at_s}:
                for j, other in away:
                    if other.at_s <= moment <= other.ends_at_s:
                        raise ValueError(
                            f"faults[{i}] ({fault.kind}) needs the agent's control socket at"
                            f" {moment:g} s, while faults[{j}] ({other.kind}) has the agent"
                            f" {'stopped' if other.kind == 'cpu_stop' else 'down'}"
                            f" ({other.at_s:g}-{other.ends_at_s:g} s)"
                        )
        return self

    def timeline(self) -> list[Fault]:
        return sorted(self.faults, key=lambda f: f.at_s)


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; :class:`ScenarioError` lists every problem, one a line."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not TOML: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError("\n".join(_lines(path, exc))) from None


def _lines(path: Path, exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (not part of a scenario; check the spelling)"
        lines.append(f"{path}: {key or '(top level)'}: {message}")
    return lines
