"""SDP8xx / SDP3x driver through the simulated bus."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from drivers.errors import CrcError, DeviceAbsentError, NotReadyError, SensorTimeoutError
from drivers.sdp8xx import SDP3x, SDP8xx
from drivers.sensirion import crc8, pack_words
from hil.bus import SimulatedBus, nack
from hil.chips.sdp8xx import SimSDP3x, SimSDP8xx
from hil.clock import SimClock
from hil.faults import ChipFaults
from hil.world import Environment, FixedEnvironment

AIR = Environment(
    temperature_c=22.5,
    humidity_rh=45.0,
    pressure_pa=101_325.0,
    co2_ppm=600.0,
    filter_dp_pa=123.4,
    dirt=0.1,
)


@dataclass
class Rig:
    clock: SimClock
    bus: SimulatedBus
    air: FixedEnvironment
    sim: SimSDP8xx
    driver: SDP8xx

    def set_dp(self, pa: float) -> None:
        self.air.set(filter_dp_pa=pa)


def make_rig(sim_factory: type[SimSDP8xx] = SimSDP8xx, **sim_options: int) -> Rig:
    clock = SimClock()
    bus = SimulatedBus()
    air = FixedEnvironment(AIR)
    sim = sim_factory(air, clock, **sim_options)
    bus.attach(sim)
    driver = SDP3x(bus, clock=clock) if sim_factory is SimSDP3x else SDP8xx(bus, clock=clock)
    return Rig(clock, bus, air, sim, driver)


@pytest.fixture
def rig() -> Rig:
    return make_rig()


# -- what the raw words mean ------------------------------------------------------------------
class ScriptedSample:
    """A chip in continuous mode that answers every read with one fixed, hand-made sample."""

    def __init__(self, words: list[int]) -> None:
        self.address = 0x25
        self.faults = ChipFaults()
        self.frame = pack_words(words)

    def write(self, data: bytes) -> None:
        raise nack(self.address)  # continuous mode: no command but stop; not needed here

    def read(self, length: int) -> bytes:
        return self.frame[:length]


@pytest.mark.parametrize(
    ("words", "pascal", "celsius"),
    [
        # raw dp 6000 / scale 60 = 100 Pa; raw T 4500 / 200 = 22.5 degC
        ([0x1770, 0x1194, 60], 100.0, 22.5),
        # two's complement: 0xFFC4 = -60 -> -1 Pa; 0xFF38 = -200 -> -1 degC
        ([0xFFC4, 0xFF38, 60], -1.0, -1.0),
        # a 125 Pa part sends 240: 0x7530 = 30000 -> 125 Pa
        ([0x7530, 0x1194, 240], 125.0, 22.5),
    ],
)
def test_raw_words_mean_raw_over_the_scale_factor_sent(
    words: list[int], pascal: float, celsius: float
) -> None:
    bus = SimulatedBus()
    bus.attach(ScriptedSample(words))
    reading = SDP8xx(bus, clock=SimClock()).read()
    assert reading.differential_pressure_pa == pascal
    assert reading.temperature_c == celsius
    assert reading.co2_ppm is None and reading.humidity_rh is None


# -- start ------------------------------------------------------------------------------------
def test_start_stops_identifies_then_starts_averaged_dp(rig: Rig) -> None:
    rig.driver.start()
    writes = [t.data for t in rig.bus.log if t.direction == "w"]
    assert writes == [b"\x3f\xf9", b"\x36\x7c", b"\xe1\x02", b"\x36\x15"]
    assert rig.driver.product_number == 0x03020A01
    assert rig.driver.serial_number == rig.sim.serial
    assert rig.sim.continuous


def test_restart_while_measuring(rig: Rig) -> None:
    rig.driver.start()
    assert rig.sim.continuous
    # The chip NACKs identification while it measures: only a stop first makes this work.
    restarted = SDP8xx(rig.bus, clock=rig.clock)
    restarted.start()
    assert rig.sim.received[-4:] == [0x3FF9, 0x367C, 0xE102, 0x3615]
    assert restarted.read().differential_pressure_pa == round(123.4 * 60) / 60


def test_sim_nacks_commands_in_continuous_mode(rig: Rig) -> None:
    rig.driver.start()
    with pytest.raises(DeviceAbsentError):
        rig.driver.product_identifier()


def test_wrong_product_family_is_refused() -> None:
    rig = make_rig(product=0x03010188)  # an SDP31 answering where an SDP8xx is configured
    with pytest.raises(DeviceAbsentError, match="0x03010188"):
        rig.driver.start()


def test_sdp3x_defaults() -> None:
    rig = make_rig(SimSDP3x)
    assert rig.driver.address == 0x21 and rig.driver.chip == "sdp3x"
    rig.driver.start()
    assert rig.driver.product_number == 0x03010188
    assert rig.driver.read().differential_pressure_pa == round(123.4 * 60) / 60


# -- measurement ------------------------------------------------------------------------------
def test_read_quantises_with_the_scale_factor(rig: Rig) -> None:
    rig.driver.start()
    reading = rig.driver.read()
    assert reading.differential_pressure_pa == round(123.4 * 60) / 60
    assert reading.temperature_c == 22.5
    assert rig.driver.last_scale_factor == 60


def test_scale_factor_240_part() -> None:
    rig = make_rig(scale_factor=240, product=0x03020B01)
    rig.set_dp(100.3)
    rig.driver.start()
    assert rig.driver.read().differential_pressure_pa == round(100.3 * 240) / 240
    assert rig.driver.last_scale_factor == 240


def test_negative_differential_pressure(rig: Rig) -> None:
    rig.set_dp(-42.7)
    rig.driver.start()
    assert rig.driver.read().differential_pressure_pa == round(-42.7 * 60) / 60
    raw = rig.bus.log[-1].data[:2]
    assert raw == (round(-42.7 * 60) & 0xFFFF).to_bytes(2, "big")  # two's complement on the wire


def test_chip_saturates_at_int16(rig: Rig) -> None:
    rig.set_dp(600.0)  # 36000 counts: beyond int16
    rig.driver.start()
    assert rig.driver.read().differential_pressure_pa == 32767 / 60


def test_slow_first_sample_is_waited_for(rig: Rig) -> None:
    rig.sim.first_sample_s = 0.030  # longer than the driver's own start wait (20 ms)
    rig.driver.start()
    assert rig.driver.read().differential_pressure_pa == round(123.4 * 60) / 60
    assert rig.clock.monotonic() >= 0.030


def test_read_after_stop_restarts_and_reports_not_ready(rig: Rig) -> None:
    rig.driver.start()
    rig.driver.stop()
    assert not rig.sim.continuous
    with pytest.raises(NotReadyError):
        rig.driver.read()
    assert rig.sim.continuous
    assert rig.driver.read().differential_pressure_pa == round(123.4 * 60) / 60


# -- faults -----------------------------------------------------------------------------------
def test_absent_chip_on_start(rig: Rig) -> None:
    rig.sim.faults.absent = True
    with pytest.raises(DeviceAbsentError) as info:
        rig.driver.start()
    assert info.value.address == 0x25 and info.value.sensor == "sdp8xx"


def test_chip_gone_after_start_is_absent_not_not_ready(rig: Rig) -> None:
    rig.driver.start()
    rig.sim.faults.absent = True
    with pytest.raises(DeviceAbsentError):
        rig.driver.read()


def test_transient_nack_is_retried(rig: Rig) -> None:
    rig.sim.faults.nack_next = 2
    rig.driver.start()
    rig.sim.faults.nack_next = 2
    assert rig.driver.read().differential_pressure_pa == round(123.4 * 60) / 60
    assert rig.sim.faults.nack_next == 0


def test_bus_timeout(rig: Rig) -> None:
    rig.sim.faults.timeout = True
    with pytest.raises(SensorTimeoutError):
        rig.driver.start()
    rig.sim.faults.timeout = False
    rig.driver.start()
    rig.sim.faults.timeout = True
    with pytest.raises(SensorTimeoutError):
        rig.driver.read()


def test_corrupt_crc(rig: Rig) -> None:
    rig.driver.start()
    rig.sim.faults.corrupt_crc = 1
    with pytest.raises(CrcError) as info:
        rig.driver.read()
    assert info.value.received != info.value.expected
    assert info.value.expected == crc8(info.value.data)
    assert rig.driver.read().differential_pressure_pa == round(123.4 * 60) / 60


def test_stuck_not_ready_is_not_ready_after_a_bounded_wait(rig: Rig) -> None:
    rig.driver.start()
    rig.sim.faults.stuck_not_ready = True
    before = rig.clock.monotonic()
    with pytest.raises(NotReadyError):
        rig.driver.read()
    assert rig.clock.monotonic() - before < 0.1
    rig.sim.faults.stuck_not_ready = False
    assert rig.driver.read().differential_pressure_pa == round(123.4 * 60) / 60


def test_drift_on_filter_dp(rig: Rig) -> None:
    rig.sim.faults.drift = {"filter_dp_pa": 50.0}
    rig.driver.start()
    assert rig.driver.read().differential_pressure_pa == round(173.4 * 60) / 60
