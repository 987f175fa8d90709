"""SHT4x driver through the simulated bus: datasheet vectors, wire bytes, every fault."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from drivers.errors import CrcError, DeviceAbsentError, NotReadyError, SensorTimeoutError
from drivers.sensirion import crc8
from drivers.sht4x import SHT4x
from hil.bus import SimulatedBus, Transfer, nack
from hil.chips.sht4x import SimSHT4x
from hil.clock import SimClock
from hil.faults import ChipFaults
from hil.world import FixedEnvironment

ADDRESS = 0x44
# One LSB of the 16-bit outputs, datasheet conversion: 175 degC and 125 %RH over 65535 steps.
T_LSB = 175 / 65535
RH_LSB = 125 / 65535


@dataclass
class Rig:
    clock: SimClock
    bus: SimulatedBus
    chip: SimSHT4x
    env: FixedEnvironment
    driver: SHT4x


def make_rig(**env_values: float) -> Rig:
    clock = SimClock()
    bus = SimulatedBus()
    env = FixedEnvironment(**env_values)
    chip = SimSHT4x(env, clock)
    bus.attach(chip)
    return Rig(clock, bus, chip, env, SHT4x(bus, clock=clock))


class ScriptedSHT4x:
    """A stand-in chip that answers a measurement with fixed bytes (datasheet framing)."""

    address = ADDRESS

    def __init__(self, response: bytes) -> None:
        self.faults = ChipFaults()
        self.response = response

    def write(self, data: bytes) -> None:
        if data != b"\xfd":
            raise nack(self.address)

    def read(self, length: int) -> bytes:
        return self.response[:length]


def framed(*words: int) -> bytes:
    out = b""
    for word in words:
        pair = word.to_bytes(2, "big")
        out += pair + bytes([crc8(pair)])
    return out


def test_crc8_matches_the_datasheet_example() -> None:
    assert crc8(b"\xbe\xef") == 0x92


@pytest.mark.parametrize(
    ("raw_t", "raw_rh", "temperature_c", "humidity_rh"),
    [
        # 0x6666 = 0.4 * 65535: T = -45 + 0.4 * 175 = 25.0, RH = -6 + 0.4 * 125 = 44.0
        (0x6666, 0x6666, 25.0, 44.0),
        # 0xCCCC = 0.8 * 65535: T = 95.0, RH = 94.0
        (0xCCCC, 0xCCCC, 95.0, 94.0),
        # full scale: T = 130.0; RH = 119 -> cropped to 100; zero: T = -45, RH = -6 -> 0
        (0xFFFF, 0xFFFF, 130.0, 100.0),
        (0x0000, 0x0000, -45.0, 0.0),
    ],
)
def test_raw_words_convert_as_the_datasheet_says(
    raw_t: int, raw_rh: int, temperature_c: float, humidity_rh: float
) -> None:
    clock = SimClock()
    bus = SimulatedBus()
    bus.attach(ScriptedSHT4x(framed(raw_t, raw_rh)))
    reading = SHT4x(bus, clock=clock).read()
    assert reading.temperature_c == pytest.approx(temperature_c, abs=1e-9)
    assert reading.humidity_rh == pytest.approx(humidity_rh, abs=1e-9)
    assert reading.co2_ppm is None and reading.pressure_pa is None


def test_read_returns_the_environment_within_one_lsb() -> None:
    rig = make_rig(temperature_c=23.7, humidity_rh=61.2)
    rig.driver.start()
    reading = rig.driver.read()
    assert reading.temperature_c == pytest.approx(23.7, abs=T_LSB)
    assert reading.humidity_rh == pytest.approx(61.2, abs=RH_LSB)


def test_humidity_is_cropped_to_the_physical_range() -> None:
    rig = make_rig(humidity_rh=100.0)
    assert rig.driver.read().humidity_rh == pytest.approx(100.0, abs=RH_LSB)
    rig.env.set(humidity_rh=0.0)
    humidity = rig.driver.read().humidity_rh
    assert humidity is not None and 0.0 <= humidity <= RH_LSB


def test_measurement_bytes_on_the_wire_follow_the_datasheet_framing() -> None:
    rig = make_rig()
    rig.driver.read()
    command, response = list(rig.bus.log)
    assert command == Transfer(ADDRESS, "w", b"\xfd")
    assert response.direction == "r" and len(response.data) == 6
    for i in (0, 3):
        assert response.data[i + 2] == crc8(response.data[i : i + 2])
    # the driver waited at least the datasheet's maximum high-precision duration (8.3 ms)
    assert rig.clock.monotonic() >= 0.0083


@pytest.mark.parametrize(("precision", "code"), [("medium", 0xF6), ("low", 0xE0)])
def test_lower_precision_sends_its_own_command(precision: str, code: int) -> None:
    rig = make_rig(temperature_c=30.0)
    driver = SHT4x(rig.bus, clock=rig.clock, precision=precision)  # type: ignore[arg-type]
    assert driver.read().temperature_c == pytest.approx(30.0, abs=T_LSB)
    assert rig.bus.log[0] == Transfer(ADDRESS, "w", bytes([code]))


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        SHT4x(SimulatedBus(), precision="ultra")  # type: ignore[arg-type]


def test_start_reads_the_serial_number() -> None:
    rig = make_rig()
    rig.driver.start()
    assert rig.bus.log[0] == Transfer(ADDRESS, "w", b"\x89")
    assert rig.bus.log[1].data == b"\x0b\xad" + bytes([crc8(b"\x0b\xad")]) + b"\xca\xfe" + bytes(
        [crc8(b"\xca\xfe")]
    )
    assert rig.driver.serial_number() == 0x0BADCAFE


def test_soft_reset_is_sent_and_the_chip_measures_afterwards() -> None:
    rig = make_rig(temperature_c=18.0)
    rig.driver.soft_reset()
    assert rig.bus.log[-1] == Transfer(ADDRESS, "w", b"\x94")
    assert rig.chip.received == [0x94]
    assert rig.driver.read().temperature_c == pytest.approx(18.0, abs=T_LSB)


def test_absent_chip_raises_device_absent() -> None:
    rig = make_rig()
    rig.chip.faults.absent = True
    with pytest.raises(DeviceAbsentError) as info:
        rig.driver.start()
    assert info.value.address == ADDRESS and info.value.sensor == "sht4x"
    with pytest.raises(DeviceAbsentError):
        rig.driver.read()


def test_nothing_at_the_address_raises_device_absent() -> None:
    with pytest.raises(DeviceAbsentError):
        SHT4x(SimulatedBus(), clock=SimClock()).start()


def test_a_transient_nack_is_retried() -> None:
    rig = make_rig(temperature_c=22.0)
    rig.chip.faults.nack_next = 1
    assert rig.driver.read().temperature_c == pytest.approx(22.0, abs=T_LSB)
    assert rig.chip.faults.nack_next == 0


def test_nacks_beyond_the_retries_raise_device_absent() -> None:
    rig = make_rig()
    rig.chip.faults.nack_next = 3
    with pytest.raises(DeviceAbsentError):
        rig.driver.read()


def test_bus_timeout_raises_sensor_timeout() -> None:
    rig = make_rig()
    rig.chip.faults.timeout = True
    with pytest.raises(SensorTimeoutError):
        rig.driver.read()


def test_corrupted_crc_raises_crc_error_with_received_and_expected() -> None:
    rig = make_rig()
    rig.chip.faults.corrupt_crc = 1
    with pytest.raises(CrcError) as info:
        rig.driver.read()
    wire = rig.bus.log[-1].data
    err = info.value
    assert err.data == wire[0:2]
    assert err.received == wire[2]
    assert err.expected == crc8(wire[0:2])
    assert err.received != err.expected
    # the fault was for one response only: the next reading is good
    assert rig.driver.read().temperature_c is not None


def test_stuck_measurement_raises_not_ready_quickly() -> None:
    rig = make_rig()
    rig.chip.faults.stuck_not_ready = True
    with pytest.raises(NotReadyError):
        rig.driver.read()
    assert rig.clock.monotonic() < 0.1  # bounded: the wait plus a few retry back-offs


def test_drift_shows_in_the_reading() -> None:
    rig = make_rig(temperature_c=20.0, humidity_rh=50.0)
    rig.chip.faults.drift = {"temperature_c": 1.5, "humidity_rh": -4.0}
    reading = rig.driver.read()
    assert reading.temperature_c == pytest.approx(21.5, abs=T_LSB)
    assert reading.humidity_rh == pytest.approx(46.0, abs=RH_LSB)
