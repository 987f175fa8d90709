"""Time as the drivers see it: injectable so that the simulated board can run faster than life."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What a driver needs of time: a monotonic reading and a way to wait."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time: the clock of a real board."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
