"""Periodic jobs: fixed slots, overruns skip instead of piling up, a failing job keeps going."""

from __future__ import annotations

import threading
import time

from agent.scheduler import PeriodicJob


def job(interval: float, action: object = lambda: None) -> PeriodicJob:
    return PeriodicJob("t", interval, action, stop=threading.Event())  # type: ignore[arg-type]


def test_next_slot_is_on_the_grid_and_counts_missed_slots() -> None:
    j = job(10.0)
    assert j.next_slot(100.0, 100.0) == (110.0, 0)
    assert j.next_slot(100.0, 109.9) == (110.0, 0)
    assert j.next_slot(100.0, 135.0) == (140.0, 3)  # slots 110, 120, 130 were missed


def test_runs_on_schedule_without_drift() -> None:
    stop = threading.Event()
    starts: list[float] = []
    j = PeriodicJob("fast", 0.05, lambda: starts.append(time.monotonic()), stop=stop)
    j.start()
    time.sleep(0.6)
    stop.set()
    assert j.join(2.0)
    assert len(starts) >= 6
    # Slots sit on origin + k * interval: the k-th start is never later than k intervals plus
    # scheduling noise, however long the test runs (no accumulated drift).
    origin = starts[0]
    for k, t in enumerate(starts):
        assert t - origin < k * 0.05 + 0.2


def test_overrun_skips_missed_slots_instead_of_catching_up() -> None:
    stop = threading.Event()
    j = PeriodicJob("slow", 0.05, lambda: time.sleep(0.18), stop=stop)
    j.start()
    time.sleep(0.8)
    stop.set()
    assert j.join(2.0)
    assert j.stats.skipped >= 3
    assert j.stats.runs <= 6  # back-to-back catch-up would have run more often


def test_a_failing_action_is_counted_and_the_job_lives_on() -> None:
    stop = threading.Event()
    calls = []

    def boom() -> None:
        calls.append(1)
        raise RuntimeError("sensor exploded")

    j = PeriodicJob("boom", 0.02, boom, stop=stop)
    j.start()
    time.sleep(0.2)
    stop.set()
    assert j.join(2.0)
    assert j.stats.failures == len(calls) >= 3
    assert j.stats.last_error == "RuntimeError: sensor exploded"


def test_stop_interrupts_the_wait_at_once() -> None:
    stop = threading.Event()
    j = PeriodicJob("long", 3600.0, lambda: None, stop=stop, first_delay_s=3600.0)
    j.start()
    began = time.monotonic()
    stop.set()
    assert j.join(2.0)
    assert time.monotonic() - began < 1.0
    assert j.stats.runs == 0
