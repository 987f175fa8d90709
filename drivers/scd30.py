"""Sensirion SCD30 NDIR CO2, temperature and humidity module on I2C (address 0x61).

Follows the Sensirion "Interface Description SCD30 Sensor Module" (I2C part):

- Commands are 16 bit, optionally followed by one CRC-protected argument word; every response
  word carries a CRC. Several ids double as setter (with an argument) and getter (without).
- The chip does not support a repeated START: a command is one write transaction, its answer a
  separate read transaction, and the master must wait at least 3 ms between the two (the
  ``wait_s`` of the read commands below).
- Continuous measurement is a persistent state: the module keeps measuring across power cycles
  and accepts a new trigger (for instance with a new ambient pressure) while it measures, so
  :meth:`SCD30.start` needs no stop first, unlike the SCD4x.
- A measurement is three big-endian IEEE-754 floats (CO2 ppm, temperature degC, RH %), each
  sent as two CRC-checked words.

Raspberry Pi caveat: the SCD30 stretches the I2C clock (up to 30 ms in a normal frame, up to
150 ms once a day during its internal calibration) and allows at most 100 kHz (Sensirion
recommends 50 kHz or less). The Pi's BCM2835-family I2C controller mishandles clock stretching
(a known erratum), and its kernel driver aborts a transfer stretched beyond about 35 ms. It
shows as CRC errors, shifted bytes or EREMOTEIO/ETIMEDOUT. Lower the bus clock
(``dtparam=i2c_arm_baudrate=10000`` in ``/boot/firmware/config.txt``), or put the SCD30 on a
bit-banged bus (``dtoverlay=i2c-gpio``), which waits for SCL to be released.
"""

from __future__ import annotations

import logging
import math
import struct

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import NotReadyError, ProtocolError
from drivers.i2c import I2CBus
from drivers.measurement import Measurement
from drivers.sensirion import Command, SensirionDevice

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x61

# Interface description, section "Sensor commands". Read commands wait the 3 ms the chip needs
# between the command write and the read; write-only commands wait 20 ms, as Sensirion's own
# driver does, so that the next transfer does not land in the chip's command processing.
_READ_WAIT_S = 0.003
_WRITE_WAIT_S = 0.020
TRIGGER_CONTINUOUS_MEASUREMENT = Command("trigger_continuous_measurement", 0x0010, _WRITE_WAIT_S)
STOP_CONTINUOUS_MEASUREMENT = Command("stop_continuous_measurement", 0x0104, _WRITE_WAIT_S)
SET_MEASUREMENT_INTERVAL = Command("set_measurement_interval", 0x4600, _WRITE_WAIT_S)
GET_MEASUREMENT_INTERVAL = Command("get_measurement_interval", 0x4600, _READ_WAIT_S, 1)
GET_DATA_READY = Command("get_data_ready", 0x0202, _READ_WAIT_S, 1)
READ_MEASUREMENT = Command("read_measurement", 0x0300, _READ_WAIT_S, 6)
SET_AUTOMATIC_SELF_CALIBRATION = Command("set_asc", 0x5306, _WRITE_WAIT_S)
GET_AUTOMATIC_SELF_CALIBRATION = Command("get_asc", 0x5306, _READ_WAIT_S, 1)
SET_FORCED_RECALIBRATION = Command("set_forced_recalibration", 0x5204, _WRITE_WAIT_S)
GET_FORCED_RECALIBRATION = Command("get_forced_recalibration", 0x5204, _READ_WAIT_S, 1)
SET_TEMPERATURE_OFFSET = Command("set_temperature_offset", 0x5403, _WRITE_WAIT_S)
GET_TEMPERATURE_OFFSET = Command("get_temperature_offset", 0x5403, _READ_WAIT_S, 1)
SET_ALTITUDE = Command("set_altitude_compensation", 0x5102, _WRITE_WAIT_S)
GET_ALTITUDE = Command("get_altitude_compensation", 0x5102, _READ_WAIT_S, 1)
READ_FIRMWARE_VERSION = Command("read_firmware_version", 0xD100, _READ_WAIT_S, 1)
SOFT_RESET = Command("soft_reset", 0xD304, 2.0)
"""The module reboots; boot-up time is specified as < 2 s."""

