"""Senseair S8 driver: Modbus RTU frames, CRC-16/MODBUS, the simulated sensor, every fault."""

from __future__ import annotations

import pytest

from drivers.errors import CrcError, ProtocolError, SensorError, SensorTimeoutError
from drivers.senseair_s8 import (
    METER_STATUS,
    SPACE_CO2,
    InputRegister,
    SenseairS8,
    crc16_modbus,
)
from hil.chips.senseair_s8 import SimSenseairS8
from hil.clock import SimClock
from hil.uart import ScriptedUARTDevice, SimulatedSerial
from hil.world import Environment, FixedEnvironment

WORLD = Environment(
    temperature_c=22.0,
    humidity_rh=45.0,
    pressure_pa=101_325.0,
    co2_ppm=987.3,
    filter_dp_pa=80.0,
    dirt=0.1,
)
READ_CO2_REQUEST = bytes.fromhex("fe0400030001d5c5")  # Senseair S8 Modbus doc example
READ_STATUS_REQUEST = bytes.fromhex("fe040000000125c5")


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def world() -> FixedEnvironment:
    return FixedEnvironment(WORLD)


@pytest.fixture
def sim(world: FixedEnvironment, clock: SimClock) -> SimSenseairS8:
    return SimSenseairS8(world, clock)


@pytest.fixture
def port(sim: SimSenseairS8) -> SimulatedSerial:
    return SimulatedSerial(sim, port="/dev/ttySIM1")


# -- CRC-16/MODBUS ------------------------------------------------------------------------------
def test_crc_check_value() -> None:
    # CRC catalogue check value of CRC-16/MODBUS over "123456789"
    assert crc16_modbus(b"123456789") == 0x4B37


def test_crc_of_the_s8_co2_request() -> None:
    assert crc16_modbus(READ_CO2_REQUEST[:6]).to_bytes(2, "little") == b"\xd5\xc5"


def test_crc_of_a_documented_answer() -> None:
    # FE 04 02 01 90 AC D8: 400 ppm, as printed in the S8 Modbus documentation
    assert crc16_modbus(bytes.fromhex("fe04020190")).to_bytes(2, "little") == b"\xac\xd8"


# -- reading --------------------------------------------------------------------------------------
def test_read_on_the_wire(port: SimulatedSerial, clock: SimClock) -> None:
    reading = SenseairS8(port, clock=clock).read()
    assert port.sent == [READ_STATUS_REQUEST, READ_CO2_REQUEST]
    assert reading.co2_ppm == 987
    assert reading.temperature_c is None


def test_decodes_a_documented_answer(clock: SimClock) -> None:
    port = SimulatedSerial(ScriptedUARTDevice(bytes.fromhex("fe04020190acd8")))
    assert SenseairS8(port, clock=clock).read_input_registers(SPACE_CO2) == [400]


def test_follows_the_world(port: SimulatedSerial, world: FixedEnvironment, clock: SimClock) -> None:
    sensor = SenseairS8(port, clock=clock)
    sensor.start()
    world.set(co2_ppm=1612.0)
    assert sensor.read().co2_ppm == 1612


def test_several_registers_in_one_request(
    port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock
) -> None:
    sim.status_flags = 0x0020
    values = SenseairS8(port, clock=clock).read_input_registers(METER_STATUS, 4)
    assert values == [0x0020, 0, 0, 987]
    assert port.sent == [bytes.fromhex("fe0400000004e5c6")]


def test_own_modbus_address(port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock) -> None:
    sensor = SenseairS8(port, clock=clock, modbus_address=0x68)
    assert sensor.read().co2_ppm == 987
    assert port.sent[-1][:6] == bytes.fromhex("680400030001")


def test_another_address_gets_no_answer(port: SimulatedSerial, clock: SimClock) -> None:
    with pytest.raises(SensorTimeoutError):
        SenseairS8(port, clock=clock, modbus_address=0x01).read()


