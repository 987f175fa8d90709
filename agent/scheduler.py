"""Periodic jobs on a monotonic clock: no drift, no pile-up after an overrun.

Each job runs in its own thread, so a slow inference or a stuck camera never delays sensor
sampling. Slots are fixed at ``start + k * interval``; a run that overruns its slot skips the
missed slots (logged and counted) instead of running them back to back.

Time comes in through two injected callables, ``monotonic`` (read the clock) and ``wait`` (let
time pass until a deadline or a stop): the daemon gives it the real clock and the stop event, a
test a virtual clock, so a test of the schedule counts runs without waiting for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.config_base import Section, setting

log = logging.getLogger(__name__)


@dataclass
class JobStats:
    """What a job has done, for the health report and the watchdog."""

    runs: int = 0
    skipped: int = 0
    failures: int = 0
    last_started: float | None = None
    last_finished: float | None = None
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class PeriodicJob:
    """Run ``action`` every ``interval_s`` seconds of the monotonic clock, in its own thread."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        action: Callable[[], None],
        *,
        stop: threading.Event,
        first_delay_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        """``wait(seconds)`` lets that much of ``monotonic``'s time pass, or less if the job is
        stopped meanwhile, and says whether it is; by default it is ``stop.wait``."""
        if interval_s <= 0:
            raise ValueError(f"{name}: interval must be positive, got {interval_s}")
        self.name = name
        self.interval_s = interval_s
        self.action = action
        self.first_delay_s = first_delay_s
        self.stats = JobStats()
        self._stop = stop
        self._monotonic = monotonic
        self._wait = wait if wait is not None else stop.wait
        self._thread = threading.Thread(target=self.run, name=f"job-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait at most ``timeout`` s for the thread; False if it is still running (stuck).
        True at once for a job that was never started."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def next_slot(self, origin: float, now: float) -> tuple[float, int]:
        """The next slot after ``now`` and how many slots were missed on the way."""
        elapsed = now - origin
        k = int(elapsed // self.interval_s) + 1
        return origin + k * self.interval_s, max(0, k - 1)

    def run(self) -> None:
        """The job's loop, until stopped: what :meth:`start` runs in the job's thread."""
        origin = self._monotonic() + self.first_delay_s
        slot, index = origin, 0
        while not self._wait(max(0.0, slot - self._monotonic())):
            started = self._monotonic()
            with self.stats._lock:
                self.stats.last_started = started
            try:
                self.action()
                with self.stats._lock:
                    self.stats.runs += 1
                    self.stats.last_error = None
            except Exception as exc:  # a job must never die: log, count, carry on
                log.exception("job failed job=%s", self.name)
                with self.stats._lock:
                    self.stats.failures += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
            finished = self._monotonic()
            with self.stats._lock:
                self.stats.last_finished = finished
            next_slot, missed = self.next_slot(origin, finished)
            skipped = missed - index
            if skipped > 0:
                log.warning(
                    "job overran job=%s took_s=%.2f interval_s=%g skipped=%d",
                    self.name,
                    finished - started,
                    self.interval_s,
                    skipped,
                )
                with self.stats._lock:
                    self.stats.skipped += skipped
            index = missed + 1
            slot = next_slot


class ScheduleConfig(Section):
    """How often things happen. Fractions of a second are allowed (tests run fast)."""

    sensor_interval_s: float = setting(30.0, "sensor sampling period", gt=0)
    snapshot_interval_s: float = setting(900.0, "camera snapshot period (each camera)", gt=0)
    status_interval_s: float = setting(300.0, "retained status message period", gt=0)
