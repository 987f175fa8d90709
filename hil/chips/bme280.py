"""A byte-level Bosch BME280 / BMP280: register file, soft reset, forced mode, trimming NVM.

The simulator turns the world's temperature, pressure and humidity into raw ADC counts by
inverting the datasheet's *integer* compensation (BME280 datasheet section 4.2.3, 32/64-bit
fixed-point) with a bisection on the ADC value. The drivers use the double-precision formulas, so
the two sides are written independently and agree only if both follow the datasheet.

What the silicon does and this model does too:
- I2C writes are (register, value) pairs (datasheet 6.2.1); a write of a lone byte sets the
  register pointer, reads auto-increment from it.
- Writable: reset 0xE0 (0xB6 resets), ctrl_hum 0xF2, ctrl_meas 0xF4, config 0xF5. ctrl_hum is
  latched only by the next ctrl_meas write (5.4.3).
- After a soft reset status.im_update is set for the NVM copy (2 ms); data registers read as the
  "skipped" values 0x80000 / 0x8000 until a measurement has run.
- Forced mode: status.measuring is set for the typical conversion time of the latched
  oversampling, then the data registers hold a fresh conversion and the mode falls back to sleep.
  The IIR filter acts on temperature and pressure, not on humidity (3.4.4).
- Normal mode is modelled coarsely: every data read after the first conversion time sees fresh
  values (the drivers here use forced mode).

Faults: ``stuck_not_ready`` keeps status.measuring set forever; ``drift`` offsets what the element
senses (:meth:`SimChip.sense`); absent / NACK / timeout are applied by the bus. The BME280 has no
checksum on its registers, so ``corrupt_crc`` has no effect on this chip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.clock import Clock
from hil.chips.base import EnvironmentSource, SimChip

_REG_CHIP_ID = 0xD0
_REG_RESET = 0xE0
_REG_CTRL_HUM = 0xF2
_REG_STATUS = 0xF3
_REG_CTRL_MEAS = 0xF4
_REG_CONFIG = 0xF5
_REG_PRESS = 0xF7
_REG_TEMP = 0xFA
_REG_HUM = 0xFD

_NVM_COPY_S = 0.002
_OSRS_FACTOR = (0, 1, 2, 4, 8, 16, 16, 16)  # field value -> factor (101 and above: x16)
_FILTER_COEFF = (1, 2, 4, 8, 16, 16, 16, 16)  # field value -> coefficient (000: off)


@dataclass(frozen=True, slots=True)
class Trimming:
    """Factory trimming parameters burnt into the simulated NVM.

    Defaults: temperature and pressure are the BMP280 datasheet's worked example (section 3.12);
    the humidity values are typical of a production BME280.
    """

    t1: int = 27504
    t2: int = 26435
    t3: int = -1000
    p1: int = 36477
    p2: int = -10685
    p3: int = 3024
    p4: int = 2855
    p5: int = 140
    p6: int = -7
    p7: int = 15500
    p8: int = -14600
    p9: int = 6000
    h1: int = 75
    h2: int = 362
    h3: int = 0
    h4: int = 313
    h5: int = 50
    h6: int = 30

    def nvm_image(self) -> dict[int, int]:
        """Register address -> byte, as the chip lays the parameters out (datasheet table 16)."""
        image: dict[int, int] = {}

        def put16(register: int, value: int) -> None:
            raw = value & 0xFFFF
            image[register], image[register + 1] = raw & 0xFF, raw >> 8

        words = [self.t1, self.t2, self.t3, self.p1, self.p2, self.p3]
        words += [self.p4, self.p5, self.p6, self.p7, self.p8, self.p9]
        for i, value in enumerate(words):
            put16(0x88 + 2 * i, value)
        image[0xA0] = 0x00
        image[0xA1] = self.h1 & 0xFF
        put16(0xE1, self.h2)
        image[0xE3] = self.h3 & 0xFF
        h4, h5 = self.h4 & 0xFFF, self.h5 & 0xFFF
        image[0xE4] = h4 >> 4
        image[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        image[0xE6] = h5 >> 4
        image[0xE7] = self.h6 & 0xFF
        return image


# -- the datasheet's fixed-point compensation (section 4.2.3), used forwards to invert it ---------
def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def fine_temperature(adc_t: int, k: Trimming) -> int:
    """t_fine of BME280_compensate_T_int32 (temperature in degC = t_fine / 5120)."""
    var1 = (((adc_t >> 3) - (k.t1 << 1)) * k.t2) >> 11
    var2 = (((((adc_t >> 4) - k.t1) * ((adc_t >> 4) - k.t1)) >> 12) * k.t3) >> 14
    return var1 + var2


def pressure_q24_8(adc_p: int, t_fine: int, k: Trimming) -> int:
    """BME280_compensate_P_int64: pressure in Pa as Q24.8 (Pa * 256)."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * k.p6
    var2 = var2 + ((var1 * k.p5) << 17)
    var2 = var2 + (k.p4 << 35)
    var1 = ((var1 * var1 * k.p3) >> 8) + ((var1 * k.p2) << 12)
    var1 = (((1 << 47) + var1) * k.p1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _c_div(((p << 31) - var2) * 3125, var1)
    var1 = (k.p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (k.p8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (k.p7 << 4)


def humidity_q22_10(adc_h: int, t_fine: int, k: Trimming) -> int:
    """bme280_compensate_H_int32: relative humidity in % as Q22.10 (%RH * 1024)."""
    v = t_fine - 76800
    v = ((((adc_h << 14) - (k.h4 << 20) - (k.h5 * v)) + 16384) >> 15) * (
        ((((((v * k.h6) >> 10) * (((v * k.h3) >> 11) + 32768)) >> 10) + 2097152) * k.h2 + 8192)
        >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * k.h1) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


def _invert(f: Callable[[int], int], target: float, hi: int, *, increasing: bool) -> int:
    """The ADC value in [0, hi) whose ``f`` is closest to ``target`` (``f`` monotonic)."""
    lo_i, hi_i = 0, hi - 1
    while lo_i < hi_i:
        mid = (lo_i + hi_i) // 2
        below = f(mid) < target if increasing else f(mid) > target
        if below:
            lo_i = mid + 1
        else:
            hi_i = mid
    candidates = [c for c in (lo_i - 1, lo_i) if 0 <= c < hi]
    return min(candidates, key=lambda c: abs(f(c) - target))


class SimBME280(SimChip):
    """A BME280 (``chip_id=0x60``) or a BMP280 (``chip_id=0x58``: no humidity) on the bus."""

    def __init__(
        self, env: EnvironmentSource, clock: Clock, address: int = 0x76, chip_id: int = 0x60
    ) -> None:
        super().__init__(address, env, clock)
        self.chip_id = chip_id
        self.trimming = Trimming()
        self.registers = bytearray(256)
        self._pointer = 0
        self._reset_at = clock.monotonic() - _NVM_COPY_S
        self._osrs_h_latched = 0
        self._measure_until: float | None = None
        self._filtered: tuple[float, float] | None = None
        self.measurements = 0
        """Conversions completed (for tests)."""
        self.reset()

    @property
    def has_humidity(self) -> bool:
        return self.chip_id == 0x60

    def load_trimming(self, trimming: Trimming) -> None:
        """Burn other trimming parameters (tests: negative dig_H4/dig_H5) and reset."""
        self.trimming = trimming
        self.reset()

    def reset(self) -> None:
        """Power-on / soft reset: registers to defaults, NVM copied into the trimming registers."""
        self.registers[:] = bytes(256)
        for register, value in self.trimming.nvm_image().items():
            if register < 0xE1 or self.has_humidity:
                self.registers[register] = value
        self.registers[_REG_CHIP_ID] = self.chip_id
        self.registers[_REG_PRESS : _REG_PRESS + 3] = b"\x80\x00\x00"
        self.registers[_REG_TEMP : _REG_TEMP + 3] = b"\x80\x00\x00"
        if self.has_humidity:
            self.registers[_REG_HUM : _REG_HUM + 2] = b"\x80\x00"
        self._osrs_h_latched = 0
        self._measure_until = None
        self._filtered = None
        self._reset_at = self.clock.monotonic()

    # -- I2C transactions -------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._advance()
        if len(data) == 1:
            self._pointer = data[0]
            return
        for i in range(0, len(data) - 1, 2):
            self._write_register(data[i], data[i + 1])
        if len(data) % 2:
            self._pointer = data[-1]

    def read(self, length: int) -> bytes:
        self._advance()
        if self._ctrl_mode() == 0b11 and _REG_PRESS <= self._pointer <= _REG_HUM + 1:
            self._convert()
        out = bytearray()
        for _ in range(length):
            out.append(self._register_value(self._pointer))
            self._pointer = (self._pointer + 1) & 0xFF
        return bytes(out)

    def _register_value(self, register: int) -> int:
        if register == _REG_STATUS:
            status = 0
            if self._measure_until is not None:
                status |= 0x08
            if self.clock.monotonic() - self._reset_at < _NVM_COPY_S:
                status |= 0x01
            return status
        return self.registers[register]

    def _write_register(self, register: int, value: int) -> None:
        if register == _REG_RESET:
            if value == 0xB6:
                self.reset()
        elif register == _REG_CTRL_HUM:
            if self.has_humidity:
                self.registers[register] = value & 0x07
        elif register == _REG_CONFIG:
            self.registers[register] = value & 0xFD
        elif register == _REG_CTRL_MEAS:
            self.registers[register] = value
            self._osrs_h_latched = self.registers[_REG_CTRL_HUM] & 0x07
            if value & 0x03 in (0b01, 0b10):
                self._measure_until = self.clock.monotonic() + self.conversion_time_s()
        # Every other register is read-only: the chip ignores the write.

    # -- measurement --------------------------------------------------------------------------
    def _ctrl_mode(self) -> int:
        return self.registers[_REG_CTRL_MEAS] & 0x03

    def _factors(self) -> tuple[int, int, int]:
        ctrl = self.registers[_REG_CTRL_MEAS]
        osrs_h = _OSRS_FACTOR[self._osrs_h_latched] if self.has_humidity else 0
        return _OSRS_FACTOR[ctrl >> 5], _OSRS_FACTOR[(ctrl >> 2) & 0x07], osrs_h

    def conversion_time_s(self) -> float:
        """Typical conversion time for the latched oversampling (datasheet appendix 9.1)."""
        t, p, h = self._factors()
        ms = 1.0 + 2.0 * t + (2.0 * p + 0.5 if p else 0.0) + (2.0 * h + 0.5 if h else 0.0)
        return ms / 1000.0

    def _advance(self) -> None:
        """Finish a forced conversion whose time has come (lazy: evaluated on each access)."""
        if self._measure_until is None or self.faults.stuck_not_ready:
            return
        if self.clock.monotonic() >= self._measure_until:
            self._measure_until = None
            self._convert()
            if self._ctrl_mode() in (0b01, 0b10):
                self.registers[_REG_CTRL_MEAS] &= 0xFC  # back to sleep

    def raw_for(
        self, temperature_c: float, pressure_pa: float, humidity_rh: float
    ) -> tuple[int, int, int]:
        """The (adc_T, adc_P, adc_H) that the integer compensation maps to these values."""
        k = self.trimming
        adc_t = _invert(
            lambda a: fine_temperature(a, k), temperature_c * 5120.0, 1 << 20, increasing=True
        )
        t_fine = fine_temperature(adc_t, k)
        adc_p = _invert(
            lambda a: pressure_q24_8(a, t_fine, k), pressure_pa * 256.0, 1 << 20, increasing=False
        )
        adc_h = _invert(
            lambda a: humidity_q22_10(a, t_fine, k), humidity_rh * 1024.0, 1 << 16, increasing=True
        )
        return adc_t, adc_p, adc_h

    def _convert(self) -> None:
        env = self.sense()
        adc_t, adc_p, adc_h = self.raw_for(env.temperature_c, env.pressure_pa, env.humidity_rh)
        osrs_t, osrs_p, osrs_h = self._factors()
        coefficient = _FILTER_COEFF[(self.registers[_REG_CONFIG] >> 2) & 0x07]
        if coefficient > 1 and self._filtered is not None:
            prev_t, prev_p = self._filtered
            f_t = (prev_t * (coefficient - 1) + adc_t) / coefficient
            f_p = (prev_p * (coefficient - 1) + adc_p) / coefficient
        else:
            f_t, f_p = float(adc_t), float(adc_p)
        self._filtered = (f_t, f_p)
        filtered = coefficient > 1
        self._store20(_REG_TEMP, self._quantise(f_t, osrs_t, filtered))
        self._store20(_REG_PRESS, self._quantise(f_p, osrs_p, filtered))
        if self.has_humidity:
            raw_h = adc_h if osrs_h else 0x8000
            self.registers[_REG_HUM : _REG_HUM + 2] = raw_h.to_bytes(2, "big")
        self.measurements += 1

    @staticmethod
    def _quantise(adc: float, factor: int, filtered: bool) -> int:
        """Resolution of the 20-bit result: 16 + (osrs - 1) bits without the filter (3.4.2/3)."""
        if factor == 0:
            return 0x80000
        if filtered:
            return min((1 << 20) - 1, round(adc))
        step = 1 << (5 - {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}[factor])
        return min((1 << 20) - step, round(adc / step) * step)

    def _store20(self, register: int, value: int) -> None:
        self.registers[register] = value >> 12
        self.registers[register + 1] = (value >> 4) & 0xFF
        self.registers[register + 2] = (value & 0x0F) << 4
