"""Byte-level simulator of a Sensirion SHT4x (one-byte commands, two-word responses).

Behaviour modelled from the datasheet: the chip is busy for the measurement duration and NACKs
its address meanwhile (read header and new commands alike); a result can be read once; the values
are quantised to 16 bits with the inverse of the datasheet's conversion formulas.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.clock import Clock
from hil.chips.base import EnvironmentSource
from hil.chips.sensirion import SimCommand, SimSensirionChip

# Maximum measurement durations, datasheet table 5 (the driver's waits must cover them).
HIGH_PRECISION_S = 0.0083
MEDIUM_PRECISION_S = 0.0045
LOW_PRECISION_S = 0.0016
SOFT_RESET_S = 0.001


def temperature_to_raw(temperature_c: float) -> int:
    """Inverse of T = -45 + 175 * S / 65535, saturated to the 16-bit output."""
    return _clamp_word((temperature_c + 45.0) * 65535.0 / 175.0)


def humidity_to_raw(humidity_rh: float) -> int:
    """Inverse of RH = -6 + 125 * S / 65535 (the chip itself can report beyond 0..100)."""
    return _clamp_word((humidity_rh + 6.0) * 65535.0 / 125.0)


def _clamp_word(value: float) -> int:
    return min(0xFFFF, max(0, round(value)))


class SimSHT4x(SimSensirionChip):
    """A simulated SHT4x. ``faults.stuck_not_ready`` makes it NACK every result read."""

    code_bytes = 1

    def __init__(
        self,
        env: EnvironmentSource,
        clock: Clock,
        address: int = 0x44,
        serial: int = 0x0BADCAFE,
    ) -> None:
        super().__init__(address, env, clock)
        if not 0 <= serial <= 0xFFFF_FFFF:
            raise ValueError("SHT4x serial numbers are 32 bits")
        self.serial = serial
        self.commands = {
            0xFD: SimCommand(self._measure, HIGH_PRECISION_S),
            0xF6: SimCommand(self._measure, MEDIUM_PRECISION_S),
            0xE0: SimCommand(self._measure, LOW_PRECISION_S),
            0x89: SimCommand(self._serial_number),
            0x94: SimCommand(self._soft_reset, SOFT_RESET_S),
        }

    def accepts(self, code: int) -> bool:
        # Busy measuring or resetting: the chip does not acknowledge its address.
        return self.clock.monotonic() >= self._ready_at and super().accepts(code)

    def _measure(self, args: list[int]) -> Sequence[int] | None:
        if self.faults.stuck_not_ready:
            return None  # the result never comes: every read header is NACKed
        env = self.sense()
        return [temperature_to_raw(env.temperature_c), humidity_to_raw(env.humidity_rh)]

    def _serial_number(self, args: list[int]) -> Sequence[int]:
        return [self.serial >> 16, self.serial & 0xFFFF]

    def _soft_reset(self, args: list[int]) -> None:
        return None  # a new command already dropped any pending result
