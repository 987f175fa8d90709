"""Clocks for the simulated board (both satisfy :class:`drivers.clock.Clock`)."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Virtual time for tests: ``sleep`` advances it instantly, nothing really waits."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)


class AcceleratedClock:
    """Real time run ``speed`` times faster: a day of duct life in a few minutes for the demo."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


class WallClock:
    """The simulated board's wall clock: real time plus an offset that can jump (an NTP step).

    A board that boots without a real-time clock sets its time when NTP answers, an hour or a
    day at once; :meth:`jump` does that to a running agent (``remotair sim`` and the soak
    scenarios' ``clock_jump`` fault). Only wall time moves: the monotonic clock is untouched.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return time.time() + self._offset

    @property
    def offset_s(self) -> float:
        with self._lock:
            return self._offset

    def jump(self, seconds: float) -> float:
        """Step the clock by ``seconds`` (negative: back); returns the offset from real time."""
        with self._lock:
            self._offset += seconds
            return self._offset
