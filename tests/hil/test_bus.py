"""The simulated bus behaves like Linux i2c-dev towards a driver."""

from __future__ import annotations

import errno

import pytest
from smbus2 import i2c_msg

from hil.bus import SimulatedBus
from hil.faults import ChipFaults


class Echo:
    """A register file of 256 bytes with an auto-incrementing pointer."""

    def __init__(self, address: int) -> None:
        self.address = address
        self.faults = ChipFaults()
        self.regs = bytearray(range(256))
        self.pointer = 0

    def write(self, data: bytes) -> None:
        self.pointer = data[0]
        for i, b in enumerate(data[1:]):
            self.regs[(self.pointer + i) % 256] = b

    def read(self, length: int) -> bytes:
        out = bytes(self.regs[(self.pointer + i) % 256] for i in range(length))
        self.pointer = (self.pointer + length) % 256
        return out


def test_rdwr_fills_read_messages_and_logs_transfers() -> None:
    bus = SimulatedBus()
    bus.attach(Echo(0x40))
    write, read = i2c_msg.write(0x40, [0x10]), i2c_msg.read(0x40, 3)
    bus.i2c_rdwr(write, read)
    assert list(read) == [0x10, 0x11, 0x12]
    assert [(t.direction, t.data) for t in bus.log] == [("w", b"\x10"), ("r", b"\x10\x11\x12")]


def test_register_calls_are_write_then_read() -> None:
    bus = SimulatedBus()
    bus.attach(Echo(0x40))
    bus.write_i2c_block_data(0x40, 0x20, [7, 8])
    assert bus.read_i2c_block_data(0x40, 0x20, 2) == [7, 8]
    bus.write_byte_data(0x40, 0x30, 9)
    assert bus.read_byte_data(0x40, 0x30) == 9


def test_absent_address_and_faults_raise_like_i2c_dev() -> None:
    bus = SimulatedBus()
    chip = bus.attach(Echo(0x40))
    with pytest.raises(OSError) as nobody:
        bus.read_byte(0x41)
    assert nobody.value.errno == errno.EREMOTEIO
    chip.faults.nack_next = 1
    with pytest.raises(OSError):
        bus.write_quick(0x40)
    bus.write_quick(0x40)  # recovered
    chip.faults.timeout = True
    with pytest.raises(OSError) as slow:
        bus.read_byte(0x40)
    assert slow.value.errno == errno.ETIMEDOUT


def test_address_conflict_and_closed_bus() -> None:
    bus = SimulatedBus()
    bus.attach(Echo(0x40))
    with pytest.raises(ValueError, match="0x40 already in use"):
        bus.attach(Echo(0x40))
    bus.close()
    with pytest.raises(OSError):
        bus.read_byte(0x40)