def test_stale_bytes_are_discarded(port: SimulatedSerial, clock: SimClock) -> None:
    port._rx += b"\x03\xdb\x00"
    assert SenseairS8(port, clock=clock).read().co2_ppm == 987


def test_simulator_drops_a_request_with_a_bad_crc(sim: SimSenseairS8) -> None:
    assert sim.feed(READ_CO2_REQUEST[:6] + b"\xd5\xc6") == b""
    assert sim.requests == []


def test_simulator_buffers_partial_frames(sim: SimSenseairS8) -> None:
    assert sim.feed(READ_CO2_REQUEST[:3]) == b""
    answer = sim.feed(READ_CO2_REQUEST[3:])
    assert answer[:5] == bytes.fromhex("fe040203db")  # 987 ppm
    assert crc16_modbus(answer[:5]) == int.from_bytes(answer[5:], "little")


# -- faults ---------------------------------------------------------------------------------------
def test_exception_response(port: SimulatedSerial, clock: SimClock) -> None:
    sensor = SenseairS8(port, clock=clock)
    with pytest.raises(ProtocolError, match=r"exception 0x02 \(illegal data address\)"):
        sensor.read_input_registers(InputRegister("IR9", 0x0008))


def test_status_flags_raise_sensor_error(
    port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock
) -> None:
    sim.status_flags = 0x0001 | 0x0040
    with pytest.raises(SensorError, match="fatal error, memory error") as info:
        SenseairS8(port, clock=clock).read()
    assert type(info.value) is SensorError
    assert port.sent == [READ_STATUS_REQUEST]  # no CO2 value is read from a failing sensor


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (0x02, "offset regulation error"),
        (0x04, "algorithm error"),
        (0x08, "output error"),
        (0x10, "self-diagnostics error"),
        (0x20, "out of range"),
    ],
)
def test_each_status_flag_is_named(
    port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock, flags: int, name: str
) -> None:
    sim.status_flags = flags
    with pytest.raises(SensorError, match=name):
        SenseairS8(port, clock=clock).start()


def test_corrupted_crc(port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock) -> None:
    sensor = SenseairS8(port, clock=clock)
    sensor.start()
    sim.faults.corrupt_crc = 1
    with pytest.raises(CrcError) as info:
        sensor.read_input_registers(SPACE_CO2)
    assert info.value.received != info.value.expected
    assert info.value.expected == crc16_modbus(bytes.fromhex("fe040203db"))
    assert info.value.data == bytes.fromhex("fe040203db")
    assert sensor.read().co2_ppm == 987


@pytest.mark.parametrize("fault", ["absent", "timeout"])
def test_no_answer(port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock, fault: str) -> None:
    setattr(sim.faults, fault, True)
    with pytest.raises(SensorTimeoutError, match="nothing"):
        SenseairS8(port, clock=clock).read()


def test_short_answer(clock: SimClock) -> None:
    port = SimulatedSerial(ScriptedUARTDevice(bytes.fromhex("fe040203")))
    with pytest.raises(SensorTimeoutError, match="4 bytes"):
        SenseairS8(port, clock=clock).read_input_registers(SPACE_CO2)


@pytest.mark.parametrize("answer", ["fe03020190", "fe04040190", "68040201900000"])
def test_wrong_header(clock: SimClock, answer: str) -> None:
    frame = bytes.fromhex(answer)
    frame = frame + crc16_modbus(frame).to_bytes(2, "little")
    port = SimulatedSerial(ScriptedUARTDevice(frame))
    with pytest.raises(ProtocolError):
        SenseairS8(port, clock=clock).read_input_registers(SPACE_CO2)


def test_drift(port: SimulatedSerial, sim: SimSenseairS8, clock: SimClock) -> None:
    sim.faults.drift = {"co2_ppm": -150.0}
    assert SenseairS8(port, clock=clock).read().co2_ppm == 837
