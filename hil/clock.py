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
