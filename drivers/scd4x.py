"""Sensirion SCD4x (SCD40/SCD41) photoacoustic CO2 sensor on I2C (address 0x62).

The chip has two states. In *idle* it takes every command. In *periodic measurement* it makes a
new sample every 5 s and NACKs every command except read_measurement, get_data_ready_status,
stop_periodic_measurement and set_ambient_pressure (datasheet, command table, column "executable
during periodic measurement"). An agent restart does not power-cycle the sensor, so the driver
never assumes the chip is idle: :meth:`SCD4x.start` always begins with stop_periodic_measurement,
which both states accept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import NotReadyError, SensorError
from drivers.i2c import I2CBus
from drivers.measurement import Measurement
from drivers.sensirion import Command, SensirionDevice

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x62

# Datasheet command table (two-byte ids, execution times as specified).
START_PERIODIC_MEASUREMENT = Command("start_periodic_measurement", 0x21B1, 0.0)
READ_MEASUREMENT = Command("read_measurement", 0xEC05, 0.001, response_words=3)
STOP_PERIODIC_MEASUREMENT = Command("stop_periodic_measurement", 0x3F86, 0.500)
GET_DATA_READY_STATUS = Command("get_data_ready_status", 0xE4B8, 0.001, response_words=1)
SET_TEMPERATURE_OFFSET = Command("set_temperature_offset", 0x241D, 0.001)
GET_TEMPERATURE_OFFSET = Command("get_temperature_offset", 0x2318, 0.001, response_words=1)
SET_SENSOR_ALTITUDE = Command("set_sensor_altitude", 0x2427, 0.001)
GET_SENSOR_ALTITUDE = Command("get_sensor_altitude", 0x2322, 0.001, response_words=1)
SET_AMBIENT_PRESSURE = Command("set_ambient_pressure", 0xE000, 0.001)
PERFORM_FORCED_RECALIBRATION = Command(
    "perform_forced_recalibration", 0x362F, 0.400, response_words=1
)
PERFORM_SELF_TEST = Command("perform_self_test", 0x3639, 10.0, response_words=1)
GET_SERIAL_NUMBER = Command("get_serial_number", 0x3682, 0.001, response_words=3)
REINIT = Command("reinit", 0x3646, 0.020)
PERSIST_SETTINGS = Command("persist_settings", 0x3615, 0.800)

COMMANDS: tuple[Command, ...] = (
    START_PERIODIC_MEASUREMENT,
    READ_MEASUREMENT,
    STOP_PERIODIC_MEASUREMENT,
    GET_DATA_READY_STATUS,
    SET_TEMPERATURE_OFFSET,
    GET_TEMPERATURE_OFFSET,
    SET_SENSOR_ALTITUDE,
    GET_SENSOR_ALTITUDE,
    SET_AMBIENT_PRESSURE,
    PERFORM_FORCED_RECALIBRATION,
    PERFORM_SELF_TEST,
    GET_SERIAL_NUMBER,
    REINIT,
    PERSIST_SETTINGS,
)
ALLOWED_WHILE_MEASURING = frozenset(
    c.code
    for c in (
        READ_MEASUREMENT,
        GET_DATA_READY_STATUS,
        STOP_PERIODIC_MEASUREMENT,
        SET_AMBIENT_PRESSURE,
    )
)
"""Command ids the chip acknowledges during periodic measurement; it NACKs all others."""

MEASUREMENT_PERIOD_S = 5.0
READ_TIMEOUT_S = MEASUREMENT_PERIOD_S + 1.0
"""One period plus margin for the chip's clock tolerance and the bus."""
DATA_READY_POLL_S = 0.25
DATA_READY_MASK = 0x07FF
"""get_data_ready_status: data is ready when any of the 11 least significant bits is set."""
FRC_FAILED = 0xFFFF
FRC_OFFSET = 0x8000

# Datasheet recommended/valid ranges for the compensation settings.
TEMPERATURE_OFFSET_RANGE_C = (0.0, 20.0)
ALTITUDE_RANGE_M = (0, 3000)
AMBIENT_PRESSURE_RANGE_PA = (70_000.0, 120_000.0)
CO2_OUTPUT_RANGE_PPM = (0, 40_000)


def temperature_from_raw(word: int) -> float:
    """T = -45 + 175 * word / (2^16 - 1), degrees Celsius."""
    return -45.0 + 175.0 * word / 65535.0


def humidity_from_raw(word: int) -> float:
    """RH = 100 * word / (2^16 - 1), percent."""
    return 100.0 * word / 65535.0


