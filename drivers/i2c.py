"""The I2C bus as the drivers use it, and the translation of bus errors into sensor errors.

A driver only ever calls the methods of :class:`I2CBus`; ``smbus2.SMBus`` has them, and so has the
simulated bus in :mod:`hil.bus`, so the same driver code runs on a board and in the tests.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from smbus2 import i2c_msg

from drivers.clock import Clock
from drivers.errors import DeviceAbsentError, SensorError, SensorTimeoutError

T = TypeVar("T")

# Linux i2c-dev reports a NACKed address as EREMOTEIO (121) on the Pi's i2c-bcm2835, ENXIO (6) on
# some adapters and EIO (5) on others.
_ABSENT_ERRNOS = {errno.EREMOTEIO, errno.ENXIO, errno.EIO}
_TIMEOUT_ERRNOS = {errno.ETIMEDOUT, errno.EAGAIN}


class I2CBus(Protocol):
    """The subset of ``smbus2.SMBus`` that the drivers use."""

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...


def translate_os_error(exc: OSError, *, sensor: str, address: int) -> SensorError:
    """Turn an ``OSError`` from the bus into the sensor error it means."""
    if exc.errno in _ABSENT_ERRNOS:
        return DeviceAbsentError(
            f"no answer on the bus ({exc.strerror or exc}); is the chip connected and powered?",
            sensor=sensor,
            address=address,
        )
    if exc.errno in _TIMEOUT_ERRNOS:
        return SensorTimeoutError(
            f"bus timeout ({exc.strerror or exc})", sensor=sensor, address=address
        )
    return SensorError(f"bus error: {exc}", sensor=sensor, address=address)


def with_retries(
    operation: Callable[[], T],
    *,
    sensor: str,
    address: int,
    clock: Clock,
    attempts: int = 3,
    backoff_s: float = 0.005,
) -> T:
    """Run one bus transfer, retrying transient ``OSError`` a bounded number of times.

    A brown-out or EMI burst makes single transfers fail on long sensor cables; a chip that is
    really gone fails every attempt and is reported as absent after ``attempts`` tries.
    """
    last: OSError | None = None
    for attempt in range(attempts):
        try:
            return operation()
        except OSError as exc:
            last = exc
            if attempt + 1 < attempts:
                clock.sleep(backoff_s * (2**attempt))
    assert last is not None
    raise translate_os_error(last, sensor=sensor, address=address) from last


def i2c_write(bus: I2CBus, address: int, data: bytes) -> None:
    """One plain write transaction (START, address+W, data, STOP)."""
    bus.i2c_rdwr(i2c_msg.write(address, data))


def i2c_read(bus: I2CBus, address: int, length: int) -> bytes:
    """One plain read transaction of ``length`` bytes."""
    msg = i2c_msg.read(address, length)
    bus.i2c_rdwr(msg)
    return bytes(msg)
