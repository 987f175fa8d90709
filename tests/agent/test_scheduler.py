"""Periodic jobs: fixed slots, overruns skip instead of piling up, a failing job keeps going.

The schedule runs on virtual time: the job's ``wait`` advances a :class:`SimClock` and an action
"takes" time by advancing it too, so every count below is exact and no test waits for real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.scheduler import PeriodicJob
from hil.clock import SimClock


class VirtualTime:
    """A job's clock and its wait: waiting moves the clock on; the job stops at ``until``."""

    def __init__(self, until: float, start: float = 1000.0) -> None:
        self.clock = SimClock(start)
        self.start = start
        self.until = start + until

    def wait(self, seconds: float) -> bool:
        now = self.clock.monotonic()
        self.clock.advance(min(seconds, max(0.0, self.until - now)))
        return self.clock.monotonic() >= self.until

    def now(self) -> float:
        """Seconds since the start."""
        return self.clock.monotonic() - self.start


def run_job(
    interval: float,
    action: Callable[[VirtualTime], None],
    *,
    until: float,
    first_delay: float = 0.0,
) -> PeriodicJob:
    """Run a job in this thread on virtual time until ``until`` seconds have passed."""
    time = VirtualTime(until)
    job = PeriodicJob(
        "t",
        interval,
        lambda: action(time),
        stop=threading.Event(),
        first_delay_s=first_delay,
        monotonic=time.clock.monotonic,
        wait=time.wait,
    )
    job.run()
    return job


def test_next_slot_is_on_the_grid_and_counts_missed_slots() -> None:
    j = PeriodicJob("t", 10.0, lambda: None, stop=threading.Event())
    assert j.next_slot(100.0, 100.0) == (110.0, 0)
    assert j.next_slot(100.0, 109.9) == (110.0, 0)
    assert j.next_slot(100.0, 135.0) == (140.0, 3)  # slots 110, 120, 130 were missed


def test_runs_on_the_grid_without_drift() -> None:
    starts: list[float] = []

    def sample(time: VirtualTime) -> None:
        starts.append(time.now())
        time.clock.advance(1.3)  # a round takes time; the next slot does not move

    job = run_job(30.0, sample, until=300.0)
    assert starts == [30.0 * k for k in range(10)]
    assert (job.stats.runs, job.stats.skipped, job.stats.failures) == (10, 0, 0)


def test_first_delay_shifts_the_grid() -> None:
    starts: list[float] = []
    run_job(10.0, lambda time: starts.append(time.now()), until=30.0, first_delay=5.0)
    assert starts == [5.0, 15.0, 25.0]


def test_overrun_skips_missed_slots_instead_of_catching_up() -> None:
    starts: list[float] = []

    def slow(time: VirtualTime) -> None:
        starts.append(time.now())
        time.clock.advance(25.0)  # two and a half intervals

    job = run_job(10.0, slow, until=100.0)
    # Each run misses the two slots it overran and starts again on the grid; catching up would
    # have started the missed runs back to back at 25, 50, 75...
    assert starts == [0.0, 30.0, 60.0, 90.0]
    assert (job.stats.runs, job.stats.skipped) == (4, 8)
    assert job.stats.last_finished is not None


def test_a_failing_action_is_counted_and_the_job_lives_on() -> None:
    calls: list[float] = []

    def boom(time: VirtualTime) -> None:
        calls.append(time.now())
        raise RuntimeError("sensor exploded")

    job = run_job(2.0, boom, until=10.0)
    assert calls == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert (job.stats.failures, job.stats.runs) == (5, 0)
    assert job.stats.last_error == "RuntimeError: sensor exploded"


def test_a_good_run_clears_the_last_error() -> None:
    def flaky(time: VirtualTime) -> None:
        if time.now() < 1.0:
            raise OSError("bus timeout")

    job = run_job(1.0, flaky, until=3.0)
    assert (job.stats.failures, job.stats.runs, job.stats.last_error) == (1, 2, None)


def test_stop_interrupts_the_wait_of_the_real_thread() -> None:
    stop = threading.Event()
    job = PeriodicJob("long", 3600.0, lambda: None, stop=stop, first_delay_s=3600.0)
    job.start()
    stop.set()
    assert job.join(5.0), "the job's thread ends as soon as it is stopped, not after an hour"
    assert job.stats.runs == 0
