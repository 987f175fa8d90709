"""One sampling round: the newest sample of every sensor, for one telemetry message and the alarms.

A round never waits for a chip. Each sensor has its own interval (by default the round's) and is
read only when it is due; a chip that makes samples on its own schedule (SCD4x every 5 s, SCD30
every measurement interval: :class:`~drivers.sensor.PacedSensor`) is asked whether a sample is
waiting and read only when one is. A sensor with no new sample this round contributes its last
one with its age, or nothing before its first. So a round of fast chips every 0.2 s publishes
every 0.2 s, whatever the slowest chip does.

Intervals, due times and ages run on the board's clock (the injected clock of the simulated
board in tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.board import SensorInfo
from agent.fault_record import FaultRecord
from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import NotReadyError, SensorError, SensorTimeoutError
from drivers.measurement import Measurement
from drivers.sensor import PacedSensor, Sensor

log = logging.getLogger(__name__)

DUE_SLACK = 0.25
"""A sensor is due this fraction of its interval early, so that the jitter of the round job
never makes it skip a round whose interval it shares."""
MISSED_SAMPLE_MARGIN_S = 1.0
"""A paced chip with no new sample for its period plus this is not ready (a fault): the chip's
clock tolerance and the bus, as in its driver's own blocking read."""


@dataclass
class SensorState(FaultRecord):
    """What the agent knows of one sensor, for the health report and the technician."""

    name: str
    chip: str
    location: str
    interval_s: float = 0.0
    """Read at most this often; a paced chip still waits for its own next sample."""
    started: bool = False
    last_values: Mapping[str, float] | None = None
    last_ok_at: float | None = None
    """Wall-clock time (epoch s) of the last good read."""
    last: Measurement | None = field(default=None, repr=False)
    last_at: float | None = None
    """Board-clock time of the last new sample."""
    started_at: float | None = None
    """Board-clock time of the last start: a paced chip's first sample is one period later."""
    next_due: float = 0.0
    """Board-clock time from which the sensor is read again."""

    def age_s(self, now: float) -> float | None:
        """Seconds since the last new sample; None before the first."""
        return None if self.last_at is None else max(0.0, now - self.last_at)


@dataclass(frozen=True, slots=True)
class RoundResult:
    """The outcome of one round: the newest reading of each sensor and this round's errors.

    ``ages`` holds the sensors whose reading is an earlier sample (carried over: no new one
    this round), with its age in seconds; every other reading is new this round.
    """

    ts: float
    readings: Mapping[str, Measurement]
    faults: Mapping[str, str]
    ages: Mapping[str, float] = field(default_factory=dict)

    @property
    def new(self) -> dict[str, Measurement]:
        """The readings taken this round (what the alarm rules observe)."""
        return {name: m for name, m in self.readings.items() if name not in self.ages}

    def telemetry_body(self, info: Mapping[str, SensorInfo]) -> dict[str, object]:
        """The ``telemetry`` message body (see docs/wire-format.md); a carried-over reading
        says how old it is in ``age_s``."""
        sensors: dict[str, object] = {}
        for name, m in self.readings.items():
            reading: dict[str, object] = {"chip": info[name].chip, **_rounded(m.values())}
            if name in self.ages:
                reading["age_s"] = round(self.ages[name], 1)
            sensors[name] = reading
        return {"sensors": sensors, "faults": dict(self.faults)}


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    # Two decimals are finer than any of these chips resolves; the rest is noise on the wire.
    return {k: round(v, 2) for k, v in values.items()}


class Sampler:
    """Reads a set of sensors without waiting for any; starts (and restarts after a fault) each
    one as needed.

    A sensor that fails is started again when it is next due, so a chip that was unplugged and
    plugged back, or power-cycled, comes back by itself. A UART sensor whose answer was lost
    (a :class:`SensorTimeoutError`) is asked once more before that counts as a fault: one
    dropped frame on a serial line is common and says nothing about the chip.
    """

    def __init__(
        self,
        sensors: Mapping[str, Sensor],
        info: Mapping[str, SensorInfo],
        *,
        interval_s: float = 0.0,
        intervals: Mapping[str, float] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``interval_s`` is the round's (every sensor's by default); ``intervals`` overrides it
        per sensor name."""
        intervals = intervals or {}
        unknown = set(intervals) - set(sensors)
        if unknown:
            raise ValueError(f"intervals for unknown sensors: {', '.join(sorted(unknown))}")
        self.sensors = dict(sensors)
        self.info = dict(info)
        self.state = {
            name: SensorState(
                name,
                info[name].chip,
                info[name].location,
                interval_s=intervals.get(name, interval_s),
            )
            for name in sensors
        }
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()

    def sample(self) -> RoundResult:
        """One round. Thread-safe: a command's "read now" and the job share it."""
        with self._lock:
            readings: dict[str, Measurement] = {}
            faults: dict[str, str] = {}
            ages: dict[str, float] = {}
            now = self._clock.monotonic()  # the round's time: due times stay in step with it
            for name, sensor in self.sensors.items():
                state = self.state[name]
                if now >= state.next_due - DUE_SLACK * state.interval_s:
                    try:
                        self._poll(name, sensor, state, now)
                    except SensorError as exc:
                        state.started = False
                        state.last = state.last_at = None
                        state.failed(exc.detail)
                        faults[name] = f"{type(exc).__name__}: {exc.detail}"
                        log.warning("sensor read failed sensor=%s error=%s", name, exc)
                        continue
                if state.last is None or state.last_at is None:
                    continue  # nothing yet (a paced chip's first sample is one period away)
                readings[name] = state.last
                if state.last_at < now:
                    ages[name] = now - state.last_at
            return RoundResult(self._wall_clock(), readings, faults, ages)

    def _poll(self, name: str, sensor: Sensor, state: SensorState, now: float) -> None:
        """Take a new sample if the chip has one; raise :class:`SensorError` otherwise."""
        if not state.started:
            sensor.start()
            state.started = True
            state.started_at = now
        if isinstance(sensor, PacedSensor) and not sensor.data_ready():
            since = state.last_at if state.last_at is not None else state.started_at
            waited = 0.0 if since is None else now - since
            if waited > sensor.sample_period_s + MISSED_SAMPLE_MARGIN_S:
                raise NotReadyError(
                    f"no new sample for {waited:.1f} s (one every {sensor.sample_period_s:g} s)",
                    sensor=sensor.chip,
                    address=self.info[name].address,
                )
            return  # still due: asked again next round
        measurement = self._read(name, sensor)
        if state.succeeded():
            log.info("sensor recovered sensor=%s", name)
        state.last = measurement
        state.last_at = now
        state.last_values = measurement.values()
        state.last_ok_at = self._wall_clock()
        following = state.next_due + state.interval_s
        state.next_due = following if following > now else now + state.interval_s

    def _read(self, name: str, sensor: Sensor) -> Measurement:
        try:
            return sensor.read()
        except SensorTimeoutError as exc:
            if self.info[name].address is not None:
                raise  # an I2C chip that does not answer in time is not a lost frame
            log.info("sensor answer lost, asking again sensor=%s error=%s", name, exc)
            return sensor.read()
