"""BME280/BMP280 driver: datasheet vectors, register decoding, the simulated chip, every fault."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drivers.bme280 import (
    BME280,
    Calibration,
    compensate_pressure,
    compensate_temperature,
    measurement_time_max_s,
    parse_calibration,
)
from drivers.errors import DeviceAbsentError, NotReadyError, SensorTimeoutError
from hil.bus import SimulatedBus
from hil.chips.bme280 import SimBME280, Trimming, fine_temperature, pressure_q24_8
from hil.clock import SimClock
from hil.world import Environment, FixedEnvironment

# BMP280 datasheet, section 3.12 "calculating pressure and temperature", worked example.
DATASHEET_CAL = Calibration(
    dig_t1=27504,
    dig_t2=26435,
    dig_t3=-1000,
    dig_p1=36477,
    dig_p2=-10685,
    dig_p3=3024,
    dig_p4=2855,
    dig_p5=140,
    dig_p6=-7,
    dig_p7=15500,
    dig_p8=-14600,
    dig_p9=6000,
)
DATASHEET_ADC_T = 519888
DATASHEET_ADC_P = 415148

WORLD = Environment(
    temperature_c=21.37,
    humidity_rh=47.5,
    pressure_pa=99_876.5,
    co2_ppm=600.0,
    filter_dp_pa=80.0,
    dirt=0.1,
)


class RegisterImage:
    """A bare register file on the bus (no simulated physics): a hand-made chip for vectors."""

    def __init__(self, address: int, image: dict[int, int]) -> None:
        from hil.faults import ChipFaults

        self.address = address
        self.faults = ChipFaults()
        self.registers = bytearray(256)
        for register, value in image.items():
            self.registers[register] = value
        self._pointer = 0

    def write(self, data: bytes) -> None:
        if len(data) == 1:
            self._pointer = data[0]
        for i in range(0, len(data) - 1, 2):
            if data[i] != 0xE0:  # keep the image across the driver's soft reset
                self.registers[data[i]] = data[i + 1]

    def read(self, length: int) -> bytes:
        out = bytes(self.registers[(self._pointer + i) & 0xFF] for i in range(length))
        self._pointer = (self._pointer + length) & 0xFF
        return out


def datasheet_image(chip_id: int = 0x58, adc_p: int = DATASHEET_ADC_P) -> dict[int, int]:
    """Registers of a BMP280 holding the datasheet example's trimming and raw values."""
    image: dict[int, int] = {0xD0: chip_id}
    words = [27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000]
    for i, word in enumerate(words):
        raw = word & 0xFFFF
        image[0x88 + 2 * i] = raw & 0xFF
        image[0x89 + 2 * i] = raw >> 8
    for register, adc in ((0xF7, adc_p), (0xFA, DATASHEET_ADC_T)):
        image[register] = adc >> 12
        image[register + 1] = (adc >> 4) & 0xFF
        image[register + 2] = (adc & 0x0F) << 4
    return image


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def bus() -> SimulatedBus:
    return SimulatedBus()


@pytest.fixture
def world() -> FixedEnvironment:
    return FixedEnvironment(WORLD)


@pytest.fixture
def sim(bus: SimulatedBus, clock: SimClock, world: FixedEnvironment) -> SimBME280:
    chip = SimBME280(world, clock)
    bus.attach(chip)
    return chip


# -- datasheet vectors -----------------------------------------------------------------------------
def test_datasheet_temperature_example() -> None:
    temperature, t_fine = compensate_temperature(DATASHEET_ADC_T, DATASHEET_CAL)
    assert temperature == pytest.approx(25.08, abs=0.005)
    assert t_fine == pytest.approx(128422.2869, abs=0.001)


def test_datasheet_pressure_example() -> None:
    _, t_fine = compensate_temperature(DATASHEET_ADC_T, DATASHEET_CAL)
    assert compensate_pressure(DATASHEET_ADC_P, t_fine, DATASHEET_CAL) == pytest.approx(
        100653.27, abs=0.05
    )


def test_simulator_integer_model_matches_datasheet_example() -> None:
    t_fine = fine_temperature(DATASHEET_ADC_T, Trimming())
    assert t_fine == 128422
    assert (t_fine * 5 + 128) >> 8 == 2508  # 25.08 degC in 0.01 degC
    assert pressure_q24_8(DATASHEET_ADC_P, t_fine, Trimming()) / 256 == pytest.approx(
        100653, abs=0.5
    )


