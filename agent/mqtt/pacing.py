"""A publish-rate cap for the drain: AWS IoT Core takes at most 100 publishes a second on one
connection and throttles (then disconnects) a client that sends more."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateCap"]

_BURST_S = 0.1
"""Tokens kept at most: a tenth of a second's worth, so the rate holds over any 1 s window."""


class RateCap:
    """Token bucket; ``per_second <= 0`` means no cap. Used by the sender thread only."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self._clock = clock
        self._capacity = max(1.0, per_second * _BURST_S)
        self._tokens = self._capacity
        self._at = clock()

    def available(self) -> int:
        """How many publishes may go now (a large number when uncapped)."""
        if self.per_second <= 0:
            return 1 << 30
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        return int(self._tokens)

    def spend(self, count: int) -> None:
        if self.per_second > 0:
            self._tokens -= count

    def wait_s(self) -> float:
        """Seconds until the next publish may go (0 when one may go now)."""
        if self.per_second <= 0 or self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / self.per_second
