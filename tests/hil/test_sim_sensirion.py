"""The SHT4x and SCD4x simulators speak bytes the way the datasheets say the chips do."""

from __future__ import annotations

import errno

import pytest
from smbus2 import i2c_msg

from drivers import scd4x
from drivers.sensirion import crc8
from hil.bus import SimulatedBus
from hil.chips.scd4x import SimSCD4x
from hil.chips.sht4x import SimSHT4x
from hil.clock import SimClock
from hil.world import Environment

ENV = Environment(
    temperature_c=25.0,
    humidity_rh=44.0,
    pressure_pa=101_325.0,
    co2_ppm=555.0,
    filter_dp_pa=80.0,
    dirt=0.1,
)


def env() -> Environment:
    return ENV


def write(bus: SimulatedBus, address: int, data: bytes) -> None:
    bus.i2c_rdwr(i2c_msg.write(address, data))


def read(bus: SimulatedBus, address: int, length: int) -> bytes:
    msg = i2c_msg.read(address, length)
    bus.i2c_rdwr(msg)
    return bytes(msg)


def word(value: int) -> bytes:
    pair = value.to_bytes(2, "big")
    return pair + bytes([crc8(pair)])


def is_nack(exc: pytest.ExceptionInfo[OSError]) -> bool:
    return exc.value.errno == errno.EREMOTEIO


@pytest.fixture
def sht() -> tuple[SimClock, SimulatedBus, SimSHT4x]:
    clock = SimClock()
    bus = SimulatedBus()
    chip = SimSHT4x(env, clock)
    bus.attach(chip)
    return clock, bus, chip


@pytest.fixture
def scd() -> tuple[SimClock, SimulatedBus, SimSCD4x]:
    clock = SimClock()
    bus = SimulatedBus()
    chip = SimSCD4x(env, clock)
    bus.attach(chip)
    return clock, bus, chip


# -- SHT4x ---------------------------------------------------------------------------------------
def test_sht4x_quantises_with_the_inverse_datasheet_formulas(
    sht: tuple[SimClock, SimulatedBus, SimSHT4x],
) -> None:
    clock, bus, _ = sht
    write(bus, 0x44, b"\xfd")
    clock.advance(0.0083)
    # 25 degC and 44 %RH are exactly 0.4 of full scale: 0x6666 for both
    assert read(bus, 0x44, 6) == word(0x6666) + word(0x6666)


def test_sht4x_is_busy_during_the_measurement(
    sht: tuple[SimClock, SimulatedBus, SimSHT4x],
) -> None:
    clock, bus, _ = sht
    write(bus, 0x44, b"\xfd")
    clock.advance(0.005)
    with pytest.raises(OSError) as exc:
        read(bus, 0x44, 6)
    assert is_nack(exc)
    with pytest.raises(OSError):
        write(bus, 0x44, b"\x89")  # a new command is not acknowledged either
    clock.advance(0.004)
    assert len(read(bus, 0x44, 6)) == 6


def test_sht4x_result_can_be_read_once(sht: tuple[SimClock, SimulatedBus, SimSHT4x]) -> None:
    _, bus, _ = sht
    write(bus, 0x44, b"\x89")
    read(bus, 0x44, 6)
    with pytest.raises(OSError):
        read(bus, 0x44, 6)


def test_sht4x_stuck_never_delivers(sht: tuple[SimClock, SimulatedBus, SimSHT4x]) -> None:
    clock, bus, chip = sht
    chip.faults.stuck_not_ready = True
    write(bus, 0x44, b"\xfd")
    clock.advance(1.0)
    with pytest.raises(OSError):
        read(bus, 0x44, 6)


def test_sht4x_rejects_an_oversized_serial() -> None:
    with pytest.raises(ValueError):
        SimSHT4x(env, SimClock(), serial=1 << 32)


