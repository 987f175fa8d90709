"""SCD4x driver through the simulated bus: datasheet examples, state handling, every fault."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from drivers.errors import (
    CrcError,
    DeviceAbsentError,
    NotReadyError,
    SensorError,
    SensorTimeoutError,
)
from drivers.scd4x import SCD4x
from drivers.sensirion import crc8
from hil.bus import SimulatedBus, Transfer
from hil.chips.scd4x import SimSCD4x
from hil.clock import SimClock
from hil.faults import ChipFaults
from hil.world import DEFAULT_ENVIRONMENT, FixedEnvironment

ADDRESS = 0x62
T_LSB = 175 / 65535
RH_LSB = 100 / 65535
PERIOD_S = 5.0  # datasheet: one sample every 5 s in periodic measurement


# What every rig's air starts as; a test overrides some quantities through make_rig.
AIR = replace(DEFAULT_ENVIRONMENT, temperature_c=21.0, humidity_rh=40.0, co2_ppm=650.0)


@dataclass
class Rig:
    clock: SimClock
    bus: SimulatedBus
    chip: SimSCD4x
    env: FixedEnvironment

    def driver(self, **options: float) -> SCD4x:
        return SCD4x(self.bus, clock=self.clock, **options)  # type: ignore[arg-type]

    def commands_sent(self) -> list[bytes]:
        return [t.data[:2] for t in self.bus.log if t.direction == "w"]


def make_rig(**env_values: float) -> Rig:
    clock = SimClock(start=100.0)
    bus = SimulatedBus(log_size=4096)
    env = FixedEnvironment(AIR, **env_values)
    chip = SimSCD4x(env, clock)
    bus.attach(chip)
    return Rig(clock, bus, chip, env)


class ScriptedSCD4x:
    """A stand-in chip answering with the datasheet's example bytes; accepts every command."""

    address = ADDRESS

    def __init__(self, responses: dict[int, bytes]) -> None:
        self.faults = ChipFaults()
        self.responses = responses
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.pending = self.responses.get(int.from_bytes(data[:2], "big"), b"")

    def read(self, length: int) -> bytes:
        data, self.pending = self.pending[:length], b""
        return data


def scripted(responses: dict[int, bytes]) -> tuple[SimulatedBus, SCD4x]:
    bus = SimulatedBus()
    bus.attach(ScriptedSCD4x(responses))
    return bus, SCD4x(bus, clock=SimClock())


def written(bus: SimulatedBus) -> list[bytes]:
    return [t.data for t in bus.log if t.direction == "w"]


# -- datasheet examples ------------------------------------------------------------------------
def test_read_measurement_datasheet_example() -> None:
    # Datasheet read_measurement example: 0x01F4 -> 500 ppm, 0x6667 -> 25 degC, 0x5EB9 -> 37 %RH
    example = bytes.fromhex("01f433 6667a2 5eb93c")
    ready = bytes.fromhex("8006") + bytes([crc8(b"\x80\x06")])
    bus, driver = scripted({0xE4B8: ready, 0xEC05: example})
    reading = driver.read()
    assert reading.co2_ppm == 500.0
    assert reading.temperature_c == pytest.approx(25.0, abs=0.01)
    assert reading.humidity_rh == pytest.approx(37.0, abs=0.01)
    assert written(bus)[-1] == b"\xec\x05"


def test_serial_number_datasheet_example() -> None:
    bus, driver = scripted({0x3682: bytes.fromhex("f89631 9f07c2 3bbe89")})
    assert driver.serial_number() == 273_325_796_834_238
    assert b"\x36\x82" in written(bus)


def test_set_temperature_offset_datasheet_example_bytes() -> None:
    bus, driver = scripted({})
    driver.set_temperature_offset(5.4)
    assert written(bus)[-1] == bytes.fromhex("241d 07e648")


def test_set_sensor_altitude_datasheet_example_bytes() -> None:
    bus, driver = scripted({})
    driver.set_sensor_altitude(1950)
    assert written(bus)[-1] == bytes.fromhex("2427 079e09")


