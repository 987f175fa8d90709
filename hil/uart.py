"""A ``serial.Serial`` look-alike connected to a simulated UART sensor."""

from __future__ import annotations

import threading
from typing import Protocol

from hil.faults import ChipFaults


class SimulatedUARTDevice(Protocol):
    """A simulated chip behind a serial line."""

    faults: ChipFaults

    def feed(self, data: bytes) -> bytes:
        """Bytes the host sent; returns the bytes the chip answers with (possibly none)."""


class SimulatedSerial:
    """A serial port whose far end is a simulated chip.

    ``read`` returns at once with what the chip has sent, up to ``size`` bytes: on a real port a
    short read is what the timeout produces, so a driver sees the same thing here without waiting.
    """

    def __init__(
        self,
        device: SimulatedUARTDevice,
        port: str = "/dev/ttySIM0",
        baudrate: int = 9600,
        timeout: float = 1.0,
    ) -> None:
        self.device = device
        self.port: str | None = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.is_open = True
        self._rx = bytearray()
        self._lock = threading.Lock()
        self.sent: list[bytes] = []
        """Every write, for tests that check the bytes on the wire."""

    def write(self, data: bytes, /) -> int:
        if not self.is_open:
            raise OSError("port is closed")
        with self._lock:
            self.sent.append(bytes(data))
            faults = self.device.faults
            answer = self.device.feed(bytes(data))
            if not (faults.take_nack() or faults.timeout):
                self._rx += answer
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        with self._lock:
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._rx.clear()

    def close(self) -> None:
        self.is_open = False


class ScriptedUARTDevice:
    """A far end that answers every write with the same bytes: a malformed or foreign answer on
    demand, for testing how a driver copes with what no well-behaved simulator would send."""

    def __init__(self, answer: bytes) -> None:
        self.faults = ChipFaults()
        self.answer = answer

    def feed(self, data: bytes) -> bytes:
        return self.answer
