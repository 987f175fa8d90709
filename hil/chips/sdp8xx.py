"""Byte-level simulators of the Sensirion SDP8xx (0x25) and SDP3x (0x21) differential pressure
sensors.

What they model, from the datasheets:

- *idle* vs *continuous* mode. Idle takes every command; continuous mode NACKs every command but
  stop (0x3FF9), and after stop the chip NACKs everything for 500 us;
- the four continuous-mode start commands (0x3603, 0x3608, 0x3615, 0x361E). Averaging makes no
  difference here (the world is smooth at the scale of a read), nor does the mass-flow variant
  of the temperature compensation;
- in continuous mode, plain reads (no command) return differential pressure, temperature and the
  scale factor, three CRC-framed words, fresh on every read; the first sample is ready
  :data:`FIRST_SAMPLE_S` after the start command and reads before that are NACKed;
- differential pressure quantised as ``round(Pa * scale_factor)``, saturating at the int16
  limits like the chip; temperature as ``round(degC * 200)``;
- product identifier: 0x367C then 0xE102, six words (32-bit product number, 64-bit serial).

The pressure is the world's ``filter_dp_pa`` (the filter the sensor sits across). Faults:
``drift`` uses the key ``"filter_dp_pa"`` (and ``"temperature_c"``); ``stuck_not_ready`` keeps
the chip NACKing reads in continuous mode (it never produces its first sample); ``corrupt_crc``
corrupts a response; ``absent``/``nack_next``/``timeout`` are applied by the bus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from drivers.clock import Clock
from hil.bus import nack
from hil.chips.base import EnvironmentSource
from hil.chips.sensirion import SimCommand, SimSensirionChip

STOP = 0x3FF9
START_COMMANDS = (0x3603, 0x3608, 0x3615, 0x361E)
PREPARE_PRODUCT_IDENTIFIER = 0x367C
READ_PRODUCT_IDENTIFIER = 0xE102
FIRST_SAMPLE_S = 0.008
STOP_RECOVERY_S = 0.0005
INT16_MIN, INT16_MAX = -0x8000, 0x7FFF
TEMPERATURE_SCALE = 200


def int16_word(value: int) -> int:
    """A signed value, clamped to int16 the way the chip saturates, as a 16-bit word."""
    return max(INT16_MIN, min(INT16_MAX, value)) & 0xFFFF


class SimSDP8xx(SimSensirionChip):
    """A simulated SDP8xx. Defaults: an SDP810-500Pa (product 0x03020A01, scale factor 60)."""

    def __init__(
        self,
        env: EnvironmentSource,
        clock: Clock,
        address: int = 0x25,
        scale_factor: int = 60,
        product: int = 0x03020A01,
    ) -> None:
        super().__init__(address, env, clock)
        self.scale_factor = scale_factor
        self.product = product
        self.serial = 0x5D80_0000_0000_0000 | address
        self.first_sample_s = FIRST_SAMPLE_S
        self.continuous = False
        self._sampling_from = 0.0
        self._busy_until = -math.inf
        self._identifier_prepared = False
        self.commands = {
            STOP: SimCommand(self._stop),
            PREPARE_PRODUCT_IDENTIFIER: SimCommand(self._prepare_identifier),
            READ_PRODUCT_IDENTIFIER: SimCommand(self._read_identifier),
            **{code: SimCommand(self._start) for code in START_COMMANDS},
        }

    # -- transport -------------------------------------------------------------------------
    def accepts(self, code: int) -> bool:
        if self.clock.monotonic() < self._busy_until:
            return False
        if self.continuous and code != STOP:
            return False
        return super().accepts(code)

    def write(self, data: bytes) -> None:
        super().write(data)
        code = int.from_bytes(data[: self.code_bytes], "big")
        if code != PREPARE_PRODUCT_IDENTIFIER:
            self._identifier_prepared = False

    def read(self, length: int) -> bytes:
        if not self.continuous:
            return super().read(length)
        if self.faults.stuck_not_ready or self.clock.monotonic() < self._sampling_from:
            raise nack(self.address)
        data = self.frame(self.sample_words())
        return data[:length] + b"\xff" * (length - len(data))

    # -- measurement -----------------------------------------------------------------------
    def sample_words(self) -> list[int]:
        """Differential pressure, temperature and scale factor, as the chip encodes them."""
        env = self.sense()
        raw_dp = round(env.filter_dp_pa * self.scale_factor)
        raw_t = round(env.temperature_c * TEMPERATURE_SCALE)
        return [int16_word(raw_dp), int16_word(raw_t), int16_word(self.scale_factor)]

    # -- command handlers ------------------------------------------------------------------
    def _start(self, _: list[int]) -> None:
        self.continuous = True
        self._sampling_from = self.clock.monotonic() + self.first_sample_s
        return None

    def _stop(self, _: list[int]) -> None:
        self.continuous = False
        self._busy_until = self.clock.monotonic() + STOP_RECOVERY_S
        return None

    def _prepare_identifier(self, _: list[int]) -> None:
        self._identifier_prepared = True
        return None

    def _read_identifier(self, _: list[int]) -> Sequence[int] | None:
        if not self._identifier_prepared:
            return None  # 0xE102 without 0x367C first: nothing to read
        serial = [(self.serial >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]
        return [self.product >> 16, self.product & 0xFFFF, *serial]


class SimSDP3x(SimSDP8xx):
    """A simulated SDP3x. Defaults: an SDP31 (product 0x03010188, scale factor 60) at 0x21."""

    def __init__(
        self,
        env: EnvironmentSource,
        clock: Clock,
        address: int = 0x21,
        scale_factor: int = 60,
        product: int = 0x03010188,
    ) -> None:
        super().__init__(env, clock, address, scale_factor, product)
