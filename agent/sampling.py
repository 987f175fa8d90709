"""One sampling round: read every sensor, publish one telemetry message, feed the alarm rules."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.board import SensorInfo
from agent.fault_record import FaultRecord
from drivers.errors import SensorError
from drivers.measurement import Measurement
from drivers.sensor import Sensor

log = logging.getLogger(__name__)


@dataclass
class SensorState(FaultRecord):
    """What the agent knows of one sensor, for the health report and the technician."""

    name: str
    chip: str
    location: str
    started: bool = False
    last_values: Mapping[str, float] | None = None
    last_ok_at: float | None = None
    """Wall-clock time (epoch s) of the last good read."""


@dataclass(frozen=True, slots=True)
class RoundResult:
    """The outcome of one round: the readings that worked and the errors of those that did not."""

    ts: float
    readings: Mapping[str, Measurement]
    faults: Mapping[str, str]

    def telemetry_body(self, info: Mapping[str, SensorInfo]) -> dict[str, object]:
        """The ``telemetry`` message body (see docs/wire-format.md)."""
        return {
            "sensors": {
                name: {"chip": info[name].chip, **_rounded(m.values())}
                for name, m in self.readings.items()
            },
            "faults": dict(self.faults),
        }


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    # Two decimals are finer than any of these chips resolves; the rest is noise on the wire.
    return {k: round(v, 2) for k, v in values.items()}


class Sampler:
    """Reads a set of sensors; starts (and restarts after a fault) each one as needed.

    A sensor that fails is started again on the next round, so a chip that was unplugged and
    plugged back, or power-cycled, comes back by itself.
    """

    def __init__(
        self,
        sensors: Mapping[str, Sensor],
        info: Mapping[str, SensorInfo],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.sensors = dict(sensors)
        self.info = dict(info)
        self.state = {
            name: SensorState(name, info[name].chip, info[name].location) for name in sensors
        }
        self._wall_clock = wall_clock
        self._lock = threading.Lock()

    def sample(self) -> RoundResult:
        """Read every sensor once. Thread-safe: a command's "read now" and the job share it."""
        with self._lock:
            readings: dict[str, Measurement] = {}
            faults: dict[str, str] = {}
            for name, sensor in self.sensors.items():
                state = self.state[name]
                try:
                    if not state.started:
                        sensor.start()
                        state.started = True
                    measurement = sensor.read()
                except SensorError as exc:
                    state.started = False
                    state.failed(exc.detail)
                    faults[name] = f"{type(exc).__name__}: {exc.detail}"
                    log.warning("sensor read failed sensor=%s error=%s", name, exc)
                    continue
                now = self._wall_clock()
                if state.succeeded():
                    log.info("sensor recovered sensor=%s", name)
                state.last_values = measurement.values()
                state.last_ok_at = now
                readings[name] = measurement
            return RoundResult(self._wall_clock(), readings, faults)
