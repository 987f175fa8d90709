"""Shared parts of the chip simulators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from drivers.clock import Clock
from hil.faults import ChipFaults
from hil.world import Environment

EnvironmentSource = Callable[[], Environment]


class SimChip:
    """A simulated chip: sees the world through ``env`` and applies its own faults (drift)."""

    def __init__(self, address: int, env: EnvironmentSource, clock: Clock) -> None:
        self.address = address
        self.env = env
        self.clock = clock
        self.faults = ChipFaults()

    def sense(self) -> Environment:
        """What this chip's sensing element sees now: the world plus any injected drift."""
        env = self.env()
        if self.faults.drift:
            env = replace(
                env,
                **{k: getattr(env, k) + v for k, v in self.faults.drift.items() if hasattr(env, k)},
            )
        return env