def test_datasheet_example_through_the_registers(bus: SimulatedBus, clock: SimClock) -> None:
    bus.attach(RegisterImage(0x76, datasheet_image()))
    sensor = BME280(bus, clock=clock)
    reading = sensor.read()
    assert sensor.model == "bmp280"
    assert sensor.calibration == DATASHEET_CAL
    assert reading.temperature_c == pytest.approx(25.08, abs=0.005)
    assert reading.pressure_pa == pytest.approx(100653.27, abs=0.05)
    assert reading.humidity_rh is None


def test_measurement_time_matches_datasheet_table() -> None:
    # Appendix 9.1: x1/x1/x1 (weather monitoring) takes at most 9.3 ms.
    assert measurement_time_max_s(1, 1, 1) == pytest.approx(0.0093)
    # 1.25 + 2.3*16 + (2.3*16 + 0.575) + (2.3*16 + 0.575) ms
    assert measurement_time_max_s(16, 16, 16) == pytest.approx(0.1128)
    assert measurement_time_max_s(1, 0, 0) == pytest.approx(0.00355)


# -- trimming parameter decoding -------------------------------------------------------------------
def _tp_block(h1: int) -> bytes:
    block = bytearray(26)
    block[0x88 - 0x88 : 0x8A - 0x88] = (27504).to_bytes(2, "little")
    block[0xA1 - 0x88] = h1
    return bytes(block)


def test_packed_h4_h5_positive() -> None:
    # E1..E7: H2=0x016a, H3=0x00, E4=0x13, E5=0x29 (H5 low nibble 2, H4 low nibble 9), E6=0x03,
    # H6=0x1e  ->  H4 = 0x139 = 313, H5 = 0x032 = 50.
    cal = parse_calibration(_tp_block(75), bytes([0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E]))
    assert cal.humidity is not None
    assert cal.humidity.dig_h1 == 75
    assert cal.humidity.dig_h2 == 362
    assert cal.humidity.dig_h3 == 0
    assert cal.humidity.dig_h4 == 313
    assert cal.humidity.dig_h5 == 50
    assert cal.humidity.dig_h6 == 30


def test_packed_h4_h5_negative() -> None:
    # H4 = -300 = 0xed4 (12-bit): E4=0xed, E5[3:0]=0x4. H5 = -7 = 0xff9: E6=0xff, E5[7:4]=0x9.
    # H2 = -2 = 0xfffe, H6 = 0xe2 = -30.
    cal = parse_calibration(_tp_block(0xFF), bytes([0xFE, 0xFF, 0x07, 0xED, 0x94, 0xFF, 0xE2]))
    assert cal.humidity is not None
    assert cal.humidity.dig_h1 == 255
    assert cal.humidity.dig_h2 == -2
    assert cal.humidity.dig_h3 == 7
    assert cal.humidity.dig_h4 == -300
    assert cal.humidity.dig_h5 == -7
    assert cal.humidity.dig_h6 == -30


def test_bmp280_block_has_no_humidity() -> None:
    assert parse_calibration(_tp_block(75)).humidity is None


# -- round trip through the simulated chip ---------------------------------------------------------
@pytest.mark.parametrize(
    ("oversampling", "pressure_tolerance"),
    [((1, 4, 1), 1.0), ((16, 16, 16), 0.3), ((2, 1, 8), 3.0)],
)
def test_round_trip_world_to_driver(
    bus: SimulatedBus,
    clock: SimClock,
    sim: SimBME280,
    oversampling: tuple[int, int, int],
    pressure_tolerance: float,
) -> None:
    sensor = BME280(bus, clock=clock, oversampling=oversampling)
    reading = sensor.read()
    assert sensor.model == "bme280"
    assert reading.temperature_c == pytest.approx(WORLD.temperature_c, abs=0.01)
    assert reading.pressure_pa == pytest.approx(WORLD.pressure_pa, abs=pressure_tolerance)
    assert reading.humidity_rh == pytest.approx(WORLD.humidity_rh, abs=0.05)
    assert reading.differential_pressure_pa is None and reading.co2_ppm is None