COMMANDS: tuple[Command, ...] = (
    TRIGGER_CONTINUOUS_MEASUREMENT,
    STOP_CONTINUOUS_MEASUREMENT,
    SET_MEASUREMENT_INTERVAL,
    GET_MEASUREMENT_INTERVAL,
    GET_DATA_READY,
    READ_MEASUREMENT,
    SET_AUTOMATIC_SELF_CALIBRATION,
    GET_AUTOMATIC_SELF_CALIBRATION,
    SET_FORCED_RECALIBRATION,
    GET_FORCED_RECALIBRATION,
    SET_TEMPERATURE_OFFSET,
    GET_TEMPERATURE_OFFSET,
    SET_ALTITUDE,
    GET_ALTITUDE,
    READ_FIRMWARE_VERSION,
    SOFT_RESET,
)

INTERVAL_RANGE_S = (2, 1800)
AMBIENT_PRESSURE_RANGE_MBAR = (700, 1400)
"""0 switches pressure compensation off (the chip then assumes 1013.25 mbar)."""
FORCED_RECALIBRATION_RANGE_PPM = (400, 2000)
DATA_READY_POLL_S = 0.1
READ_MARGIN_S = 1.0
"""Added to one interval when waiting for data-ready: the chip's clock tolerance and the bus."""


def _check_ambient_pressure(mbar: int) -> int:
    low, high = AMBIENT_PRESSURE_RANGE_MBAR
    if mbar != 0 and not low <= mbar <= high:
        raise ValueError(f"ambient pressure must be 0 (off) or {low}..{high} mbar, got {mbar}")
    return mbar


def decode_float(high: int, low: int) -> float:
    """One measurement value: two 16-bit words forming a big-endian IEEE-754 float."""
    value: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    return value


