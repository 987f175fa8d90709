"""Byte-level simulator of the Sensirion SCD30 CO2 module (I2C, address 0x61).

What it models, from the interface description:

- continuous measurement as a persistent state (it survives a soft reset), re-triggerable while
  measuring (a new trigger, or a new interval, restarts the sample timer);
- a new sample every ``interval`` seconds of clock time; data-ready (0x0202) answers 1 while an
  unread sample waits; reading a sample (0x0300) consumes it;
- values as three big-endian IEEE-754 floats, two CRC-framed words each;
- setter/getter pairs sharing one id (0x4600, 0x5306, 0x5204, 0x5403, 0x5102): with an argument
  word the command sets, without one it reads back;
- temperature offset (0.01 K, subtracted from the temperature), forced recalibration (the CO2
  offset that makes the current reading equal the reference, so it also cancels injected drift),
  automatic self-calibration flag and altitude (stored and read back; they do not change the
  simulated values), firmware version, soft reset (the module NACKs while it boots).

Faults: ``stuck_not_ready`` (data-ready never turns 1), ``corrupt_crc`` and ``drift`` (keys
``co2_ppm``, ``temperature_c``, ``humidity_rh``) through the base classes; ``absent``,
``nack_next`` and ``timeout`` are applied by the bus.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from drivers.clock import Clock
from hil.bus import nack
from hil.chips.base import EnvironmentSource
from hil.chips.sensirion import SimCommand, SimSensirionChip

READ_EXEC_S = 0.003
"""The chip needs 3 ms between a command and the read of its answer."""
BOOT_S = 1.5
"""Soft reset: the module is silent while it boots (specified < 2 s)."""
FIRMWARE_VERSION = (3, 66)


def float_words(value: float) -> list[int]:
    """A float as the SCD30 sends it: big-endian IEEE-754, split into two 16-bit words."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


class SimSCD30(SimSensirionChip):
    """A simulated SCD30. It starts idle with a 2 s interval, like a module fresh from the box."""

    def __init__(self, env: EnvironmentSource, clock: Clock, address: int = 0x61) -> None:
        super().__init__(address, env, clock)
        self.measuring = False
        self.interval_s = 2
        self.ambient_pressure_mbar = 0
        self.asc_enabled = False
        self.temperature_offset_centi_k = 0
        self.altitude_m = 0
        self.frc_reference_ppm = 400
        self.co2_offset_ppm = 0.0
        self.firmware_version = FIRMWARE_VERSION
        self._sampling_since = 0.0
        self._samples_read = 0
        self._booting_until = -math.inf
        self.commands = {
            0x0010: SimCommand(self._trigger, args=1),
            0x0104: SimCommand(self._stop),
            0x4600: SimCommand(self._set_interval, args=1),
            0x0202: SimCommand(self._data_ready, READ_EXEC_S),
            0x0300: SimCommand(self._read_measurement, READ_EXEC_S),
            0x5306: SimCommand(self._set_asc, args=1),
            0x5204: SimCommand(self._set_frc, args=1),
            0x5403: SimCommand(self._set_temperature_offset, args=1),
            0x5102: SimCommand(self._set_altitude, args=1),
            0xD100: SimCommand(self._firmware, READ_EXEC_S),
            0xD304: SimCommand(self._soft_reset),
        }
        self.getters: dict[int, SimCommand] = {
            0x4600: SimCommand(lambda _: [self.interval_s], READ_EXEC_S),
            0x5306: SimCommand(lambda _: [int(self.asc_enabled)], READ_EXEC_S),
            0x5204: SimCommand(lambda _: [self.frc_reference_ppm], READ_EXEC_S),
            0x5403: SimCommand(lambda _: [self.temperature_offset_centi_k], READ_EXEC_S),
            0x5102: SimCommand(lambda _: [self.altitude_m], READ_EXEC_S),
        }
        """Commands that read a setting back when sent without their argument word."""

    # -- transport -------------------------------------------------------------------------
    def accepts(self, code: int) -> bool:
        return self.clock.monotonic() >= self._booting_until and super().accepts(code)

    def write(self, data: bytes) -> None:
        code = int.from_bytes(data[: self.code_bytes], "big")
        getter = self.getters.get(code)
        if len(data) == self.code_bytes and getter is not None and self.accepts(code):
            self.received.append(code)
            words = getter.handler([])
            self._response = None if words is None else self.frame(words)
            self._ready_at = self.clock.monotonic() + getter.exec_s
            return
        super().write(data)

    def read(self, length: int) -> bytes:
        if self.clock.monotonic() < self._booting_until:
            raise nack(self.address)
        return super().read(length)

    # -- measurement state -----------------------------------------------------------------
    def _samples_taken(self) -> int:
        if not self.measuring:
            return 0
        elapsed = self.clock.monotonic() - self._sampling_since
        return max(0, math.floor(elapsed / self.interval_s))

    def _restart_sampling(self) -> None:
        self._sampling_since = max(self.clock.monotonic(), self._booting_until)
        self._samples_read = 0

    def data_ready(self) -> bool:
        """Whether an unread sample waits (what 0x0202 answers)."""
        return not self.faults.stuck_not_ready and self._samples_taken() > self._samples_read

    def measurement(self) -> tuple[float, float, float]:
        """What the chip would report now: CO2 ppm, temperature degC, RH %."""
        env = self.sense()
        return (
            env.co2_ppm + self.co2_offset_ppm,
            env.temperature_c - self.temperature_offset_centi_k / 100.0,
            env.humidity_rh,
        )

    # -- command handlers ------------------------------------------------------------------
    def _trigger(self, args: list[int]) -> None:
        pressure = args[0]
        if pressure != 0 and not 700 <= pressure <= 1400:
            return None  # out of range: the module ignores the command
        self.ambient_pressure_mbar = pressure
        self.measuring = True
        self._restart_sampling()
        return None

    def _stop(self, _: list[int]) -> None:
        self.measuring = False
        return None

    def _set_interval(self, args: list[int]) -> None:
        if 2 <= args[0] <= 1800:
            self.interval_s = args[0]
            self._restart_sampling()
        return None

    def _data_ready(self, _: list[int]) -> Sequence[int]:
        return [int(self.data_ready())]

    def _read_measurement(self, _: list[int]) -> Sequence[int] | None:
        if not self.data_ready():
            return None  # nothing buffered: the read header is NACKed
        self._samples_read = self._samples_taken()
        co2, temperature, humidity = self.measurement()
        return [*float_words(co2), *float_words(temperature), *float_words(humidity)]

    def _set_asc(self, args: list[int]) -> None:
        self.asc_enabled = args[0] == 1
        return None

    def _set_frc(self, args: list[int]) -> None:
        if 400 <= args[0] <= 2000:
            self.frc_reference_ppm = args[0]
            self.co2_offset_ppm = args[0] - self.sense().co2_ppm
        return None

    def _set_temperature_offset(self, args: list[int]) -> None:
        self.temperature_offset_centi_k = args[0]
        return None

    def _set_altitude(self, args: list[int]) -> None:
        self.altitude_m = args[0]
        return None

    def _firmware(self, _: list[int]) -> Sequence[int]:
        major, minor = self.firmware_version
        return [major << 8 | minor]

    def _soft_reset(self, _: list[int]) -> None:
        # Settings and the measuring state live in the module's flash and survive the reset.
        self._booting_until = self.clock.monotonic() + BOOT_S
        self._restart_sampling()
        return None
