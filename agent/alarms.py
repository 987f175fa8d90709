"""Alarm rules: sensor readings, vision verdicts and health observations in, raised/cleared out.

The engine is fed observations with their timestamp (epoch seconds from the agent's clock; the
rules never read the wall clock) and returns the :class:`AlarmEvent` each observation causes,
usually none. Fault and dirty-duct alarms are named ``<rule>_<source>`` (``sensor_fault_scd41``,
``duct_dirty_cam0``); threshold alarms and board-wide ones just ``<rule>``, so that each maps onto
the MQTT topic ``alarm/<name>``.

======================  ==============================  =========  ==========  ======  ========
rule                    raised when                     default    clears at   hold    severity
======================  ==============================  =========  ==========  ======  ========
``co2_warning``         co2_ppm >= threshold            1000 ppm   < 900 ppm   120 s   warning
``co2_critical``        co2_ppm >= threshold            1500 ppm   < 1400 ppm  120 s   critical
``humidity_high``       humidity_rh >= threshold        70 %RH     < 65 %RH    120 s   warning
``temperature_high``    temperature_c >= threshold      35 °C      < 34 °C     120 s   warning
``temperature_low``     temperature_c <= threshold      5 °C       > 6 °C      120 s   warning
``filter_clogged``      differential_pressure_pa >= t.  250 Pa     < 230 Pa    120 s   warning
``duct_dirty``          N consecutive dirty verdicts    N = 3      N clean     --      warning
``sensor_fault``        K consecutive failed reads      K = 3      1 good      --      critical
``camera_fault``        K consecutive failed captures   K = 2      1 good      --      warning
``outbox_near_full``    outbox fill >= fraction         0.90       < 0.80      --      warning
======================  ==============================  =========  ==========  ======  ========

Threshold rules (the first six) raise one alarm per rule, not per sensor: one CO2 event is one
``co2_warning`` however many CO2 sensors see it, listing the sensors that agree. Each sensor keeps
its own hold timers: a condition must be observed continuously by a sensor for ``hold_s`` (from
its first observation to the current one, ``>=``) before that sensor agrees, and its clearing
condition likewise before it stops agreeing. The alarm is raised with its first agreeing sensor
and cleared when the last one stops agreeing. A single spike or dip does nothing, and a value
inside the hysteresis band resets either timer. A failed read of a sensor restarts that sensor's
timers (the condition was not observed meanwhile); a measurement that lacks a quantity leaves that
quantity's timers alone. Hold timers run on the monotonic clock (injected, ``monotonic=``): a wall
clock stepped by NTP at boot neither ends a hold early nor stretches it; event timestamps stay on
the wall clock.
CO2 warning and critical are independent alarms: at 1600 ppm both are active.

Severities: ``critical`` where the board can no longer do its job or people are exposed (CO2 at
the critical level; a sensor that no longer reads, because every air alarm of that sensor goes
blind). Everything that calls for planned maintenance rather than a call-out (filter, dirty duct,
humidity, temperature, a camera, whose subject changes over weeks) is a ``warning``.

Labels other than ``dirty`` and ``clean`` (an ``uncertain`` verdict) neither count towards nor
break a ``duct_dirty`` streak. A measurement or verdict also counts as a good read or capture.

The set of active alarms survives a restart (:mod:`agent.active_alarms`); pending hold timers and
counters do not, so after a restart a condition needs its full hold time or streak again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from agent.active_alarms import ActiveAlarm, AlarmStateFile, Severity
from agent.alarm_rules import (
    RULES,
    THRESHOLD_RULES,
    AlarmEvent,
    AlarmsConfig,
    ThresholdRule,
    alarm_name,
)
from drivers.measurement import Measurement

__all__ = [
    "RULES",
    "THRESHOLD_RULES",
    "ActiveAlarm",
    "AlarmEngine",
    "AlarmEvent",
    "AlarmsConfig",
    "Severity",
    "ThresholdRule",
    "alarm_name",
]

logger = logging.getLogger(__name__)

DIRTY_LABEL = "dirty"
CLEAN_LABEL = "clean"


_THRESHOLD_BY_RULE = {r.rule: r for r in THRESHOLD_RULES}


def _one_line(text: str) -> str:
    """An exception text squeezed onto one line, so that a message stays one line."""
    return " ".join(text.split())


class AlarmEngine:
    """Evaluates every rule; thread-safe, so sampling and vision threads may both feed it.

    ``state_path`` (a JSON file, e.g. ``<storage dir>/alarms.json``) keeps the active set across
    restarts; None keeps it in memory only. Each ``observe_*`` returns the events it caused, in
    order; the caller publishes them. Storage trouble is logged and shows in
    :attr:`persistence_error`, it never raises.
    """

    def __init__(
        self,
        config: AlarmsConfig,
        state_path: Path | None = None,
        *,
        history_size: int = 200,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._store = AlarmStateFile(state_path) if state_path is not None else None
        self._active: dict[str, ActiveAlarm] = {}
        # Per (rule, sensor): when (monotonic) that sensor's condition for its next transition
        # was first seen. A wall-clock step (NTP at boot) cannot end a hold early.
        self._pending_since: dict[str, float] = {}
        # Per threshold alarm: the sensors whose condition holds, with their last value.
        self._members: dict[str, dict[str, float]] = {}
        # Threshold alarms restored active from disk: a sensor counts as agreeing on first sight
        # (its clear condition must then hold as usual), so a restart does not clear them.
        self._restored: dict[str, set[str]] = {}
        # Consecutive observations towards the next transition of a counted alarm.
        self._streak: dict[str, int] = {}
        self._history: deque[AlarmEvent] = deque(maxlen=max(1, history_size))
        for alarm in self._store.load() if self._store is not None else []:
            if alarm.rule in _THRESHOLD_BY_RULE:
                self._restore_threshold(alarm)
            elif alarm.rule in RULES:
                self._active[alarm.name] = alarm
            else:
                logger.warning(
                    "dropping stored alarm of unknown rule name=%s rule=%s", alarm.name, alarm.rule
                )

    def _restore_threshold(self, alarm: ActiveAlarm) -> None:
        """A stored threshold alarm; one stored per sensor by an older version joins its rule's."""
        name = alarm_name(alarm.rule, "")
        sensors = set(alarm.sensors) | ({alarm.source} if alarm.source else set())
        kept = self._active.get(name)
        if kept is not None:
            sensors |= set(kept.sensors)
            alarm = alarm if alarm.raised_at < kept.raised_at else kept
        self._active[name] = dataclasses.replace(
            alarm, name=name, source="", sensors=tuple(sorted(sensors))
        )
        self._restored[name] = set()

    @property
    def persistence_error(self) -> str | None:
        """Why the active set could not be saved last time, or None."""
        return self._store.error if self._store is not None else None

    def active(self) -> list[ActiveAlarm]:
        """The alarms raised and not cleared, oldest first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda a: (a.raised_at, a.name))

    def recent(self, limit: int = 50) -> list[AlarmEvent]:
        """The last ``limit`` events since start-up, oldest first (in memory only)."""
        with self._lock:
            return list(self._history)[-limit:] if limit > 0 else []

    # -- sensors -------------------------------------------------------------------------------

    def observe_measurement(
        self, sensor: str, measurement: Measurement, ts: float
    ) -> list[AlarmEvent]:
        """A good reading: clears ``sensor_fault`` and steps every threshold rule it concerns."""
        with self._lock:
            events = self._sensor_ok(sensor, ts)
            values = measurement.values()
            for rule in THRESHOLD_RULES:
                value = values.get(rule.quantity)
                if value is not None and math.isfinite(value):
                    events += self._step_threshold(rule, sensor, value, ts)
            return self._commit(events)

    def observe_sensor_ok(self, sensor: str, ts: float) -> list[AlarmEvent]:
        """A good read without a measurement to evaluate: resets and clears ``sensor_fault``."""
        with self._lock:
            return self._commit(self._sensor_ok(sensor, ts))

    def observe_sensor_fault(self, sensor: str, error: str, ts: float) -> list[AlarmEvent]:
        """A failed read; ``error`` (one line) goes into the alarm message."""
        with self._lock:
            for rule in THRESHOLD_RULES:
                self._pending_since.pop(alarm_name(rule.rule, sensor), None)
            name = alarm_name("sensor_fault", sensor)
            needed = self._config.sensor_fault_consecutive
            if not self._step_streak(name, towards=name not in self._active, needed=needed):
                return []
            message = (
                f"sensor {sensor} failed {needed} consecutive reads "
                f"(last error: {_one_line(error)})"
            )
            event = self._raise("sensor_fault", sensor, "critical", needed, needed, message, ts)
            return self._commit([event])

    def _sensor_ok(self, sensor: str, ts: float) -> list[AlarmEvent]:
        name = alarm_name("sensor_fault", sensor)
        self._streak.pop(name, None)
        if name not in self._active:
            return []
        return [self._clear(name, None, f"sensor {sensor} reads again", ts)]

    # -- cameras -------------------------------------------------------------------------------

    def observe_verdict(self, camera: str, label: str, ts: float) -> list[AlarmEvent]:
        """A vision verdict: also a good capture. Only ``dirty``/``clean`` move the streak."""
        with self._lock:
            events = self._camera_ok(camera, ts)
            name = alarm_name("duct_dirty", camera)
            verdict = label.strip().lower()
            if verdict not in (DIRTY_LABEL, CLEAN_LABEL):
                return self._commit(events)
            active = name in self._active
            needed = self._config.dirty_consecutive
            towards = (verdict == DIRTY_LABEL) != active
            if self._step_streak(name, towards=towards, needed=needed):
                if active:
                    message = f"camera {camera} saw a clean duct in {needed} consecutive snapshots"
                    events.append(self._clear(name, needed, message, ts))
                else:
                    message = (
                        f"camera {camera} saw a dirty duct in {needed} consecutive snapshots: "
                        "inspect the duct and plan a cleaning"
                    )
                    events.append(
                        self._raise("duct_dirty", camera, "warning", needed, needed, message, ts)
                    )
            return self._commit(events)

    def observe_camera_ok(self, camera: str, ts: float) -> list[AlarmEvent]:
        """A good capture: resets and clears ``camera_fault``."""
        with self._lock:
            return self._commit(self._camera_ok(camera, ts))

    def observe_camera_fault(self, camera: str, error: str, ts: float) -> list[AlarmEvent]:
        """A failed capture; ``error`` (one line) goes into the alarm message."""
        with self._lock:
            name = alarm_name("camera_fault", camera)
            needed = self._config.camera_fault_consecutive
            if not self._step_streak(name, towards=name not in self._active, needed=needed):
                return []
            message = (
                f"camera {camera} failed {needed} consecutive captures "
                f"(last error: {_one_line(error)})"
            )
            event = self._raise("camera_fault", camera, "warning", needed, needed, message, ts)
            return self._commit([event])

    def _camera_ok(self, camera: str, ts: float) -> list[AlarmEvent]:
        name = alarm_name("camera_fault", camera)
        self._streak.pop(name, None)
        if name not in self._active:
            return []
        return [self._clear(name, None, f"camera {camera} captures again", ts)]

    # -- outbox --------------------------------------------------------------------------------

    def observe_outbox(self, fill_fraction: float, ts: float) -> list[AlarmEvent]:
        """The outbox fill (0..1); no hold time, the fill moves slowly by nature."""
        if not math.isfinite(fill_fraction):
            return []
        with self._lock:
            name = alarm_name("outbox_near_full", "")
            limit = self._config.outbox_near_full_fraction
            clear_below = limit - self._config.outbox_hysteresis_fraction
            percent = f"{fill_fraction:.0%}"
            if name in self._active and fill_fraction < clear_below:
                message = f"outbox back to {percent} full (below {clear_below:.0%})"
                return self._commit([self._clear(name, fill_fraction, message, ts)])
            if name not in self._active and fill_fraction >= limit:
                message = (
                    f"outbox {percent} full (threshold {limit:.0%}): the broker has not taken "
                    "messages for a while; telemetry is evicted oldest first when it is full"
                )
                event = self._raise(
                    "outbox_near_full", "", "warning", fill_fraction, limit, message, ts
                )
                return self._commit([event])
            return []

    # -- transitions ---------------------------------------------------------------------------

    def _step_threshold(
        self, rule: ThresholdRule, sensor: str, value: float, ts: float
    ) -> list[AlarmEvent]:
        """One sensor's reading: its own hold timer, the rule's one alarm for all sensors."""
        name = alarm_name(rule.rule, "")
        key = alarm_name(rule.rule, sensor)
        members = self._members.setdefault(name, {})
        seen = self._restored.get(name)
        if seen is not None and sensor not in seen:
            seen.add(sensor)
            members[sensor] = value
        member = sensor in members
        if member:
            members[sensor] = value
        if not (rule.cleared(value, self._config) if member else rule.tripped(value, self._config)):
            self._pending_since.pop(key, None)
            return []
        now = self._monotonic()
        since = self._pending_since.setdefault(key, now)
        if now - since < self._config.hold_s:
            return []
        del self._pending_since[key]
        if member:
            del members[sensor]
        else:
            members[sensor] = value
        return self._settle_threshold(rule, name, sensor, value, ts)

    def _settle_threshold(
        self, rule: ThresholdRule, name: str, sensor: str, value: float, ts: float
    ) -> list[AlarmEvent]:
        """Raise the rule's alarm with its first agreeing sensor, clear it with its last."""
        members = self._members[name]
        sensors = tuple(sorted(members))
        alarm = self._active.get(name)
        if alarm is None and members:
            pick = max if rule.direction == "above" else min
            worst = pick(members.values())
            message = rule.raised_message(", ".join(sensors), worst, self._config)
            threshold = rule.threshold(self._config)
            return [
                self._raise(
                    rule.rule, "", rule.severity, worst, threshold, message, ts, sensors=sensors
                )
            ]
        if alarm is not None and not members:
            self._restored.pop(name, None)
            message = rule.cleared_message(sensor, value, self._config)
            return [self._clear(name, value, message, ts)]
        if alarm is not None:  # a sensor joined or left: the status lists who agrees now
            self._active[name] = dataclasses.replace(alarm, sensors=sensors)
        return []

    def _step_streak(self, name: str, *, towards: bool, needed: int) -> bool:
        """Count one observation; True when ``needed`` in a row point to the next transition."""
        if not towards:
            self._streak.pop(name, None)
            return False
        count = self._streak.get(name, 0) + 1
        if count < needed:
            self._streak[name] = count
            return False
        self._streak.pop(name, None)
        return True

    def _raise(
        self,
        rule: str,
        source: str,
        severity: Severity,
        value: float | None,
        threshold: float | None,
        message: str,
        ts: float,
        *,
        sensors: tuple[str, ...] = (),
    ) -> AlarmEvent:
        name = alarm_name(rule, source)
        value = None if value is None else float(value)
        threshold = None if threshold is None else float(threshold)
        self._active[name] = ActiveAlarm(
            name, rule, source, severity, ts, value, threshold, message, sensors
        )
        logger.warning(
            "alarm raised name=%s severity=%s value=%s threshold=%s message=%r",
            name, severity, value, threshold, message,
        )  # fmt: skip
        return AlarmEvent(
            name, rule, source, "raised", severity, value, threshold, message, ts, sensors
        )

    def _clear(self, name: str, value: float | None, message: str, ts: float) -> AlarmEvent:
        alarm = self._active.pop(name)
        value = None if value is None else float(value)
        logger.info("alarm cleared name=%s value=%s message=%r", name, value, message)
        return AlarmEvent(
            name,
            alarm.rule,
            alarm.source,
            "cleared",
            alarm.severity,
            value,
            alarm.threshold,
            message,
            ts,
            alarm.sensors,
        )

    def _commit(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        """Record the events and, if the active set changed, save it (lock held)."""
        if events:
            self._history.extend(events)
            if self._store is not None:
                self._store.save(sorted(self._active.values(), key=lambda a: a.name))
        return events