@pytest.mark.parametrize(
    "env",
    [
        replace(WORLD, temperature_c=-10.0, pressure_pa=95_000.0, humidity_rh=15.0),
        replace(WORLD, temperature_c=45.0, pressure_pa=105_000.0, humidity_rh=92.0),
    ],
)
def test_round_trip_with_negative_h4_h5_trimming(
    bus: SimulatedBus, clock: SimClock, world: FixedEnvironment, sim: SimBME280, env: Environment
) -> None:
    world.now = env
    sim.load_trimming(replace(Trimming(), h2=380, h4=-20, h5=-45, h6=-20, h3=5))
    reading = BME280(bus, clock=clock).read()
    assert reading.temperature_c == pytest.approx(env.temperature_c, abs=0.01)
    assert reading.pressure_pa == pytest.approx(env.pressure_pa, abs=1.0)
    assert reading.humidity_rh == pytest.approx(env.humidity_rh, abs=0.05)


def test_follows_the_world_between_reads(
    bus: SimulatedBus, clock: SimClock, world: FixedEnvironment, sim: SimBME280
) -> None:
    sensor = BME280(bus, clock=clock)
    first = sensor.read()
    world.set(temperature_c=30.0, humidity_rh=70.0)
    second = sensor.read()
    assert first.temperature_c == pytest.approx(21.37, abs=0.01)
    assert second.temperature_c == pytest.approx(30.0, abs=0.01)
    assert second.humidity_rh == pytest.approx(70.0, abs=0.05)
    assert sim.measurements == 2


def test_bmp280_reports_no_humidity(
    bus: SimulatedBus, clock: SimClock, world: FixedEnvironment
) -> None:
    bus.attach(SimBME280(world, clock, 0x77, chip_id=0x58))
    sensor = BME280(bus, 0x77, clock=clock)
    reading = sensor.read()
    assert sensor.model == "bmp280"
    assert reading.humidity_rh is None
    assert reading.temperature_c == pytest.approx(WORLD.temperature_c, abs=0.01)
    assert reading.pressure_pa == pytest.approx(WORLD.pressure_pa, abs=1.0)
    assert bus.log[-1].direction == "r" and len(bus.log[-1].data) == 6
    assert not any(t.direction == "w" and t.data[0] in (0xE1, 0xF2) for t in bus.log)


def test_unknown_chip_id_is_refused(
    bus: SimulatedBus, clock: SimClock, world: FixedEnvironment
) -> None:
    bus.attach(SimBME280(world, clock, chip_id=0x61))  # a BME680 answers at 0x76
    with pytest.raises(DeviceAbsentError, match="0x61"):
        BME280(bus, clock=clock).start()


# -- the bytes on the wire -------------------------------------------------------------------------
def test_start_and_forced_measurement_on_the_wire(
    bus: SimulatedBus, clock: SimClock, sim: SimBME280
) -> None:
    sensor = BME280(bus, clock=clock, oversampling=(1, 4, 1), iir_filter=16)
    sensor.start()
    writes = [t.data for t in bus.log if t.direction == "w" and len(t.data) == 2]
    assert writes == [b"\xe0\xb6", b"\xf5\x10", b"\xf2\x01", b"\xf4\x2c"]
    bus.log.clear()
    t0 = clock.monotonic()
    sensor.read()
    transfers = list(bus.log)
    # settings again (config, ctrl_hum), then ctrl_meas: osrs_t=001, osrs_p=011, mode=01 (forced)
    assert [t.data for t in transfers[:3]] == [b"\xf5\x10", b"\xf2\x01", b"\xf4\x2d"]
    # one burst read of 0xF7..0xFE at the end, after the datasheet's maximum measurement time
    assert transfers[-2].data == b"\xf7"
    assert transfers[-1].direction == "r" and len(transfers[-1].data) == 8
    assert clock.monotonic() - t0 >= 0.0162 - 1e-9
    assert sim.registers[0xF4] & 0x03 == 0  # back to sleep after the conversion


def test_chip_that_reset_itself_is_reconfigured(
    bus: SimulatedBus, clock: SimClock, sim: SimBME280
) -> None:
    sensor = BME280(bus, clock=clock, iir_filter=8)
    sensor.start()
    sim.reset()  # a brown-out: ctrl_hum, ctrl_meas and config back to 0 (all skipped, no filter)
    reading = sensor.read()
    assert reading.humidity_rh == pytest.approx(WORLD.humidity_rh, abs=0.05)
    assert sim.registers[0xF5] == 0x0C  # filter coefficient 8


def test_skipped_humidity_value_is_never_returned(bus: SimulatedBus, clock: SimClock) -> None:
    image = datasheet_image(chip_id=0x60)
    image[0xFD], image[0xFE] = 0x80, 0x00
    bus.attach(RegisterImage(0x76, image))
    with pytest.raises(NotReadyError, match="0x8000"):
        BME280(bus, clock=clock).read()