# -- SCD4x ---------------------------------------------------------------------------------------
def test_scd4x_ignores_a_command_whose_argument_crc_is_wrong(
    scd: tuple[SimClock, SimulatedBus, SimSCD4x],
) -> None:
    _, bus, chip = scd
    before = chip.settings.altitude_m
    bad = bytes.fromhex("2427 079e") + bytes([0x09 ^ 0xFF])
    write(bus, 0x62, bad)  # acknowledged on the wire, but not executed
    assert chip.settings.altitude_m == before
    assert 0x2427 not in chip.received
    write(bus, 0x62, bytes.fromhex("2427079e09"))  # datasheet example: 1950 m
    assert chip.settings.altitude_m == 1950


def test_scd4x_nacks_idle_only_commands_while_measuring(
    scd: tuple[SimClock, SimulatedBus, SimSCD4x],
) -> None:
    clock, bus, chip = scd
    write(bus, 0x62, b"\x21\xb1")
    assert chip.measuring
    for code in (b"\x36\x82", b"\x23\x18", b"\x36\x39", b"\x21\xb1"):
        with pytest.raises(OSError) as exc:
            write(bus, 0x62, code)
        assert is_nack(exc)
    write(bus, 0x62, bytes.fromhex("e000") + word(987))  # set_ambient_pressure is allowed
    clock.advance(0.001)
    write(bus, 0x62, b"\xe4\xb8")  # so is get_data_ready_status
    clock.advance(0.001)
    assert read(bus, 0x62, 3) == word(0x8000)
    write(bus, 0x62, b"\x3f\x86")  # and stop_periodic_measurement
    assert not chip.measuring


def test_scd4x_is_busy_while_stopping(scd: tuple[SimClock, SimulatedBus, SimSCD4x]) -> None:
    clock, bus, _ = scd
    write(bus, 0x62, b"\x3f\x86")
    clock.advance(0.499)
    with pytest.raises(OSError):
        write(bus, 0x62, b"\x36\x82")
    clock.advance(0.001)
    write(bus, 0x62, b"\x36\x82")
    clock.advance(0.001)
    serial = read(bus, 0x62, 9)
    assert serial == word(0x0E5A) + word(0x7B3C) + word(0x9D01)


def test_scd4x_new_sample_every_five_seconds(
    scd: tuple[SimClock, SimulatedBus, SimSCD4x],
) -> None:
    clock, bus, _ = scd

    def status() -> int:
        write(bus, 0x62, b"\xe4\xb8")
        clock.advance(0.001)
        return int.from_bytes(read(bus, 0x62, 3)[:2], "big") & 0x07FF

    write(bus, 0x62, b"\x21\xb1")
    clock.advance(4.9)
    assert status() == 0
    clock.advance(0.2)
    assert status() != 0
    write(bus, 0x62, b"\xec\x05")
    clock.advance(0.001)
    sample = read(bus, 0x62, 9)
    co2, temperature, humidity = sample[0:3], sample[3:6], sample[6:9]
    assert co2 == word(555)
    assert temperature == word(0x6666)  # 25 degC, default offset = default self-heating
    assert humidity == word(round(44.0 * 65535 / 100))
    assert status() == 0  # reading cleared it
    write(bus, 0x62, b"\xec\x05")  # no data in the buffer: read header NACKed
    clock.advance(0.001)
    with pytest.raises(OSError):
        read(bus, 0x62, 9)


def test_scd4x_stuck_never_sets_data_ready(
    scd: tuple[SimClock, SimulatedBus, SimSCD4x],
) -> None:
    clock, bus, chip = scd
    chip.faults.stuck_not_ready = True
    write(bus, 0x62, b"\x21\xb1")
    clock.advance(60.0)
    write(bus, 0x62, b"\xe4\xb8")
    clock.advance(0.001)
    assert read(bus, 0x62, 3) == word(0x8000)


def test_scd4x_rejects_an_oversized_serial() -> None:
    with pytest.raises(ValueError):
        SimSCD4x(env, SimClock(), serial=1 << 48)


def test_scd4x_sim_implements_every_command_of_the_driver_table() -> None:
    chip = SimSCD4x(env, SimClock())
    assert {c.code for c in scd4x.COMMANDS} <= set(chip.commands)
    for command in scd4x.COMMANDS:
        assert chip.commands[command.code].exec_s <= command.wait_s  # the driver waits enough
