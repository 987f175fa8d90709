"""Senseair S8 NDIR CO2 sensor on a UART, Modbus RTU (9600 baud, 8N1).

Per the Senseair "Modbus on Senseair S8" specification: function 0x04 (read input registers),
IR1 (address 0x0000) is the meter status (error flags), IR4 (address 0x0003) the CO2 value in ppm.
Modbus address 0xFE is "any sensor", for a point-to-point line. Frames end with a CRC-16/MODBUS
(reflected polynomial 0xA001, init 0xFFFF), low byte first on the wire.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import CrcError, ProtocolError, SensorError, SensorTimeoutError
from drivers.measurement import Measurement
from drivers.uart import SerialPort, read_up_to, require_timeout

log = logging.getLogger(__name__)

ANY_ADDRESS = 0xFE
FUNCTION_READ_INPUT_REGISTERS = 0x04
EXCEPTION_FLAG = 0x80
RESPONSE_DEADLINE_S = 1.0
"""The S8 answers within a few tens of ms; a second covers a busy sensor."""


@dataclass(frozen=True, slots=True)
class InputRegister:
    """One input register of the S8 register map."""

    name: str
    address: int


METER_STATUS = InputRegister("IR1 meter status", 0x0000)
ALARM_STATUS = InputRegister("IR2 alarm status", 0x0001)
OUTPUT_STATUS = InputRegister("IR3 output status", 0x0002)
SPACE_CO2 = InputRegister("IR4 space CO2", 0x0003)

METER_STATUS_FLAGS: dict[int, str] = {
    0x0001: "fatal error",
    0x0002: "offset regulation error",
    0x0004: "algorithm error",
    0x0008: "output error",
    0x0010: "self-diagnostics error",
    0x0020: "out of range",
    0x0040: "memory error",
}
"""IR1 bits that mean the CO2 value must not be trusted."""

EXCEPTION_CODES: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "slave device failure",
}


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (send it low byte first)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    """``frame`` followed by its CRC, low byte first."""
    return frame + crc16_modbus(frame).to_bytes(2, "little")


def describe_meter_status(status: int) -> list[str]:
    """The names of the error flags set in an IR1 value."""
    return [name for bit, name in METER_STATUS_FLAGS.items() if status & bit]


class SenseairS8:
    """A Senseair S8 on a serial port opened at 9600 8N1 with a read timeout."""

    chip = "senseair_s8"

    def __init__(
        self,
        serial: SerialPort,
        *,
        clock: Clock = SYSTEM_CLOCK,
        modbus_address: int = ANY_ADDRESS,
    ) -> None:
        require_timeout(serial, sensor=self.chip)
        if not 1 <= modbus_address <= 0xFE:
            raise ValueError(f"Modbus address must be 1..254, got {modbus_address}")
        self.serial = serial
        self.clock = clock
        self.modbus_address = modbus_address

    def _fail(self, cls: type[SensorError], message: str) -> SensorError:
        return cls(f"port {self.serial.port}: {message}", sensor=self.chip)

    def _receive(self, size: int, received: bytes, what: str) -> bytes:
        more = read_up_to(self.serial, size, deadline_s=RESPONSE_DEADLINE_S, clock=self.clock)
        if len(more) < size:
            got = received + more
            raise self._fail(
                SensorTimeoutError,
                f"{len(got)} bytes answered to '{what}' ({got.hex() or 'nothing'}), expected"
                f" {len(received) + size}; check wiring (TX/RX crossed), supply and that the serial"
                " console is off",
            )
        return received + more

    def _check_crc(self, frame: bytes) -> None:
        expected = crc16_modbus(frame[:-2])
        received = int.from_bytes(frame[-2:], "little")
        if received != expected:
            raise CrcError(received=received, expected=expected, data=frame[:-2], sensor=self.chip)

    def read_input_registers(self, first: InputRegister, count: int = 1) -> list[int]:
        """Function 0x04: ``count`` registers from ``first`` (exceptions become ProtocolError)."""
        what = f"read {count} input register(s) from {first.name}"
        request = with_crc(
            bytes([self.modbus_address, FUNCTION_READ_INPUT_REGISTERS])
            + first.address.to_bytes(2, "big")
            + count.to_bytes(2, "big")
        )
        # Bytes left over from an earlier, interrupted exchange would shift the next answer.
        self.serial.reset_input_buffer()
        self.serial.write(request)
        head = self._receive(3, b"", what)
        if head[0] != self.modbus_address:
            raise self._fail(
                ProtocolError,
                f"answer from Modbus address 0x{head[0]:02x}, expected 0x{self.modbus_address:02x}",
            )
        if head[1] == FUNCTION_READ_INPUT_REGISTERS | EXCEPTION_FLAG:
            frame = self._receive(2, head, what)
            self._check_crc(frame)
            code = head[2]
            raise self._fail(
                ProtocolError,
                f"Modbus exception 0x{code:02x} ({EXCEPTION_CODES.get(code, 'unknown')})"
                f" to '{what}'",
            )
        if head[1] != FUNCTION_READ_INPUT_REGISTERS or head[2] != 2 * count:
            raise self._fail(
                ProtocolError,
                f"answer header {head.hex()} does not match function 0x04 with {2 * count} bytes",
            )
        frame = self._receive(2 * count + 2, head, what)
        self._check_crc(frame)
        payload = frame[3:-2]
        return [int.from_bytes(payload[i : i + 2], "big") for i in range(0, len(payload), 2)]

    def meter_status(self) -> int:
        """IR1: 0 when the sensor is healthy."""
        return self.read_input_registers(METER_STATUS)[0]

    def check_status(self) -> None:
        """Raise :class:`SensorError` naming every error flag set in IR1."""
        status = self.meter_status()
        flags = describe_meter_status(status)
        if flags:
            raise self._fail(SensorError, f"meter status 0x{status:04x} reports {', '.join(flags)}")

    def start(self) -> None:
        """Prove the sensor answers and reports no error (it measures continuously)."""
        self.check_status()
        log.info(
            "senseair_s8 started port=%s modbus_address=0x%02x",
            self.serial.port,
            self.modbus_address,
        )

    def read(self) -> Measurement:
        """Check IR1, then read IR4: a CO2 value is only returned from a healthy sensor."""
        self.check_status()
        return Measurement(co2_ppm=float(self.read_input_registers(SPACE_CO2)[0]))

    def stop(self) -> None:
        """Nothing to do: the sensor measures continuously whether it is read or not."""