def test_pressure_off_gives_none(bus: SimulatedBus, clock: SimClock, sim: SimBME280) -> None:
    reading = BME280(bus, clock=clock, oversampling=(1, 0, 1)).read()
    assert reading.pressure_pa is None
    assert reading.temperature_c == pytest.approx(WORLD.temperature_c, abs=0.01)
    assert sim.registers[0xF7:0xFA] == b"\x80\x00\x00"


def test_skipped_pressure_value_is_never_returned(bus: SimulatedBus, clock: SimClock) -> None:
    bus.attach(RegisterImage(0x76, datasheet_image(adc_p=0x80000)))
    with pytest.raises(NotReadyError, match="0x80000"):
        BME280(bus, clock=clock).read()


@pytest.mark.parametrize(
    "kwargs",
    [{"oversampling": (0, 1, 1)}, {"oversampling": (3, 1, 1)}, {"iir_filter": 5}],
)
def test_invalid_settings_are_refused(bus: SimulatedBus, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BME280(bus, **kwargs)  # type: ignore[arg-type]


# -- faults ----------------------------------------------------------------------------------------
def test_absent_chip(bus: SimulatedBus, clock: SimClock, sim: SimBME280) -> None:
    sim.faults.absent = True
    with pytest.raises(DeviceAbsentError, match="0x76"):
        BME280(bus, clock=clock).read()


def test_nothing_at_the_address(bus: SimulatedBus, clock: SimClock) -> None:
    with pytest.raises(DeviceAbsentError):
        BME280(bus, 0x77, clock=clock).start()


def test_transient_nack_is_retried(bus: SimulatedBus, clock: SimClock, sim: SimBME280) -> None:
    sensor = BME280(bus, clock=clock)
    sensor.start()
    sim.faults.nack_next = 2
    assert sensor.read().temperature_c == pytest.approx(WORLD.temperature_c, abs=0.01)
    assert sim.faults.nack_next == 0


def test_bus_timeout(bus: SimulatedBus, clock: SimClock, sim: SimBME280) -> None:
    sensor = BME280(bus, clock=clock)
    sensor.start()
    sim.faults.timeout = True
    with pytest.raises(SensorTimeoutError):
        sensor.read()


def test_stuck_measuring_gives_not_ready_quickly(
    bus: SimulatedBus, clock: SimClock, sim: SimBME280
) -> None:
    sensor = BME280(bus, clock=clock)
    sensor.start()
    sim.faults.stuck_not_ready = True
    t0 = clock.monotonic()
    with pytest.raises(NotReadyError, match="still measuring"):
        sensor.read()
    # gave up after about twice the datasheet maximum, not later
    assert clock.monotonic() - t0 < 2 * sensor.measurement_time_s + 0.02


def test_drift_shifts_the_reading(bus: SimulatedBus, clock: SimClock, sim: SimBME280) -> None:
    sim.faults.drift = {"temperature_c": 1.5, "humidity_rh": -4.0, "pressure_pa": 120.0}
    reading = BME280(bus, clock=clock).read()
    assert reading.temperature_c == pytest.approx(WORLD.temperature_c + 1.5, abs=0.01)
    assert reading.humidity_rh == pytest.approx(WORLD.humidity_rh - 4.0, abs=0.05)
    assert reading.pressure_pa == pytest.approx(WORLD.pressure_pa + 120.0, abs=1.0)


def test_corrupt_crc_fault_has_no_effect_on_a_chip_without_crc(
    bus: SimulatedBus, clock: SimClock, sim: SimBME280
) -> None:
    sim.faults.corrupt_crc = -1
    reading = BME280(bus, clock=clock).read()
    assert reading.temperature_c == pytest.approx(WORLD.temperature_c, abs=0.01)


def test_iir_filter_lags_a_step(
    bus: SimulatedBus, clock: SimClock, world: FixedEnvironment, sim: SimBME280
) -> None:
    sensor = BME280(bus, clock=clock, oversampling=(16, 16, 1), iir_filter=4)
    assert sensor.read().temperature_c == pytest.approx(21.37, abs=0.01)
    world.set(temperature_c=25.37)
    # coefficient 4: a quarter of the step per sample (on the raw value, close to linear)
    assert sensor.read().temperature_c == pytest.approx(22.37, abs=0.05)
