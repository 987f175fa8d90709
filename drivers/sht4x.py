"""Sensirion SHT4x (SHT40/41/43/45) temperature and humidity sensor on I2C (default 0x44).

The SHT4x has no measuring state: every reading is one command (one byte), a wait of the
measurement time, and a 6-byte read of two CRC-protected words. Datasheet: "SHT4x Datasheet",
section 4 (command table, timings) and 4.6 (conversion of the signal output).
"""

from __future__ import annotations

import logging
from typing import Literal

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import DeviceAbsentError, NotReadyError
from drivers.i2c import I2CBus
from drivers.measurement import Measurement
from drivers.sensirion import Command, SensirionDevice

log = logging.getLogger(__name__)

Precision = Literal["high", "medium", "low"]

DEFAULT_ADDRESS = 0x44
"""SHT4x-A parts; SHT4x-B answers at 0x45 and SHT4x-C at 0x46."""

# Datasheet table 7: one-byte commands. Waits are the datasheet's maximum durations, rounded up.
MEASURE: dict[Precision, Command] = {
    "high": Command("measure_high_precision", 0xFD, 0.010, response_words=2, code_bytes=1),
    "medium": Command("measure_medium_precision", 0xF6, 0.005, response_words=2, code_bytes=1),
    "low": Command("measure_low_precision", 0xE0, 0.002, response_words=2, code_bytes=1),
}
READ_SERIAL = Command("read_serial_number", 0x89, 0.010, response_words=2, code_bytes=1)
SOFT_RESET = Command("soft_reset", 0x94, 0.001, code_bytes=1)


def temperature_from_raw(word: int) -> float:
    """Datasheet 4.6: T = -45 + 175 * S_T / (2^16 - 1), in degrees Celsius."""
    return -45.0 + 175.0 * word / 65535.0


def humidity_from_raw(word: int) -> float:
    """Datasheet 4.6: RH = -6 + 125 * S_RH / (2^16 - 1), cropped to the physical 0..100 %RH."""
    return min(100.0, max(0.0, -6.0 + 125.0 * word / 65535.0))


class SHT4x:
    """One SHT4x chip. ``precision`` picks the repeatability/duration trade-off of a reading."""

    chip = "sht4x"

    def __init__(
        self,
        bus: I2CBus,
        address: int = DEFAULT_ADDRESS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        precision: Precision = "high",
    ) -> None:
        if precision not in MEASURE:
            raise ValueError(f"precision must be one of {sorted(MEASURE)}, got {precision!r}")
        self.address = address
        self.precision: Precision = precision
        self._device = SensirionDevice(bus, address, sensor=self.chip, clock=clock)

    def start(self) -> None:
        """Prove the chip is there and is an SHT4x by reading its serial number."""
        serial = self.serial_number()
        log.info("sht4x started address=0x%02x serial=0x%08x", self.address, serial)

    def read(self) -> Measurement:
        """Measure once and return temperature and relative humidity.

        The chip NACKs its read header until the measurement is done; a chip that acknowledged
        the command but still withholds the result after the datasheet's maximum time (and the
        bus retries) raises :class:`NotReadyError`.
        """
        command = MEASURE[self.precision]
        self._device.send(command)
        try:
            raw_t, raw_rh = self._device.read_words(command.response_words)
        except DeviceAbsentError as exc:
            raise NotReadyError(
                f"acknowledged {command.name} but withheld the result after "
                f"{command.wait_s * 1000:.0f} ms and retries",
                sensor=self.chip,
                address=self.address,
            ) from exc
        return Measurement(
            temperature_c=temperature_from_raw(raw_t), humidity_rh=humidity_from_raw(raw_rh)
        )

    def stop(self) -> None:
        """Nothing to stop: the SHT4x idles between single-shot measurements."""

    def serial_number(self) -> int:
        """The chip's 32-bit serial number (two words, most significant first)."""
        high, low = self._device.query(READ_SERIAL)
        return (high << 16) | low

    def soft_reset(self) -> None:
        """Reset the chip's state machine (1 ms); the heater and any pending result are cleared."""
        self._device.send(SOFT_RESET)
