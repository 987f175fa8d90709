"""MH-Z19 driver: frames on the wire, checksum, the simulated sensor, every fault."""

from __future__ import annotations

import pytest

from drivers.errors import CrcError, ProtocolError, SensorTimeoutError
from drivers.mhz19 import MHZ19, READ_CO2, build_request, mhz19_checksum
from hil.chips.mhz19 import SimMHZ19
from hil.clock import SimClock
from hil.uart import ScriptedUARTDevice, SimulatedSerial
from hil.world import Environment, FixedEnvironment

WORLD = Environment(
    temperature_c=22.0,
    humidity_rh=45.0,
    pressure_pa=101_325.0,
    co2_ppm=1234.4,
    filter_dp_pa=80.0,
    dirt=0.1,
)
READ_REQUEST = bytes.fromhex("ff0186000000000079")  # datasheet "read CO2" command


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def world() -> FixedEnvironment:
    return FixedEnvironment(WORLD)


@pytest.fixture
def sim(world: FixedEnvironment, clock: SimClock) -> SimMHZ19:
    return SimMHZ19(world, clock)


@pytest.fixture
def port(sim: SimMHZ19) -> SimulatedSerial:
    return SimulatedSerial(sim, port="/dev/ttySIM0")


def test_checksum_of_datasheet_frames() -> None:
    assert mhz19_checksum(READ_REQUEST) == 0x79
    # datasheet example answer: FF 86 02 60 47 00 00 00 D1 (608 ppm)
    assert mhz19_checksum(bytes.fromhex("ff8602604700000000")) == 0xD1


def test_request_bytes() -> None:
    assert build_request(READ_CO2) == READ_REQUEST


def test_read_sends_the_datasheet_request(port: SimulatedSerial, clock: SimClock) -> None:
    reading = MHZ19(port, clock=clock).read()
    assert port.sent == [READ_REQUEST]
    assert reading.co2_ppm == 1234
    assert reading.temperature_c is None and reading.humidity_rh is None


def test_decodes_a_datasheet_answer(clock: SimClock) -> None:
    port = SimulatedSerial(ScriptedUARTDevice(bytes.fromhex("ff86026047000000d1")))
    assert MHZ19(port, clock=clock).read_co2_ppm() == 0x0260


def test_start_proves_the_sensor_answers(
    port: SimulatedSerial, sim: SimMHZ19, clock: SimClock
) -> None:
    MHZ19(port, clock=clock).start()
    assert sim.received == [0x86]


def test_follows_the_world(port: SimulatedSerial, world: FixedEnvironment, clock: SimClock) -> None:
    sensor = MHZ19(port, clock=clock)
    world.set(co2_ppm=415.0)
    assert sensor.read().co2_ppm == 415
    world.set(co2_ppm=2890.6)
    assert sensor.read().co2_ppm == 2891


def test_stale_bytes_are_discarded_before_a_request(port: SimulatedSerial, clock: SimClock) -> None:
    port._rx += b"\x86\x04\xd2"  # the tail of an answer nobody read
    assert MHZ19(port, clock=clock).read().co2_ppm == 1234


def test_setting_commands_on_the_wire(
    port: SimulatedSerial, sim: SimMHZ19, clock: SimClock
) -> None:
    sensor = MHZ19(port, clock=clock)
    sensor.set_automatic_baseline_correction(False)
    sensor.set_detection_range(2000)
    sensor.calibrate_zero_point()
    assert port.sent == [
        bytes.fromhex("ff0179000000000086"),
        bytes.fromhex("ff019900000007d08f"),
        bytes.fromhex("ff0187000000000078"),
    ]
    assert sim.abc_enabled is False
    assert sim.detection_range_ppm == 2000
    # zero point: the current air (1234 ppm true) now reads 400 ppm
    assert sensor.read().co2_ppm == 400
    sensor.set_automatic_baseline_correction(True)
    assert port.sent[-1] == bytes.fromhex("ff0179a000000000e6")
    assert sim.abc_enabled is True


def test_detection_range_must_be_supported(port: SimulatedSerial, clock: SimClock) -> None:
    with pytest.raises(ValueError):
        MHZ19(port, clock=clock).set_detection_range(3000)


def test_port_without_timeout_is_refused(sim: SimMHZ19) -> None:
    port = SimulatedSerial(sim)
    port.timeout = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="timeout"):
        MHZ19(port)


def test_simulator_ignores_a_request_with_a_bad_checksum(sim: SimMHZ19) -> None:
    assert sim.feed(READ_REQUEST[:8] + b"\x78") == b""
    assert sim.received == []


def test_simulator_buffers_partial_frames(sim: SimMHZ19) -> None:
    assert sim.feed(b"\x00" + READ_REQUEST[:4]) == b""
    answer = sim.feed(READ_REQUEST[4:])
    assert answer[:4] == bytes.fromhex("ff8604d2")  # 1234 ppm
    assert mhz19_checksum(answer) == answer[8]


# -- faults ---------------------------------------------------------------------------------------
def test_corrupted_checksum(port: SimulatedSerial, sim: SimMHZ19, clock: SimClock) -> None:
    sim.faults.corrupt_crc = 1
    sensor = MHZ19(port, clock=clock)
    with pytest.raises(CrcError) as info:
        sensor.read()
    assert info.value.received == info.value.expected ^ 0xFF
    assert info.value.data[:4] == bytes.fromhex("ff8604d2")
    assert sensor.read().co2_ppm == 1234  # one corrupted answer, then healthy again


@pytest.mark.parametrize("fault", ["absent", "timeout"])
def test_no_answer(port: SimulatedSerial, sim: SimMHZ19, clock: SimClock, fault: str) -> None:
    setattr(sim.faults, fault, True)
    with pytest.raises(SensorTimeoutError, match="0 of 9 bytes"):
        MHZ19(port, clock=clock).read()


def test_transient_silence_then_recovery(
    port: SimulatedSerial, sim: SimMHZ19, clock: SimClock
) -> None:
    sim.faults.nack_next = 1
    sensor = MHZ19(port, clock=clock)
    with pytest.raises(SensorTimeoutError):
        sensor.read()
    assert sensor.read().co2_ppm == 1234


def test_short_answer(clock: SimClock) -> None:
    port = SimulatedSerial(ScriptedUARTDevice(bytes.fromhex("ff8604d2")))
    with pytest.raises(SensorTimeoutError, match="4 of 9 bytes"):
        MHZ19(port, clock=clock).read()


@pytest.mark.parametrize("answer", ["fe8604d2000000000000", "ff8704d20000000000"])
def test_wrong_header(clock: SimClock, answer: str) -> None:
    frame = bytearray(bytes.fromhex(answer)[:9])
    frame[8] = mhz19_checksum(frame)
    port = SimulatedSerial(ScriptedUARTDevice(bytes(frame)))
    with pytest.raises(ProtocolError):
        MHZ19(port, clock=clock).read()


def test_drift(port: SimulatedSerial, sim: SimMHZ19, clock: SimClock) -> None:
    sim.faults.drift = {"co2_ppm": 300.0}
    assert MHZ19(port, clock=clock).read().co2_ppm == 1534
