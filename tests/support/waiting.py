"""The one way a test waits for something that happens in another thread or process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, poll_s: float = 0.02) -> T:
    """Call ``condition`` until it returns something truthy and return that.

    Fails the test with ``what`` after ``timeout`` seconds: a wait is always bounded, and a
    failure says what never happened. ``poll_s`` is the pause between two calls (make it longer
    when a call is expensive, e.g. a CLI process). Prefer waiting on an event or a condition
    variable where the code offers one; this is for state that can only be polled.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(poll_s)