class SCD30:
    """The SCD30 in continuous measurement, one sample every ``interval_s`` seconds.

    ``ambient_pressure_mbar`` (0 = off, else 700..1400) compensates the CO2 reading for the
    air pressure, which matters most for a board far above sea level.
    """

    chip = "scd30"

    def __init__(
        self,
        bus: I2CBus,
        address: int = DEFAULT_ADDRESS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        interval_s: int = 2,
        ambient_pressure_mbar: int = 0,
        temperature_offset_c: float | None = None,
        altitude_m: int | None = None,
    ) -> None:
        low, high = INTERVAL_RANGE_S
        if not low <= interval_s <= high:
            raise ValueError(f"interval must be {low}..{high} s, got {interval_s}")
        self.address = address
        self.clock = clock
        self.interval_s = interval_s
        self.ambient_pressure_mbar = _check_ambient_pressure(ambient_pressure_mbar)
        self.temperature_offset_c = temperature_offset_c
        self.altitude_m = altitude_m
        self._device = SensirionDevice(bus, address, sensor=self.chip, clock=clock)

    # -- Sensor protocol --------------------------------------------------------------------
    def start(self) -> None:
        """Identify the chip, set the interval and (re)trigger continuous measurement.

        The interval, the temperature offset and the altitude live in the chip's non-volatile
        memory, so each is written only when it differs from what is wanted. Re-triggering while
        the chip already measures is allowed by the interface description, so an agent restart
        needs no stop first.
        """
        major, minor = self.firmware_version()
        current = self.measurement_interval()
        if current != self.interval_s:
            self._device.send(SET_MEASUREMENT_INTERVAL, [self.interval_s])
        offset = self.temperature_offset_c
        if offset is not None and abs(self.temperature_offset() - offset) >= 0.005:
            self.set_temperature_offset(offset)
        if self.altitude_m is not None and self.altitude() != self.altitude_m:
            self.set_altitude(self.altitude_m)
        self._device.send(TRIGGER_CONTINUOUS_MEASUREMENT, [self.ambient_pressure_mbar])
        log.info(
            "scd30 started address=0x%02x firmware=%d.%d interval_s=%d pressure_mbar=%d",
            self.address,
            major,
            minor,
            self.interval_s,
            self.ambient_pressure_mbar,
        )

    def read(self) -> Measurement:
        """Wait (at most one interval plus a margin) for data-ready, then read the sample."""
        deadline = self.clock.monotonic() + self.interval_s + READ_MARGIN_S
        while not self.data_ready():
            if self.clock.monotonic() >= deadline:
                raise NotReadyError(
                    f"no new measurement within {self.interval_s + READ_MARGIN_S:.1f} s"
                    " (is continuous measurement running?)",
                    sensor=self.chip,
                    address=self.address,
                )
            self.clock.sleep(DATA_READY_POLL_S)
        words = self._device.query(READ_MEASUREMENT)
        co2, temperature, humidity = (decode_float(words[i], words[i + 1]) for i in (0, 2, 4))
        for name, value in (("co2", co2), ("temperature", temperature), ("humidity", humidity)):
            if not math.isfinite(value):
                raise ProtocolError(
                    f"{name} is not a number ({value}) in {[f'0x{w:04x}' for w in words]}",
                    sensor=self.chip,
                    address=self.address,
                )
        return Measurement(co2_ppm=co2, temperature_c=temperature, humidity_rh=humidity)

    def stop(self) -> None:
        """Stop continuous measurement (the chip remembers this across power cycles)."""
        self._device.send(STOP_CONTINUOUS_MEASUREMENT)

    @property
    def sample_period_s(self) -> float:
        """Continuous measurement makes one sample every measurement interval."""
        return float(self.interval_s)

    # -- the rest of the command set ---------------------------------------------------------
    def data_ready(self) -> bool:
        """True when a measurement is waiting in the chip's buffer."""
        return self._device.query(GET_DATA_READY)[0] == 1

    def firmware_version(self) -> tuple[int, int]:
        """(major, minor) of the module firmware."""
        word = self._device.query(READ_FIRMWARE_VERSION)[0]
        return word >> 8, word & 0xFF

    def measurement_interval(self) -> int:
        """The interval in seconds the chip is configured with."""
        return self._device.query(GET_MEASUREMENT_INTERVAL)[0]

    def set_ambient_pressure(self, mbar: int) -> None:
        """Re-trigger continuous measurement with a new ambient pressure (0 = off)."""
        self.ambient_pressure_mbar = _check_ambient_pressure(mbar)
        self._device.send(TRIGGER_CONTINUOUS_MEASUREMENT, [mbar])

    def forced_recalibration(self, ppm: int) -> None:
        """Tell the chip the true CO2 concentration it sees now (a reference gas or fresh air).

        The interface description asks for at least 2 minutes of continuous measurement in a
        stable environment before this command.
        """
        low, high = FORCED_RECALIBRATION_RANGE_PPM
        if not low <= ppm <= high:
            raise ValueError(f"forced recalibration reference must be {low}..{high} ppm")
        self._device.send(SET_FORCED_RECALIBRATION, [ppm])
        log.info("scd30 forced recalibration address=0x%02x reference_ppm=%d", self.address, ppm)

    def forced_recalibration_value(self) -> int:
        """The reference (ppm) of the last forced recalibration."""
        return self._device.query(GET_FORCED_RECALIBRATION)[0]

    def set_automatic_self_calibration(self, enabled: bool) -> None:
        """Switch automatic self-calibration (needs fresh air an hour a day for 7 days) on/off."""
        self._device.send(SET_AUTOMATIC_SELF_CALIBRATION, [int(enabled)])

    def automatic_self_calibration(self) -> bool:
        return self._device.query(GET_AUTOMATIC_SELF_CALIBRATION)[0] == 1

    def set_temperature_offset(self, kelvin: float) -> None:
        """Offset the chip subtracts from its temperature (self-heating), in 0.01 K steps."""
        hundredths = round(kelvin * 100)
        if not 0 <= hundredths <= 0xFFFF:
            raise ValueError(f"temperature offset must be 0..655.35 K, got {kelvin}")
        self._device.send(SET_TEMPERATURE_OFFSET, [hundredths])

    def temperature_offset(self) -> float:
        """The temperature offset in kelvin."""
        return self._device.query(GET_TEMPERATURE_OFFSET)[0] / 100.0

    def set_altitude(self, metres: int) -> None:
        """Altitude compensation (ignored by the chip while an ambient pressure is set)."""
        if not 0 <= metres <= 0xFFFF:
            raise ValueError(f"altitude must be 0..65535 m, got {metres}")
        self._device.send(SET_ALTITUDE, [metres])

    def altitude(self) -> int:
        return self._device.query(GET_ALTITUDE)[0]

    def soft_reset(self) -> None:
        """Reboot the module (waits its boot-up time); settings in its flash survive."""
        self._device.send(SOFT_RESET)