def test_set_ambient_pressure_datasheet_example_bytes() -> None:
    bus, driver = scripted({})
    driver.set_ambient_pressure(98_700)
    assert written(bus) == [bytes.fromhex("e000 03db42")]  # no stop: allowed while measuring


def test_forced_recalibration_datasheet_example() -> None:
    bus, driver = scripted({0x362F: bytes.fromhex("7fce7b")})
    assert driver.forced_recalibration(480) == -50
    assert bytes.fromhex("362f 01e0b4") in written(bus)


def test_data_ready_uses_the_eleven_low_bits_only() -> None:
    not_ready = bytes.fromhex("8000") + bytes([crc8(b"\x80\x00")])
    _, driver = scripted({0xE4B8: not_ready})
    assert driver.data_ready() is False
    ready = bytes.fromhex("0001") + bytes([crc8(b"\x00\x01")])
    _, driver = scripted({0xE4B8: ready})
    assert driver.data_ready() is True


# -- periodic measurement on the simulated chip --------------------------------------------------
def test_start_then_read_returns_the_environment() -> None:
    rig = make_rig(co2_ppm=812.0, temperature_c=24.0, humidity_rh=55.0)
    driver = rig.driver()
    driver.start()
    t0 = rig.clock.monotonic()
    reading = driver.read()
    assert reading.co2_ppm == 812.0
    assert reading.temperature_c == pytest.approx(24.0, abs=T_LSB)
    assert reading.humidity_rh == pytest.approx(55.0, abs=RH_LSB)
    # the first sample comes one period after start, and read() waited for it
    assert PERIOD_S - 1.0 <= rig.clock.monotonic() - t0 <= PERIOD_S + 1.0
    assert rig.commands_sent()[:3] == [b"\x3f\x86", b"\x36\x82", b"\x21\xb1"]


def test_start_waits_out_stop_periodic_measurement() -> None:
    rig = make_rig()
    t0 = rig.clock.monotonic()
    rig.driver().start()
    assert rig.clock.monotonic() - t0 >= 0.5  # datasheet: 500 ms before the next command


def test_each_read_waits_for_a_new_sample() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    driver.read()
    t1 = rig.clock.monotonic()
    driver.read()
    assert rig.clock.monotonic() - t1 == pytest.approx(PERIOD_S, abs=0.5)


def test_start_copes_with_a_chip_already_measuring() -> None:
    rig = make_rig(co2_ppm=700.0)
    rig.driver().start()  # a previous agent process left the chip measuring
    rig.clock.advance(60.0)
    assert rig.chip.measuring
    fresh = rig.driver()
    fresh.start()
    assert fresh.read().co2_ppm == 700.0


def test_read_after_stop_is_refused_at_once() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    driver.stop()
    assert not rig.chip.measuring
    t0 = rig.clock.monotonic()
    with pytest.raises(NotReadyError):
        driver.read()
    assert rig.clock.monotonic() == t0


def test_configured_temperature_offset_and_altitude_are_applied_at_start() -> None:
    rig = make_rig(temperature_c=22.0)
    driver = rig.driver(temperature_offset_c=6.0, altitude_m=1950)
    driver.start()
    # the sim's element runs 4 degC warm (default); an offset of 6 reports 2 degC low
    assert driver.read().temperature_c == pytest.approx(22.0 + 4.0 - 6.0, abs=2 * T_LSB)
    assert rig.chip.settings.altitude_m == 1950
    assert driver.temperature_offset() == pytest.approx(6.0, abs=T_LSB)
    assert driver.sensor_altitude() == 1950
    assert rig.chip.measuring  # the getters restored periodic measurement


def test_settings_out_of_range_are_refused() -> None:
    bus = SimulatedBus()
    with pytest.raises(ValueError, match="temperature_offset_c"):
        SCD4x(bus, temperature_offset_c=-1.0)
    with pytest.raises(ValueError, match="altitude_m"):
        SCD4x(bus, altitude_m=9000)
    with pytest.raises(ValueError, match="pressure_pa"):
        SCD4x(bus).set_ambient_pressure(30_000)