def temperature_offset_to_raw(offset_c: float) -> int:
    """word = offset * (2^16 - 1) / 175 (datasheet example: 5.4 degC -> 0x07E6)."""
    return round(offset_c * 65535.0 / 175.0)


def temperature_offset_from_raw(word: int) -> float:
    return 175.0 * word / 65535.0


class SCD4x:
    """One SCD4x chip in periodic measurement mode (one sample every 5 s).

    ``temperature_offset_c`` and ``altitude_m``, when given, are written at every :meth:`start`
    (to RAM only: see :meth:`persist_settings`). The temperature offset compensates the heat of
    the device around the sensor; the chip subtracts it from its temperature reading and corrects
    the humidity accordingly.
    """

    chip = "scd4x"

    def __init__(
        self,
        bus: I2CBus,
        address: int = DEFAULT_ADDRESS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        temperature_offset_c: float | None = None,
        altitude_m: int | None = None,
    ) -> None:
        if temperature_offset_c is not None:
            _check_range("temperature_offset_c", temperature_offset_c, TEMPERATURE_OFFSET_RANGE_C)
        if altitude_m is not None:
            _check_range("altitude_m", altitude_m, ALTITUDE_RANGE_M)
        self.address = address
        self.clock = clock
        self.temperature_offset_c = temperature_offset_c
        self.altitude_m = altitude_m
        self._device = SensirionDevice(bus, address, sensor=self.chip, clock=clock)
        self._measuring: bool | None = None
        """True/False once this driver has set the mode; None while the chip's state is unknown
        (a previous process may have left it measuring)."""

    # -- Sensor protocol ----------------------------------------------------------------------
    def start(self) -> None:
        """Bring the chip from whatever state it is in into periodic measurement.

        stop_periodic_measurement first (accepted in both states, 500 ms), then the serial number
        (proves an SCD4x answers), the configured compensation, then start_periodic_measurement.
        The first sample is ready 5 s later.
        """
        self._stop_periodic()
        serial = self._read_serial()
        if self.temperature_offset_c is not None:
            self._device.send(
                SET_TEMPERATURE_OFFSET, [temperature_offset_to_raw(self.temperature_offset_c)]
            )
        if self.altitude_m is not None:
            self._device.send(SET_SENSOR_ALTITUDE, [self.altitude_m])
        self._start_periodic()
        log.info(
            "scd4x started address=0x%02x serial=0x%012x temperature_offset_c=%s altitude_m=%s",
            self.address,
            serial,
            self.temperature_offset_c,
            self.altitude_m,
        )

    def read(self) -> Measurement:
        """The next sample: waits (polling data-ready) at most one measurement period plus margin.

        Raises :class:`NotReadyError` when no sample arrives in time, or at once when this driver
        stopped the measurement.
        """
        if self._measuring is False:
            raise NotReadyError(
                "periodic measurement is not running; call start()",
                sensor=self.chip,
                address=self.address,
            )
        deadline = self.clock.monotonic() + READ_TIMEOUT_S
        while not self.data_ready():
            if self.clock.monotonic() >= deadline:
                raise NotReadyError(
                    f"no new sample within {READ_TIMEOUT_S:.1f} s of periodic measurement",
                    sensor=self.chip,
                    address=self.address,
                )
            self.clock.sleep(DATA_READY_POLL_S)
        co2, raw_t, raw_rh = self._device.query(READ_MEASUREMENT)
        return Measurement(
            co2_ppm=float(co2),
            temperature_c=temperature_from_raw(raw_t),
            humidity_rh=humidity_from_raw(raw_rh),
        )

    def stop(self) -> None:
        """Stop periodic measurement (500 ms); the chip idles at about 0.2 mA."""
        self._stop_periodic()

    @property
    def sample_period_s(self) -> float:
        """Periodic measurement makes one sample every 5 s (datasheet 3.5.1)."""
        return MEASUREMENT_PERIOD_S

    # -- commands accepted while measuring ----------------------------------------------------
    def data_ready(self) -> bool:
        """Whether a sample is waiting to be read (accepted in both states)."""
        (status,) = self._device.query(GET_DATA_READY_STATUS)
        return bool(status & DATA_READY_MASK)

    def set_ambient_pressure(self, pressure_pa: float) -> None:
        """Compensate CO2 for the ambient pressure (overrides the altitude setting).

        Accepted during periodic measurement, so it never stops it: feed it from a barometer
        (a BME280 on the same board) as often as you like.
        """
        _check_range("pressure_pa", pressure_pa, AMBIENT_PRESSURE_RANGE_PA)
        self._device.send(SET_AMBIENT_PRESSURE, [round(pressure_pa / 100.0)])

    # -- commands that need the idle state ----------------------------------------------------
    def serial_number(self) -> int:
        """The 48-bit serial number.

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        with self._idle():
            return self._read_serial()

    def temperature_offset(self) -> float:
        """The temperature offset in use, degrees Celsius.

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        with self._idle():
            (word,) = self._device.query(GET_TEMPERATURE_OFFSET)
        return temperature_offset_from_raw(word)

    def set_temperature_offset(self, offset_c: float) -> None:
        """Set the temperature offset (RAM; see :meth:`persist_settings`).

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        _check_range("offset_c", offset_c, TEMPERATURE_OFFSET_RANGE_C)
        with self._idle():
            self._device.send(SET_TEMPERATURE_OFFSET, [temperature_offset_to_raw(offset_c)])
        self.temperature_offset_c = offset_c

    def sensor_altitude(self) -> int:
        """The altitude used for pressure compensation, metres above sea level.

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        with self._idle():
            (word,) = self._device.query(GET_SENSOR_ALTITUDE)
        return word

    def set_sensor_altitude(self, altitude_m: int) -> None:
        """Set the altitude (RAM; see :meth:`persist_settings`).

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        _check_range("altitude_m", altitude_m, ALTITUDE_RANGE_M)
        with self._idle():
            self._device.send(SET_SENSOR_ALTITUDE, [altitude_m])
        self.altitude_m = altitude_m

    def forced_recalibration(self, target_ppm: int) -> int:
        """Tell the chip the true CO2 concentration now; returns the correction it applied (ppm).

        Run the chip in periodic measurement for at least 3 minutes at a stable, known
        concentration first (datasheet). Needs idle: stops periodic measurement (500 ms), runs
        the recalibration (400 ms) and restarts measurement. Raises :class:`SensorError` when the
        chip reports failure (0xFFFF), typically because it had not measured long enough.
        """
        _check_range("target_ppm", target_ppm, CO2_OUTPUT_RANGE_PPM)
        with self._idle():
            (word,) = self._device.query(PERFORM_FORCED_RECALIBRATION, [target_ppm])
        if word == FRC_FAILED:
            raise SensorError(
                f"forced recalibration to {target_ppm} ppm failed (chip answered 0xffff); "
                "run periodic measurement for 3 minutes before recalibrating",
                sensor=self.chip,
                address=self.address,
            )
        correction = word - FRC_OFFSET
        log.info(
            "scd4x forced recalibration target_ppm=%d correction_ppm=%d", target_ppm, correction
        )
        return correction

    def self_test(self) -> bool:
        """Run the chip's self test (10 s); True when no malfunction was detected.

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        with self._idle():
            (word,) = self._device.query(PERFORM_SELF_TEST)
        if word:
            log.warning("scd4x self test failed address=0x%02x status=0x%04x", self.address, word)
        return word == 0

    def persist_settings(self) -> None:
        """Store offset, altitude and calibration settings in EEPROM (800 ms).

        The EEPROM endures about 2000 writes: call this once after configuration, not at every
        start. Needs idle: stops periodic measurement (500 ms) if it runs and restarts it
        afterwards.
        """
        with self._idle():
            self._device.send(PERSIST_SETTINGS)

    def reinit(self) -> None:
        """Reload the user settings from EEPROM (20 ms).

        Needs idle: stops periodic measurement (500 ms) if it runs and restarts it afterwards.
        """
        with self._idle():
            self._device.send(REINIT)

    # -- state handling -----------------------------------------------------------------------
    @contextmanager
    def _idle(self) -> Iterator[None]:
        """Run a block in idle and put the chip back into periodic measurement if it was.

        When this driver does not know the state yet, the chip is stopped to be safe and left
        idle. When the block fails the chip is left idle too; :meth:`start` recovers it.
        """
        was_measuring = self._measuring
        if was_measuring is not False:
            self._stop_periodic()
        yield
        if was_measuring:
            self._start_periodic()

    def _stop_periodic(self) -> None:
        self._device.send(STOP_PERIODIC_MEASUREMENT)
        self._measuring = False

    def _start_periodic(self) -> None:
        self._device.send(START_PERIODIC_MEASUREMENT)
        self._measuring = True

    def _read_serial(self) -> int:
        w0, w1, w2 = self._device.query(GET_SERIAL_NUMBER)
        return (w0 << 32) | (w1 << 16) | w2


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{name} must be within {low}..{high}, got {value}")
