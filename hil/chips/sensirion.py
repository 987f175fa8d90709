"""Command/response core shared by the Sensirion chip simulators.

Behaves like the silicon: a command is the first one or two bytes of a write, argument words must
carry a valid CRC (the chip ignores the command otherwise), the response can be read only once the
command's execution time has passed (until then the chip NACKs its read header), and it can be read
once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.clock import Clock
from drivers.sensirion import crc8, pack_words
from hil.bus import nack
from hil.chips.base import EnvironmentSource, SimChip

Handler = Callable[[list[int]], Sequence[int] | None]


@dataclass(frozen=True, slots=True)
class SimCommand:
    """How the simulated chip treats one command id."""

    handler: Handler
    """Gets the argument words, returns the response words (or None for no response)."""
    exec_s: float = 0.0
    """Time before the response is readable (the read header is NACKed until then)."""
    args: int = 0


class SimSensirionChip(SimChip):
    """Parses command writes and serves framed, CRC-protected responses."""

    code_bytes = 2

    def __init__(self, address: int, env: EnvironmentSource, clock: Clock) -> None:
        super().__init__(address, env, clock)
        self.commands: dict[int, SimCommand] = {}
        self._response: bytes | None = None
        self._ready_at = 0.0
        self.received: list[int] = []
        """Every command id the chip accepted, in order (for tests)."""

    def accepts(self, code: int) -> bool:
        """Whether the chip acknowledges ``code`` in its current state (override per chip)."""
        return code in self.commands

    def write(self, data: bytes) -> None:
        if len(data) < self.code_bytes:
            raise nack(self.address)
        code = int.from_bytes(data[: self.code_bytes], "big")
        if not self.accepts(code):
            raise nack(self.address)
        command = self.commands[code]
        payload = data[self.code_bytes :]
        if len(payload) != 3 * command.args:
            raise nack(self.address)
        args = []
        for i in range(0, len(payload), 3):
            if crc8(payload[i : i + 2]) != payload[i + 2]:
                return  # datasheets: a command with a bad argument CRC is not executed
            args.append(int.from_bytes(payload[i : i + 2], "big"))
        self.received.append(code)
        words = command.handler(args)
        self._response = None if words is None else self.frame(words)
        self._ready_at = self.clock.monotonic() + command.exec_s

    def frame(self, words: Sequence[int]) -> bytes:
        """Frame words with CRC, corrupting one CRC when a fault asks for it."""
        data = bytearray(pack_words(words))
        if data and self.faults.take_corruption():
            data[2] ^= 0x5A
        return bytes(data)

    def read(self, length: int) -> bytes:
        if self._response is None or self.clock.monotonic() < self._ready_at:
            raise nack(self.address)
        data = self._response[:length]
        self._response = None
        return data + b"\xff" * (length - len(data))
