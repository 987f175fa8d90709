"""An ``smbus2.SMBus`` look-alike whose devices are byte-level chip simulators.

A device sees what a real chip sees: write transactions (bytes) and read transactions (a byte
count). Register-style SMBus calls become the same transactions a kernel adapter would produce
(a register write followed by a repeated-start read), so a driver exercises the same byte
sequences here as on a board.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from smbus2 import i2c_msg

from hil.faults import ChipFaults

I2C_M_RD = 0x0001


class SimulatedI2CDevice(Protocol):
    """What the simulated bus needs of a chip simulator."""

    address: int
    faults: ChipFaults

    def write(self, data: bytes) -> None:
        """A write transaction addressed to this chip."""

    def read(self, length: int) -> bytes:
        """A read transaction of ``length`` bytes; raise ``OSError(EREMOTEIO)`` to NACK."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transaction seen on the bus, for tests that check the bytes on the wire."""

    address: int
    direction: str  # "w" or "r"
    data: bytes


def nack(address: int) -> OSError:
    """The error Linux i2c-dev raises when nobody acknowledges ``address``."""
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO) + f" (0x{address:02x})")


class SimulatedBus:
    """A simulated I2C bus with the methods of ``smbus2.SMBus`` that drivers and scans use."""

    def __init__(self, bus: int = 1, *, log_size: int = 256) -> None:
        self.bus = bus
        self._devices: dict[int, SimulatedI2CDevice] = {}
        self._lock = threading.RLock()
        self.log: deque[Transfer] = deque(maxlen=log_size)
        self.closed = False

    # -- wiring -------------------------------------------------------------------------------
    def attach(self, device: SimulatedI2CDevice) -> SimulatedI2CDevice:
        with self._lock:
            if device.address in self._devices:
                raise ValueError(f"address 0x{device.address:02x} already in use on the bus")
            self._devices[device.address] = device
        return device

    def detach(self, address: int) -> None:
        with self._lock:
            self._devices.pop(address, None)

    def device(self, address: int) -> SimulatedI2CDevice | None:
        return self._devices.get(address)

    # -- transactions -------------------------------------------------------------------------
    def _target(self, address: int) -> SimulatedI2CDevice:
        if self.closed:
            raise OSError(errno.EBADF, "bus is closed")
        device = self._devices.get(address)
        if device is None or device.faults.take_nack():
            raise nack(address)
        if device.faults.timeout:
            raise OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
        return device

    def _write(self, address: int, data: bytes) -> None:
        self._target(address).write(data)
        self.log.append(Transfer(address, "w", data))

    def _read(self, address: int, length: int) -> bytes:
        data = bytes(self._target(address).read(length))
        if len(data) != length:
            raise AssertionError(f"simulator at 0x{address:02x} returned {len(data)} of {length}")
        self.log.append(Transfer(address, "r", data))
        return data

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        with self._lock:
            for msg in i2c_msgs:
                if msg.flags & I2C_M_RD:
                    data = self._read(msg.addr, msg.len)
                    ctypes.memmove(msg.buf, data, len(data))
                else:
                    self._write(msg.addr, bytes(msg))

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        with self._lock:
            self._target(i2c_addr)

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        with self._lock:
            return self._read(i2c_addr, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        with self._lock:
            self._write(i2c_addr, bytes([value]))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        with self._lock:
            self._write(i2c_addr, bytes([register]))
            return self._read(i2c_addr, 1)[0]

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        with self._lock:
            self._write(i2c_addr, bytes([register, value]))

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if not 0 < length <= 32:
            raise ValueError("SMBus block length must be 1..32")
        with self._lock:
            self._write(i2c_addr, bytes([register]))
            return list(self._read(i2c_addr, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > 32:
            raise ValueError("SMBus block length must be at most 32")
        with self._lock:
            self._write(i2c_addr, bytes([register, *data]))

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> SimulatedBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
