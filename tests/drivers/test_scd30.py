"""SCD30 driver through the simulated bus, with the interface description's vectors."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import pytest

from drivers.errors import (
    CrcError,
    DeviceAbsentError,
    NotReadyError,
    ProtocolError,
    SensorTimeoutError,
)
from drivers.scd30 import SCD30, decode_float
from drivers.sensirion import crc8, pack_words, unpack_words
from hil.bus import SimulatedBus, nack
from hil.chips.scd30 import SimSCD30
from hil.clock import SimClock
from hil.faults import ChipFaults
from hil.world import Environment, FixedEnvironment

AIR = Environment(
    temperature_c=22.5,
    humidity_rh=45.25,
    pressure_pa=101_325.0,
    co2_ppm=812.0,
    filter_dp_pa=120.0,
    dirt=0.1,
)


def as_float32(value: float) -> float:
    """What survives the trip through a big-endian IEEE-754 single, computed independently."""
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result


@dataclass
class Rig:
    clock: SimClock
    bus: SimulatedBus
    air: FixedEnvironment
    sim: SimSCD30
    driver: SCD30

    def writes(self) -> list[bytes]:
        return [t.data for t in self.bus.log if t.direction == "w"]


@pytest.fixture
def rig() -> Rig:
    clock = SimClock()
    bus = SimulatedBus()
    air = FixedEnvironment(AIR)
    sim = SimSCD30(air, clock)
    bus.attach(sim)
    return Rig(clock, bus, air, sim, SCD30(bus, clock=clock))


# -- datasheet vectors ------------------------------------------------------------------------
def test_datasheet_co2_example_decodes_to_439_ppm() -> None:
    # Interface description, read measurement example: 0x43 0xDB [CRC 0xCB] 0x8C 0x2E [CRC 0x8F]
    frame = bytes([0x43, 0xDB, 0xCB, 0x8C, 0x2E, 0x8F])
    high, low = unpack_words(frame)
    assert decode_float(high, low) == pytest.approx(439.09, abs=0.01)


class DatasheetFrames:
    """A scripted chip that answers with fixed bytes: data ready, then the example measurement."""

    def __init__(self) -> None:
        self.address = 0x61
        self.faults = ChipFaults()
        self._answer = b""

    def write(self, data: bytes) -> None:
        code = int.from_bytes(data[:2], "big")
        if code == 0x0202:
            self._answer = bytes([0x00, 0x01, 0xB0])  # data ready = 1, datasheet CRC 0xB0
        elif code == 0x0300:
            # CO2 0x43DB8C2E (439.09 ppm), T 0x41D9E7FF (27.24 degC), RH 0x42433A1B (48.81 %)
            self._answer = bytes([0x43, 0xDB, 0xCB, 0x8C, 0x2E, 0x8F]) + pack_words(
                [0x41D9, 0xE7FF, 0x4243, 0x3A1B]
            )
        else:
            raise nack(self.address)

    def read(self, length: int) -> bytes:
        answer, self._answer = self._answer, b""
        if len(answer) != length:
            raise nack(self.address)
        return answer


def test_driver_decodes_the_datasheet_measurement_frame() -> None:
    clock = SimClock()
    bus = SimulatedBus()
    bus.attach(DatasheetFrames())
    reading = SCD30(bus, clock=clock).read()
    assert reading.co2_ppm == pytest.approx(439.09, abs=0.01)
    assert reading.temperature_c == pytest.approx(27.24, abs=0.01)
    assert reading.humidity_rh == pytest.approx(48.81, abs=0.01)
    assert reading.pressure_pa is None and reading.differential_pressure_pa is None


def test_start_sends_the_datasheet_trigger_without_pressure_compensation(rig: Rig) -> None:
    rig.driver.start()
    # Interface description: "Start continuous measurement without ambient pressure
    # compensation": 0xC2 0x00 0x10 0x00 0x00 0x81.
    assert bytes([0x00, 0x10, 0x00, 0x00, 0x81]) in rig.writes()
    assert rig.sim.measuring


def test_start_writes_the_interval_only_when_it_differs(rig: Rig) -> None:
    rig.sim.interval_s = 10
    rig.driver.start()
    # Interface description: "Set measurement interval 2 s": 0xC2 0x46 0x00 0x00 0x02 0xE3.
    assert bytes([0x46, 0x00, 0x00, 0x02, 0xE3]) in rig.writes()
    rig.bus.log.clear()
    rig.driver.start()
    assert not [w for w in rig.writes() if len(w) == 5 and w[:2] == b"\x46\x00"]


def test_ambient_pressure_is_sent_with_the_trigger(rig: Rig) -> None:
    SCD30(rig.bus, clock=rig.clock, ambient_pressure_mbar=1013).start()
    argument = (1013).to_bytes(2, "big")
    assert b"\x00\x10" + argument + bytes([crc8(argument)]) in rig.writes()
    assert rig.sim.ambient_pressure_mbar == 1013
    rig.driver.set_ambient_pressure(850)
    assert rig.sim.ambient_pressure_mbar == 850
    with pytest.raises(ValueError):
        SCD30(rig.bus, ambient_pressure_mbar=500)
    with pytest.raises(ValueError):
        rig.driver.set_ambient_pressure(1500)


def test_interval_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        SCD30(SimulatedBus(), interval_s=1)
    with pytest.raises(ValueError):
        SCD30(SimulatedBus(), interval_s=1801)


# -- measurement ------------------------------------------------------------------------------
def test_read_returns_the_world_through_float32(rig: Rig) -> None:
    rig.driver.start()
    reading = rig.driver.read()
    assert reading.co2_ppm == as_float32(812.0)
    assert reading.temperature_c == as_float32(22.5)
    assert reading.humidity_rh == as_float32(45.25)


def test_read_waits_one_interval_for_the_first_sample(rig: Rig) -> None:
    driver = SCD30(rig.bus, clock=rig.clock, interval_s=30)
    driver.start()
    assert rig.sim.interval_s == 30
    started = rig.clock.monotonic()
    driver.read()
    waited = rig.clock.monotonic() - started
    assert 30.0 <= waited <= 31.0
    # The sample is consumed: the next one comes one interval later.
    assert not driver.data_ready()
    driver.read()
    assert rig.clock.monotonic() - started >= 60.0


def test_restart_while_measuring_retriggers_without_stop(rig: Rig) -> None:
    rig.driver.start()
    first = rig.driver.read()
    rig.air.set(co2_ppm=950.0)
    restarted = SCD30(rig.bus, clock=rig.clock)  # an agent restart: the chip never stopped
    restarted.start()
    assert 0x0104 not in rig.sim.received
    assert rig.sim.measuring
    assert restarted.read().co2_ppm == as_float32(950.0)
    assert first.co2_ppm == as_float32(812.0)


def test_stop_ends_measurement(rig: Rig) -> None:
    rig.driver.start()
    rig.driver.stop()
    assert not rig.sim.measuring
    with pytest.raises(NotReadyError):
        rig.driver.read()


def test_non_finite_value_is_a_protocol_error(rig: Rig) -> None:
    rig.air.set(co2_ppm=math.nan)
    rig.driver.start()
    with pytest.raises(ProtocolError, match="co2"):
        rig.driver.read()


# -- configuration commands -------------------------------------------------------------------
def test_firmware_version(rig: Rig) -> None:
    rig.sim.firmware_version = (3, 66)
    assert rig.driver.firmware_version() == (3, 66)


def test_forced_recalibration_cancels_drift(rig: Rig) -> None:
    rig.sim.faults.drift = {"co2_ppm": 300.0}
    rig.driver.start()
    assert rig.driver.read().co2_ppm == as_float32(1112.0)
    rig.driver.forced_recalibration(812)
    assert rig.driver.forced_recalibration_value() == 812
    assert rig.driver.read().co2_ppm == as_float32(812.0)
    with pytest.raises(ValueError):
        rig.driver.forced_recalibration(300)


def test_temperature_offset_in_hundredths_of_a_kelvin(rig: Rig) -> None:
    rig.driver.set_temperature_offset(1.5)
    assert b"\x54\x03" + (150).to_bytes(2, "big") + bytes([crc8(b"\x00\x96")]) in rig.writes()
    assert rig.driver.temperature_offset() == 1.5
    rig.driver.start()
    assert rig.driver.read().temperature_c == as_float32(21.0)


def test_self_calibration_and_altitude_round_trip(rig: Rig) -> None:
    rig.driver.set_automatic_self_calibration(True)
    assert rig.driver.automatic_self_calibration()
    rig.driver.set_automatic_self_calibration(False)
    assert not rig.driver.automatic_self_calibration()
    rig.driver.set_altitude(440)
    assert rig.driver.altitude() == 440


def test_configured_offset_and_altitude_are_written_only_when_they_differ(rig: Rig) -> None:
    driver = SCD30(rig.bus, clock=rig.clock, temperature_offset_c=2.5, altitude_m=250)
    driver.start()
    assert rig.sim.temperature_offset_centi_k == 250 and rig.sim.altitude_m == 250
    set_offset, set_altitude = b"\x54\x03", b"\x51\x02"
    assert any(w[:2] == set_offset and len(w) == 5 for w in rig.writes())
    rig.bus.log.clear()
    driver.start()  # an agent restart: the values are in the chip's flash already
    assert not [w for w in rig.writes() if len(w) == 5 and w[:2] in (set_offset, set_altitude)]


def test_soft_reset_waits_for_the_boot_and_keeps_measuring(rig: Rig) -> None:
    rig.driver.start()
    before = rig.clock.monotonic()
    rig.driver.soft_reset()
    assert rig.clock.monotonic() - before == pytest.approx(2.0)  # boot-up time < 2 s
    assert rig.sim.measuring
    assert rig.driver.read().co2_ppm == as_float32(812.0)


# -- faults -----------------------------------------------------------------------------------
def test_absent_chip(rig: Rig) -> None:
    rig.sim.faults.absent = True
    with pytest.raises(DeviceAbsentError) as info:
        rig.driver.start()
    assert info.value.address == 0x61 and info.value.sensor == "scd30"


def test_transient_nack_is_retried(rig: Rig) -> None:
    rig.sim.faults.nack_next = 2
    rig.driver.start()
    assert rig.sim.faults.nack_next == 0
    assert rig.driver.read().co2_ppm == as_float32(812.0)


def test_bus_timeout(rig: Rig) -> None:
    rig.sim.faults.timeout = True
    with pytest.raises(SensorTimeoutError):
        rig.driver.start()


def test_corrupt_crc_reports_received_and_expected(rig: Rig) -> None:
    rig.driver.start()
    rig.sim.faults.corrupt_crc = 1
    with pytest.raises(CrcError) as info:
        rig.driver.read()
    error = info.value
    assert error.received != error.expected
    assert error.expected == crc8(error.data)
    assert rig.driver.read().co2_ppm == as_float32(812.0)  # one bad frame, then healthy again


def test_stuck_not_ready_gives_up_after_one_interval(rig: Rig) -> None:
    rig.driver.start()
    rig.sim.faults.stuck_not_ready = True
    before = rig.clock.monotonic()
    with pytest.raises(NotReadyError):
        rig.driver.read()
    waited = rig.clock.monotonic() - before
    assert 2.0 <= waited <= 2.0 + 1.0 + 0.2  # interval + margin, plus the last poll


def test_drift_shows_in_every_quantity(rig: Rig) -> None:
    rig.sim.faults.drift = {"co2_ppm": 150.0, "temperature_c": -0.5, "humidity_rh": 3.0}
    rig.driver.start()
    reading = rig.driver.read()
    assert reading.co2_ppm == as_float32(962.0)
    assert reading.temperature_c == as_float32(22.0)
    assert reading.humidity_rh == as_float32(48.25)
