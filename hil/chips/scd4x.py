"""Byte-level simulator of a Sensirion SCD4x CO2 sensor (SCD40/SCD41).

Modelled from the datasheet: idle vs periodic measurement (in periodic mode the chip NACKs every
command but four), a new sample every 5 s of clock time after start, data-ready status cleared by
reading, the chip busy (NACKing) for each command's execution time, user settings in RAM with
persist/reinit through a simulated EEPROM, forced recalibration and self test.

Temperature: the sensor's element sits on a warm board. The chip reports the element temperature
minus the configured temperature offset, so with the default offset (4 degC, datasheet) matching
the default self-heating the reading equals the duct temperature, and a badly chosen offset shows
as a temperature error, as on a real installation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.clock import Clock
from hil.chips.base import EnvironmentSource
from hil.chips.sensirion import SimCommand, SimSensirionChip

MEASUREMENT_PERIOD_S = 5.0
DEFAULT_TEMPERATURE_OFFSET_C = 4.0
DEFAULT_SELF_HEATING_C = 4.0
DATA_READY = 0x8006
"""A get_data_ready_status answer with data waiting (the upper bits are not part of the flag)."""
DATA_NOT_READY = 0x8000
FRC_FAILED = 0xFFFF
FRC_OFFSET = 0x8000
SELF_TEST_MALFUNCTION = 0x0001
CO2_MAX_PPM = 40_000

# Datasheet: the only commands executable during periodic measurement.
READ_MEASUREMENT = 0xEC05
STOP_PERIODIC_MEASUREMENT = 0x3F86
GET_DATA_READY_STATUS = 0xE4B8
SET_AMBIENT_PRESSURE = 0xE000
ALLOWED_WHILE_MEASURING = frozenset(
    {READ_MEASUREMENT, STOP_PERIODIC_MEASUREMENT, GET_DATA_READY_STATUS, SET_AMBIENT_PRESSURE}
)


@dataclass
class UserSettings:
    """The user settings the chip keeps in RAM and can persist to EEPROM."""

    temperature_offset_word: int
    altitude_m: int = 0
    co2_offset_ppm: float = 0.0


def _offset_to_word(offset_c: float) -> int:
    return round(offset_c * 65535.0 / 175.0)


class SimSCD4x(SimSensirionChip):
    """A simulated SCD4x.

    ``faults.stuck_not_ready``: data-ready never set, read_measurement NACKed. ``malfunction``
    makes the self test report a failure. ``self_heating_c`` is how much warmer than the duct the
    sensing element is.
    """

    def __init__(
        self,
        env: EnvironmentSource,
        clock: Clock,
        address: int = 0x62,
        serial: int = 0x0E5A_7B3C_9D01,
    ) -> None:
        super().__init__(address, env, clock)
        if not 0 <= serial < 1 << 48:
            raise ValueError("SCD4x serial numbers are 48 bits")
        self.serial = serial
        self.self_heating_c = DEFAULT_SELF_HEATING_C
        self.malfunction = False
        self.ambient_pressure_pa: float | None = None
        self._eeprom = UserSettings(_offset_to_word(DEFAULT_TEMPERATURE_OFFSET_C))
        self.settings = UserSettings(**vars(self._eeprom))
        self.measuring = False
        self._started_at = 0.0
        self._samples_read = 0
        self._has_measured = False
        self.commands = {
            0x21B1: SimCommand(self._start_periodic),
            READ_MEASUREMENT: SimCommand(self._read_measurement, 0.001),
            STOP_PERIODIC_MEASUREMENT: SimCommand(self._stop_periodic, 0.5),
            GET_DATA_READY_STATUS: SimCommand(self._data_ready_status, 0.001),
            0x241D: SimCommand(self._set_temperature_offset, 0.001, args=1),
            0x2318: SimCommand(self._get_temperature_offset, 0.001),
            0x2427: SimCommand(self._set_altitude, 0.001, args=1),
            0x2322: SimCommand(self._get_altitude, 0.001),
            SET_AMBIENT_PRESSURE: SimCommand(self._set_ambient_pressure, 0.001, args=1),
            0x362F: SimCommand(self._forced_recalibration, 0.4, args=1),
            0x3639: SimCommand(self._self_test, 10.0),
            0x3682: SimCommand(self._serial_number, 0.001),
            0x3646: SimCommand(self._reinit, 0.02),
            0x3615: SimCommand(self._persist_settings, 0.8),
        }

    def accepts(self, code: int) -> bool:
        if self.clock.monotonic() < self._ready_at:
            return False  # still executing the previous command
        if self.measuring and code not in ALLOWED_WHILE_MEASURING:
            return False
        return super().accepts(code)

    # -- periodic measurement -----------------------------------------------------------------
    def _samples_taken(self) -> int:
        if not self.measuring:
            return self._samples_read
        return math.floor((self.clock.monotonic() - self._started_at) / MEASUREMENT_PERIOD_S)

    def _data_waiting(self) -> bool:
        return (
            self.measuring
            and not self.faults.stuck_not_ready
            and self._samples_taken() > self._samples_read
        )

    def _start_periodic(self, args: list[int]) -> None:
        self.measuring = True
        self._started_at = self.clock.monotonic()
        self._samples_read = 0

    def _stop_periodic(self, args: list[int]) -> None:
        if self.measuring and self._samples_taken() > 0:
            self._has_measured = True
        self.measuring = False

    def _data_ready_status(self, args: list[int]) -> Sequence[int]:
        return [DATA_READY if self._data_waiting() else DATA_NOT_READY]

    def _read_measurement(self, args: list[int]) -> Sequence[int] | None:
        if not self._data_waiting():
            return None  # datasheet: no data in the buffer -> the read header is NACKed
        self._samples_read = self._samples_taken()
        self._has_measured = True
        env = self.sense()
        co2 = min(CO2_MAX_PPM, max(0, round(env.co2_ppm + self.settings.co2_offset_ppm)))
        offset_c = 175.0 * self.settings.temperature_offset_word / 65535.0
        temperature_c = env.temperature_c + self.self_heating_c - offset_c
        raw_t = min(0xFFFF, max(0, round((temperature_c + 45.0) * 65535.0 / 175.0)))
        raw_rh = min(0xFFFF, max(0, round(env.humidity_rh * 65535.0 / 100.0)))
        return [co2, raw_t, raw_rh]

    # -- settings -----------------------------------------------------------------------------
    def _set_temperature_offset(self, args: list[int]) -> None:
        self.settings.temperature_offset_word = args[0]

    def _get_temperature_offset(self, args: list[int]) -> Sequence[int]:
        return [self.settings.temperature_offset_word]

    def _set_altitude(self, args: list[int]) -> None:
        self.settings.altitude_m = args[0]

    def _get_altitude(self, args: list[int]) -> Sequence[int]:
        return [self.settings.altitude_m]

    def _set_ambient_pressure(self, args: list[int]) -> None:
        self.ambient_pressure_pa = args[0] * 100.0

    def _persist_settings(self, args: list[int]) -> None:
        self._eeprom = UserSettings(**vars(self.settings))

    def _reinit(self, args: list[int]) -> None:
        self.settings = UserSettings(**vars(self._eeprom))

    # -- calibration and diagnostics ----------------------------------------------------------
    def _forced_recalibration(self, args: list[int]) -> Sequence[int]:
        if not self._has_measured:
            return [FRC_FAILED]  # never measured since power-up: nothing to calibrate against
        reading = self.sense().co2_ppm + self.settings.co2_offset_ppm
        correction = round(args[0] - reading)
        self.settings.co2_offset_ppm += correction
        return [min(0xFFFE, max(0, correction + FRC_OFFSET))]

    def _self_test(self, args: list[int]) -> Sequence[int]:
        return [SELF_TEST_MALFUNCTION if self.malfunction else 0]

    def _serial_number(self, args: list[int]) -> Sequence[int]:
        return [(self.serial >> 32) & 0xFFFF, (self.serial >> 16) & 0xFFFF, self.serial & 0xFFFF]
