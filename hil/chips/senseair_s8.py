"""A byte-level Senseair S8 behind a simulated UART: a Modbus RTU slave.

Answers function 0x04 (read input registers) for IR1..IR4: meter status (``status_flags``), alarm
status, output status, CO2 in ppm. Other registers get exception 0x02 (illegal data address), a
register count of 0 or above 125 exception 0x03, other functions exception 0x01. It answers its own
address (0x68 by default) and the "any sensor" address 0xFE, echoing the address it was called by.
A request with a wrong CRC is dropped without an answer, as a Modbus slave does.

Faults: ``corrupt_crc`` flips the CRC of the next answers; ``drift`` offsets the sensed CO2;
``absent`` / ``timeout`` / ``nack_next`` are applied by :class:`hil.uart.SimulatedSerial`.
"""

from __future__ import annotations

from drivers.clock import Clock
from hil.chips.base import EnvironmentSource, SimChip

_ANY_ADDRESS = 0xFE
_REQUEST_LENGTH = 8
_MAX_REGISTERS = 125
_RANGE_PPM = 10000


def _crc16(data: bytes) -> int:
    # CRC-16/MODBUS, table-free: reflected 0x8005 (= 0xA001), init 0xFFFF.
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


class SimSenseairS8(SimChip):
    """The sensor end of the serial line; ``address`` is its Modbus address."""

    def __init__(self, env: EnvironmentSource, clock: Clock) -> None:
        super().__init__(0x68, env, clock)
        self._rx = bytearray()
        self.status_flags = 0
        """IR1 meter status; tests set error bits (0x01 fatal ... 0x40 memory error)."""
        self.requests: list[bytes] = []
        """Every request with a valid CRC addressed to this sensor (for tests)."""

    def co2_ppm(self) -> int:
        return int(min(max(round(self.sense().co2_ppm), 0), _RANGE_PPM))

    def input_registers(self) -> list[int]:
        """IR1..IR4 now."""
        return [self.status_flags & 0xFFFF, 0, 0, self.co2_ppm()]

    def feed(self, data: bytes) -> bytes:
        self._rx += data
        out = bytearray()
        while len(self._rx) >= _REQUEST_LENGTH:
            frame = bytes(self._rx[:_REQUEST_LENGTH])
            if _crc16(frame[:6]) != int.from_bytes(frame[6:8], "little"):
                self._rx.clear()  # a damaged frame: wait for the line to go quiet, drop it all
                break
            del self._rx[:_REQUEST_LENGTH]
            if frame[0] not in (self.address, _ANY_ADDRESS):
                continue
            self.requests.append(frame)
            out += self._answer(frame)
        return bytes(out)

    def _answer(self, frame: bytes) -> bytes:
        address, function = frame[0], frame[1]
        first = int.from_bytes(frame[2:4], "big")
        count = int.from_bytes(frame[4:6], "big")
        if function != 0x04:
            body = bytes([address, function | 0x80, 0x01])
        elif not 1 <= count <= _MAX_REGISTERS:
            body = bytes([address, 0x84, 0x03])
        elif first + count > 4:
            body = bytes([address, 0x84, 0x02])
        else:
            values = self.input_registers()[first : first + count]
            body = bytes([address, 0x04, 2 * count]) + b"".join(
                v.to_bytes(2, "big") for v in values
            )
        crc = bytearray(_crc16(body).to_bytes(2, "little"))
        if self.faults.take_corruption():
            crc[0] ^= 0xFF
        return body + bytes(crc)
