"""The serial port as the UART sensor drivers use it (``serial.Serial`` or the simulated port)."""

from __future__ import annotations

from typing import Protocol


class SerialPort(Protocol):
    """The subset of ``serial.Serial`` that the drivers use. ``read`` honours the port timeout."""

    port: str | None

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def reset_input_buffer(self) -> None: ...
