"""A byte-level Winsen MH-Z19 behind a simulated UART.

It buffers partial frames (a UART delivers bytes, not frames), skips line noise until a 0xFF
start byte, and ignores a request whose checksum is wrong, as the sensor does: no answer at all.
Answers "read CO2" (0x86) with ``FF 86 HH LL TT SS 00 00 CS``; accepts zero point calibration
(0x87), automatic baseline correction on/off (0x79) and detection range (0x99) silently, as the
datasheet lists no answer for them.

Faults: ``corrupt_crc`` flips the checksum byte of the next answers; ``drift`` offsets the sensed
CO2; ``absent`` / ``timeout`` / ``nack_next`` are applied by :class:`hil.uart.SimulatedSerial`
(no answer).
"""

from __future__ import annotations

from drivers.clock import Clock
from hil.chips.base import EnvironmentSource, SimChip

_FRAME = 9
_ZERO_POINT_PPM = 400.0


def _checksum(frame: bytes | bytearray) -> int:
    # Two's complement of the sum of bytes 1..7 (datasheet).
    return -sum(frame[1:8]) & 0xFF


class SimMHZ19(SimChip):
    """The sensor end of the serial line. UART chips have no bus address: ``address`` is 0."""

    def __init__(self, env: EnvironmentSource, clock: Clock) -> None:
        super().__init__(0, env, clock)
        self._rx = bytearray()
        self.abc_enabled = True
        """Factory default: automatic baseline correction on."""
        self.detection_range_ppm = 5000
        self.zero_offset_ppm = 0.0
        self.received: list[int] = []
        """Command bytes of every well-formed request, in order (for tests)."""

    def co2_ppm(self) -> int:
        """What the sensor reports now: sensed CO2 plus calibration offset, within its range."""
        value = self.sense().co2_ppm + self.zero_offset_ppm
        return int(min(max(round(value), 0), self.detection_range_ppm))

    def feed(self, data: bytes) -> bytes:
        self._rx += data
        out = bytearray()
        while True:
            start = self._rx.find(0xFF)
            if start < 0:
                self._rx.clear()
                break
            del self._rx[:start]
            if len(self._rx) < _FRAME:
                break
            frame = bytes(self._rx[:_FRAME])
            del self._rx[:_FRAME]
            if _checksum(frame) != frame[8]:
                continue  # a corrupted request is dropped without an answer
            out += self._execute(frame)
        return bytes(out)

    def _execute(self, frame: bytes) -> bytes:
        command = frame[2]
        self.received.append(command)
        if command == 0x86:
            co2 = self.co2_ppm()
            temperature = round(self.sense().temperature_c) + 40
            answer = bytearray([0xFF, 0x86, co2 >> 8, co2 & 0xFF, temperature & 0xFF, 0, 0, 0, 0])
            answer[8] = _checksum(answer)
            if self.faults.take_corruption():
                answer[8] ^= 0xFF
            return bytes(answer)
        if command == 0x87:
            self.zero_offset_ppm = _ZERO_POINT_PPM - self.sense().co2_ppm
        elif command == 0x79:
            self.abc_enabled = frame[3] == 0xA0
        elif command == 0x99:
            requested = frame[6] << 8 | frame[7]
            if requested:
                self.detection_range_ppm = requested
        return b""
