"""The serial port as the UART sensor drivers use it (``serial.Serial`` or the simulated port)."""

from __future__ import annotations

from typing import Protocol

from drivers.clock import Clock


class SerialPort(Protocol):
    """The subset of ``serial.Serial`` that the drivers use. ``read`` honours the port timeout."""

    port: str | None

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def reset_input_buffer(self) -> None: ...


def read_up_to(port: SerialPort, size: int, *, deadline_s: float, clock: Clock) -> bytes:
    """Read until ``size`` bytes arrived, the port's own timeout passed with nothing received, or
    ``deadline_s`` (on ``clock``) elapsed; a short result means the far end stopped answering.

    Every ``port.read`` is bounded by the port timeout, so a port opened without one (blocking
    forever) must be refused by the driver: see :func:`require_timeout`.
    """
    data = bytearray()
    deadline = clock.monotonic() + deadline_s
    while len(data) < size:
        chunk = port.read(size - len(data))
        if not chunk:
            break
        data += chunk
        if clock.monotonic() >= deadline:
            break
    return bytes(data)


def require_timeout(port: SerialPort, *, sensor: str) -> None:
    """Refuse a port opened without a read timeout: the driver would wait forever on a dead chip."""
    if getattr(port, "timeout", 1.0) is None:
        raise ValueError(
            f"{sensor}: serial port {port.port} has no read timeout; open it with timeout=1.0"
        )
