"""Bosch BME280 (temperature, pressure, humidity) and BMP280 (no humidity) over I2C.

Follows the Bosch BME280 datasheet (BST-BME280-DS002): register map (section 5.3), trimming
parameter read-out (section 4.2.2, including the packed 12-bit dig_H4/dig_H5), forced mode
(section 3.3.3), measurement time (appendix 9.1, the *maximum* formula) and the double-precision
compensation formulas (section 8.1). A BMP280 (chip id 0x58) has the same temperature/pressure
registers and formulas but no humidity: it is accepted and reports ``humidity_rh=None``.

The chip is used in forced mode: one measurement per :meth:`BME280.read`, read out in one burst so
that temperature, pressure and humidity belong to the same conversion (datasheet section 4: "burst
read ... to guarantee data consistency").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import DeviceAbsentError, NotReadyError, SensorError
from drivers.i2c import I2CBus, with_retries
from drivers.measurement import Measurement

log = logging.getLogger(__name__)

CHIP_ID_BME280 = 0x60
CHIP_ID_BMP280 = 0x58
MODELS = {CHIP_ID_BME280: "bme280", CHIP_ID_BMP280: "bmp280"}

# Register map (datasheet table 18).
REG_CALIB_TP = 0x88  # 0x88..0x9F dig_T1..dig_P9, 0xA0 reserved, 0xA1 dig_H1
CALIB_TP_LENGTH = 26
REG_CHIP_ID = 0xD0
REG_RESET = 0xE0
RESET_COMMAND = 0xB6
REG_CALIB_H = 0xE1  # 0xE1..0xE7 dig_H2..dig_H6
CALIB_H_LENGTH = 7
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
STATUS_MEASURING = 0x08
STATUS_IM_UPDATE = 0x01
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7  # press_msb .. hum_lsb
DATA_LENGTH_BME280 = 8
DATA_LENGTH_BMP280 = 6

MODE_SLEEP = 0b00
MODE_FORCED = 0b01

# A data register that reads 0x80000 (20-bit) / 0x8000 (16-bit) holds no measurement: the quantity
# was skipped (oversampling 0) or never converted (datasheet section 3.4 and 5.4.7-5.4.9).
SKIPPED_ADC_20BIT = 0x80000
SKIPPED_ADC_16BIT = 0x8000

OVERSAMPLING_CODES = {0: 0b000, 1: 0b001, 2: 0b010, 4: 0b011, 8: 0b100, 16: 0b101}
"""Oversampling factor -> osrs_x field value (0 = skip the quantity)."""
IIR_FILTER_CODES = {0: 0b000, 2: 0b001, 4: 0b010, 8: 0b011, 16: 0b100}
"""IIR filter coefficient -> config.filter field value (0 = filter off)."""

# Datasheet section 1 / 5.4.2: start-up time 2 ms; the NVM copy after a soft reset is of that order.
NVM_COPY_WAIT_S = 0.002
NVM_COPY_TIMEOUT_S = 0.050
STATUS_POLL_S = 0.001
MEASUREMENT_GRACE_S = 0.010


@dataclass(frozen=True, slots=True)
class HumidityCalibration:
    """The humidity trimming parameters dig_H1..dig_H6 (BME280 only)."""

    dig_h1: int
    dig_h2: int
    dig_h3: int
    dig_h4: int
    dig_h5: int
    dig_h6: int


@dataclass(frozen=True, slots=True)
class Calibration:
    """The factory trimming parameters of one chip (datasheet table 16)."""

    dig_t1: int
    dig_t2: int
    dig_t3: int
    dig_p1: int
    dig_p2: int
    dig_p3: int
    dig_p4: int
    dig_p5: int
    dig_p6: int
    dig_p7: int
    dig_p8: int
    dig_p9: int
    humidity: HumidityCalibration | None = None


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little", signed=False)


def _s16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little", signed=True)


def _s8(value: int) -> int:
    return value - 0x100 if value & 0x80 else value


def parse_calibration(tp_block: bytes, h_block: bytes | None = None) -> Calibration:
    """Decode the trimming registers: ``tp_block`` is 0x88..0xA1 (26 bytes), ``h_block`` is
    0xE1..0xE7 (7 bytes; None for a BMP280)."""
    if len(tp_block) != CALIB_TP_LENGTH:
        raise ValueError(f"calibration block 0x88..0xA1 must be 26 bytes, got {len(tp_block)}")
    humidity = None
    if h_block is not None:
        if len(h_block) != CALIB_H_LENGTH:
            raise ValueError(f"calibration block 0xE1..0xE7 must be 7 bytes, got {len(h_block)}")
        e4, e5, e6 = h_block[3], h_block[4], h_block[5]
        humidity = HumidityCalibration(
            dig_h1=tp_block[0xA1 - REG_CALIB_TP],
            dig_h2=_s16(h_block, 0),
            dig_h3=h_block[2],
            # dig_H4 = 0xE4[7:0] as bits 11:4 (signed), 0xE5[3:0] as bits 3:0.
            dig_h4=(_s8(e4) << 4) | (e5 & 0x0F),
            # dig_H5 = 0xE6[7:0] as bits 11:4 (signed), 0xE5[7:4] as bits 3:0.
            dig_h5=(_s8(e6) << 4) | (e5 >> 4),
            dig_h6=_s8(h_block[6]),
        )
    return Calibration(
        dig_t1=_u16(tp_block, 0),
        dig_t2=_s16(tp_block, 2),
        dig_t3=_s16(tp_block, 4),
        dig_p1=_u16(tp_block, 6),
        dig_p2=_s16(tp_block, 8),
        dig_p3=_s16(tp_block, 10),
        dig_p4=_s16(tp_block, 12),
        dig_p5=_s16(tp_block, 14),
        dig_p6=_s16(tp_block, 16),
        dig_p7=_s16(tp_block, 18),
        dig_p8=_s16(tp_block, 20),
        dig_p9=_s16(tp_block, 22),
        humidity=humidity,
    )


def compensate_temperature(adc_t: int, cal: Calibration) -> tuple[float, float]:
    """Datasheet 8.1 (double): returns (temperature in degC, t_fine for P and H)."""
    var1 = (adc_t / 16384.0 - cal.dig_t1 / 1024.0) * cal.dig_t2
    delta = adc_t / 131072.0 - cal.dig_t1 / 8192.0
    var2 = delta * delta * cal.dig_t3
    t_fine = var1 + var2
    return t_fine / 5120.0, t_fine


def compensate_pressure(adc_p: int, t_fine: float, cal: Calibration) -> float:
    """Datasheet 8.1 (double): pressure in Pa. Raises ``ValueError`` for an all-zero dig_P1
    (the datasheet returns 0 there; we refuse to make a value up)."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal.dig_p6 / 32768.0
    var2 = var2 + var1 * cal.dig_p5 * 2.0
    var2 = var2 / 4.0 + cal.dig_p4 * 65536.0
    var1 = (cal.dig_p3 * var1 * var1 / 524288.0 + cal.dig_p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.dig_p1
    if var1 == 0.0:
        raise ValueError("pressure compensation divides by zero (dig_P1 = 0: bad trimming data)")
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.dig_p9 * p * p / 2147483648.0
    var2 = p * cal.dig_p8 / 32768.0
    return p + (var1 + var2 + cal.dig_p7) / 16.0


def compensate_humidity(adc_h: int, t_fine: float, cal: HumidityCalibration) -> float:
    """Datasheet 8.1 (double): relative humidity in %, clamped to 0..100 as the datasheet does."""
    h = t_fine - 76800.0
    h = (adc_h - (cal.dig_h4 * 64.0 + cal.dig_h5 / 16384.0 * h)) * (
        cal.dig_h2
        / 65536.0
        * (1.0 + cal.dig_h6 / 67108864.0 * h * (1.0 + cal.dig_h3 / 67108864.0 * h))
    )
    h = h * (1.0 - cal.dig_h1 * h / 524288.0)
    return min(100.0, max(0.0, h))


def measurement_time_max_s(osrs_t: int, osrs_p: int, osrs_h: int) -> float:
    """Maximum forced-mode conversion time (datasheet appendix 9.1) for oversampling factors."""
    ms = 1.25
    if osrs_t:
        ms += 2.3 * osrs_t
    if osrs_p:
        ms += 2.3 * osrs_p + 0.575
    if osrs_h:
        ms += 2.3 * osrs_h + 0.575
    return ms / 1000.0


class BME280:
    """A BME280 (or BMP280) in forced mode.

    ``oversampling`` gives the factors for (temperature, pressure, humidity), each one of
    0 (skip), 1, 2, 4, 8, 16; temperature cannot be skipped because pressure and humidity are
    compensated with it. ``iir_filter`` is the IIR coefficient (0 = off, 2, 4, 8, 16): off suits
    forced mode at a slow sampling rate, where the filter would only add lag.
    """

    chip = "bme280"

    def __init__(
        self,
        bus: I2CBus,
        address: int = 0x76,
        *,
        clock: Clock = SYSTEM_CLOCK,
        oversampling: tuple[int, int, int] = (1, 4, 1),
        iir_filter: int = 0,
    ) -> None:
        osrs_t, osrs_p, osrs_h = oversampling
        for name, factor in zip(("temperature", "pressure", "humidity"), oversampling, strict=True):
            if factor not in OVERSAMPLING_CODES:
                raise ValueError(
                    f"{name} oversampling must be one of {sorted(OVERSAMPLING_CODES)}, got {factor}"
                )
        if osrs_t == 0:
            raise ValueError("temperature oversampling cannot be 0: P and H compensation need it")
        if iir_filter not in IIR_FILTER_CODES:
            raise ValueError(
                f"iir_filter must be one of {sorted(IIR_FILTER_CODES)}, got {iir_filter}"
            )
        self.bus = bus
        self.address = address
        self.clock = clock
        self.oversampling = (osrs_t, osrs_p, osrs_h)
        self.iir_filter = iir_filter
        self.model: str | None = None
        """``"bme280"`` or ``"bmp280"`` once :meth:`start` has read the chip id."""
        self.calibration: Calibration | None = None

    # -- bus access -------------------------------------------------------------------------------
    @property
    def _name(self) -> str:
        return self.model or self.chip

    def _read(self, register: int, length: int) -> bytes:
        return bytes(
            with_retries(
                lambda: self.bus.read_i2c_block_data(self.address, register, length),
                sensor=self._name,
                address=self.address,
                clock=self.clock,
            )
        )

    def _write(self, register: int, value: int) -> None:
        with_retries(
            lambda: self.bus.write_byte_data(self.address, register, value),
            sensor=self._name,
            address=self.address,
            clock=self.clock,
        )

    # -- Sensor protocol --------------------------------------------------------------------------
    @property
    def has_humidity(self) -> bool:
        return self.model == "bme280"

    def _ctrl_meas(self, mode: int) -> int:
        osrs_t, osrs_p, _ = self.oversampling
        return OVERSAMPLING_CODES[osrs_t] << 5 | OVERSAMPLING_CODES[osrs_p] << 2 | mode

    def start(self) -> None:
        """Check the chip id, soft-reset, read the trimming parameters, write the settings."""
        chip_id = self._read(REG_CHIP_ID, 1)[0]
        if chip_id not in MODELS:
            raise DeviceAbsentError(
                f"chip id 0x{chip_id:02x} at register 0xd0 is neither a BME280 (0x60) nor a"
                " BMP280 (0x58): another chip answers at this address",
                sensor=self.chip,
                address=self.address,
            )
        self.model = MODELS[chip_id]
        self._write(REG_RESET, RESET_COMMAND)
        self._wait_nvm_copy()
        tp_block = self._read(REG_CALIB_TP, CALIB_TP_LENGTH)
        h_block = self._read(REG_CALIB_H, CALIB_H_LENGTH) if self.has_humidity else None
        self.calibration = parse_calibration(tp_block, h_block)
        self._write_settings(MODE_SLEEP)
        log.info(
            "bosch sensor started model=%s address=0x%02x chip_id=0x%02x oversampling=%s iir=%d",
            self.model,
            self.address,
            chip_id,
            "/".join(f"x{f}" for f in self.oversampling),
            self.iir_filter,
        )

    def _write_settings(self, mode: int) -> None:
        """config, ctrl_hum, then ctrl_meas with ``mode``.

        Written before every measurement, not only at start: a chip that browned out and reset
        itself would otherwise measure with oversampling "skipped" and the filter off. config is
        only reliably written in sleep mode (5.4.6), where forced mode always leaves the chip;
        ctrl_hum only takes effect with the ctrl_meas write that follows it (5.4.3).
        """
        self._write(REG_CONFIG, IIR_FILTER_CODES[self.iir_filter] << 2)
        if self.has_humidity:
            self._write(REG_CTRL_HUM, OVERSAMPLING_CODES[self.oversampling[2]])
        self._write(REG_CTRL_MEAS, self._ctrl_meas(mode))

    def _wait_nvm_copy(self) -> None:
        self.clock.sleep(NVM_COPY_WAIT_S)
        deadline = self.clock.monotonic() + NVM_COPY_TIMEOUT_S
        while self._read(REG_STATUS, 1)[0] & STATUS_IM_UPDATE:
            if self.clock.monotonic() >= deadline:
                raise NotReadyError(
                    f"NVM copy after soft reset still running after {NVM_COPY_TIMEOUT_S * 1000:.0f}"
                    " ms (status im_update stuck)",
                    sensor=self._name,
                    address=self.address,
                )
            self.clock.sleep(STATUS_POLL_S)

    @property
    def measurement_time_s(self) -> float:
        """The datasheet's maximum conversion time for the configured oversampling."""
        osrs_t, osrs_p, osrs_h = self.oversampling
        return measurement_time_max_s(osrs_t, osrs_p, osrs_h if self.has_humidity else 0)

    def read(self) -> Measurement:
        """Trigger one forced measurement, wait for it, read and compensate it."""
        if self.calibration is None:
            self.start()
        assert self.calibration is not None
        self._write_settings(MODE_FORCED)
        started = self.clock.monotonic()
        self.clock.sleep(self.measurement_time_s)
        deadline = started + 2 * self.measurement_time_s + MEASUREMENT_GRACE_S
        while self._read(REG_STATUS, 1)[0] & STATUS_MEASURING:
            if self.clock.monotonic() >= deadline:
                raise NotReadyError(
                    f"still measuring {(self.clock.monotonic() - started) * 1000:.1f} ms after a"
                    f" forced measurement (datasheet maximum {self.measurement_time_s * 1000:.2f}"
                    " ms)",
                    sensor=self._name,
                    address=self.address,
                )
            self.clock.sleep(STATUS_POLL_S)
        length = DATA_LENGTH_BME280 if self.has_humidity else DATA_LENGTH_BMP280
        return self._convert(self._read(REG_DATA, length), self.calibration)

    def _convert(self, raw: bytes, cal: Calibration) -> Measurement:
        adc_p = raw[0] << 12 | raw[1] << 4 | raw[2] >> 4
        adc_t = raw[3] << 12 | raw[4] << 4 | raw[5] >> 4
        _, osrs_p, osrs_h = self.oversampling
        if adc_t == SKIPPED_ADC_20BIT:
            raise NotReadyError(
                "temperature register holds the 'skipped' value 0x80000: no conversion happened",
                sensor=self._name,
                address=self.address,
            )
        temperature_c, t_fine = compensate_temperature(adc_t, cal)
        pressure_pa = None
        if osrs_p:
            if adc_p == SKIPPED_ADC_20BIT:
                raise NotReadyError(
                    "pressure register holds the 'skipped' value 0x80000 although pressure"
                    " oversampling is on",
                    sensor=self._name,
                    address=self.address,
                )
            try:
                pressure_pa = compensate_pressure(adc_p, t_fine, cal)
            except ValueError as exc:
                raise SensorError(str(exc), sensor=self._name, address=self.address) from exc
        humidity_rh = None
        if cal.humidity is not None and osrs_h:
            adc_h = raw[6] << 8 | raw[7]
            if adc_h == SKIPPED_ADC_16BIT:
                raise NotReadyError(
                    "humidity register holds the 'skipped' value 0x8000 although humidity"
                    " oversampling is on",
                    sensor=self._name,
                    address=self.address,
                )
            humidity_rh = compensate_humidity(adc_h, t_fine, cal.humidity)
        return Measurement(
            temperature_c=temperature_c, pressure_pa=pressure_pa, humidity_rh=humidity_rh
        )

    def stop(self) -> None:
        """Put the chip to sleep (forced mode already returns there after each measurement)."""
        if self.calibration is not None:
            self._write(REG_CTRL_MEAS, self._ctrl_meas(MODE_SLEEP))