def test_idle_commands_stop_and_restart_periodic_measurement() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    assert driver.serial_number() == rig.chip.serial
    sent = rig.commands_sent()
    assert sent[-3:] == [b"\x3f\x86", b"\x36\x82", b"\x21\xb1"]
    assert rig.chip.measuring
    assert driver.read().co2_ppm is not None


def test_set_ambient_pressure_keeps_measuring() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    before = len(rig.chip.received)
    driver.set_ambient_pressure(95_000)
    assert rig.chip.received[before:] == [0xE000]
    assert rig.chip.ambient_pressure_pa == 95_000
    assert rig.chip.measuring


def test_forced_recalibration_corrects_the_reading() -> None:
    rig = make_rig(co2_ppm=900.0)
    driver = rig.driver()
    driver.start()
    driver.read()
    assert driver.forced_recalibration(420) == 420 - 900
    assert rig.chip.measuring
    assert driver.read().co2_ppm == 420.0


def test_forced_recalibration_failure_raises() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.stop()  # never measured since power-up: the chip answers 0xFFFF
    with pytest.raises(SensorError, match="0xffff"):
        driver.forced_recalibration(420)


def test_self_test_passes_and_reports_a_malfunction() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.stop()
    t0 = rig.clock.monotonic()
    assert driver.self_test() is True
    assert rig.clock.monotonic() - t0 >= 10.0  # datasheet: 10 s execution time
    rig.chip.malfunction = True
    assert driver.self_test() is False


def test_persist_and_reinit_round_trip_through_eeprom() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.stop()
    driver.set_sensor_altitude(500)
    driver.persist_settings()
    driver.set_sensor_altitude(1200)
    assert driver.sensor_altitude() == 1200
    driver.reinit()
    assert driver.sensor_altitude() == 500


# -- faults --------------------------------------------------------------------------------------
def test_absent_chip_raises_device_absent() -> None:
    rig = make_rig()
    rig.chip.faults.absent = True
    with pytest.raises(DeviceAbsentError) as info:
        rig.driver().start()
    assert info.value.address == ADDRESS and info.value.sensor == "scd4x"


def test_a_transient_nack_is_retried() -> None:
    rig = make_rig(co2_ppm=640.0)
    rig.chip.faults.nack_next = 1
    driver = rig.driver()
    driver.start()
    assert driver.read().co2_ppm == 640.0
    assert rig.chip.faults.nack_next == 0


def test_nacks_beyond_the_retries_raise_device_absent() -> None:
    rig = make_rig()
    rig.chip.faults.nack_next = 3
    with pytest.raises(DeviceAbsentError):
        rig.driver().start()


def test_bus_timeout_raises_sensor_timeout() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    rig.chip.faults.timeout = True
    with pytest.raises(SensorTimeoutError):
        driver.read()


def test_corrupted_crc_raises_crc_error_with_received_and_expected() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    rig.chip.faults.corrupt_crc = 1
    with pytest.raises(CrcError) as info:
        driver.read()
    wire = rig.bus.log[-1].data
    err = info.value
    assert (err.data, err.received, err.expected) == (wire[0:2], wire[2], crc8(wire[0:2]))
    assert err.received != err.expected


def test_stuck_not_ready_raises_not_ready_within_one_period() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.start()
    rig.chip.faults.stuck_not_ready = True
    t0 = rig.clock.monotonic()
    with pytest.raises(NotReadyError):
        driver.read()
    assert PERIOD_S <= rig.clock.monotonic() - t0 <= PERIOD_S + 2.0


def test_drift_shows_in_the_reading() -> None:
    rig = make_rig(co2_ppm=500.0)
    rig.chip.faults.drift = {"co2_ppm": 300.0}
    driver = rig.driver()
    driver.start()
    assert driver.read().co2_ppm == 800.0


def test_set_temperature_offset_bytes_on_the_wire_with_the_sim() -> None:
    rig = make_rig()
    driver = rig.driver()
    driver.stop()
    driver.set_temperature_offset(5.4)
    assert rig.bus.log[-1] == Transfer(ADDRESS, "w", bytes.fromhex("241d07e648"))
    assert rig.chip.settings.temperature_offset_word == 0x07E6
