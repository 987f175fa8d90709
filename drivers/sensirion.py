"""Sensirion I2C framing, shared by the SHT4x, SCD4x, SCD30 and SDP8xx drivers.

Every Sensirion chip sends 16-bit words, each followed by a CRC-8 (polynomial 0x31, init 0xFF,
no reflection, no final XOR; datasheet example 0xBEEF -> 0x92). Commands are declared as data
(:class:`Command`): id, execution time and response length, straight from each datasheet's
command table, so that a driver reads like that table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import CrcError
from drivers.i2c import I2CBus, i2c_read, i2c_write, with_retries

CRC8_POLYNOMIAL = 0x31
CRC8_INIT = 0xFF


def crc8(data: bytes) -> int:
    """Sensirion CRC-8 of ``data``."""
    crc = CRC8_INIT
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC8_POLYNOMIAL) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def pack_words(words: Sequence[int]) -> bytes:
    """Frame 16-bit words as the chip expects them: big-endian word, then its CRC."""
    out = bytearray()
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"word out of range: {word}")
        pair = word.to_bytes(2, "big")
        out += pair
        out.append(crc8(pair))
    return bytes(out)


def unpack_words(data: bytes, *, sensor: str = "", address: int | None = None) -> list[int]:
    """Check every word's CRC and return the words; raise :class:`CrcError` on the first bad one."""
    if len(data) % 3:
        raise ValueError(f"Sensirion response must be a multiple of 3 bytes, got {len(data)}")
    words = []
    for i in range(0, len(data), 3):
        pair, received = data[i : i + 2], data[i + 2]
        expected = crc8(pair)
        if received != expected:
            raise CrcError(
                received=received, expected=expected, data=pair, sensor=sensor, address=address
            )
        words.append(int.from_bytes(pair, "big"))
    return words


@dataclass(frozen=True, slots=True)
class Command:
    """One row of a datasheet command table."""

    name: str
    code: int
    wait_s: float
    """Execution time: how long the chip needs before it can be read or addressed again."""
    response_words: int = 0
    code_bytes: int = 2
    """SHT4x commands are one byte; every other Sensirion chip here uses two."""


class SensirionDevice:
    """Command/response transport for one Sensirion chip at one address."""

    def __init__(
        self, bus: I2CBus, address: int, *, sensor: str, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.bus = bus
        self.address = address
        self.sensor = sensor
        self.clock = clock

    def send(self, command: Command, args: Sequence[int] = ()) -> None:
        """Write a command (and its argument words), then wait its execution time."""
        frame = command.code.to_bytes(command.code_bytes, "big") + pack_words(args)
        with_retries(
            lambda: i2c_write(self.bus, self.address, frame),
            sensor=self.sensor,
            address=self.address,
            clock=self.clock,
        )
        self.clock.sleep(command.wait_s)

    def read_words(self, count: int) -> list[int]:
        """Read ``count`` CRC-checked words."""
        data = with_retries(
            lambda: i2c_read(self.bus, self.address, 3 * count),
            sensor=self.sensor,
            address=self.address,
            clock=self.clock,
        )
        return unpack_words(data, sensor=self.sensor, address=self.address)

    def query(self, command: Command, args: Sequence[int] = ()) -> list[int]:
        """Send a command and read its response words."""
        self.send(command, args)
        return self.read_words(command.response_words)
