"""Winsen MH-Z19 / MH-Z19B / MH-Z19C NDIR CO2 sensor on a UART (9600 baud, 8N1).

Every exchange is a 9-byte frame (MH-Z19B datasheet, "communication protocol"): the host sends
``FF 01 <command> <5 argument bytes> <checksum>``; for "read CO2" the sensor answers
``FF 86 <CO2 high> <CO2 low> .. .. .. .. <checksum>``. The checksum is the two's complement of the
sum of bytes 1..7. Byte 4 of the answer is an undocumented temperature (+40, whole degrees of the
sensor's own board): not a duct temperature, so it is not reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import CrcError, ProtocolError, SensorTimeoutError
from drivers.measurement import Measurement
from drivers.uart import SerialPort, read_up_to, require_timeout

log = logging.getLogger(__name__)

FRAME_LENGTH = 9
START_BYTE = 0xFF
SENSOR_NUMBER = 0x01
RESPONSE_DEADLINE_S = 1.0
"""An answer takes ~10 ms on the wire at 9600 baud; a second covers a busy sensor."""


@dataclass(frozen=True, slots=True)
class MHZ19Command:
    """One row of the datasheet's command table."""

    name: str
    code: int
    answers: bool
    """Whether the sensor sends a 9-byte answer (the datasheet lists none for the settings)."""


READ_CO2 = MHZ19Command("read CO2 concentration", 0x86, answers=True)
ZERO_POINT_CALIBRATION = MHZ19Command("zero point calibration (400 ppm)", 0x87, answers=False)
SELF_CALIBRATION = MHZ19Command("automatic baseline correction on/off", 0x79, answers=False)
DETECTION_RANGE = MHZ19Command("set detection range", 0x99, answers=False)

ABC_ON = 0xA0
ABC_OFF = 0x00
DETECTION_RANGES_PPM = (2000, 5000, 10000)


def mhz19_checksum(frame: bytes | bytearray) -> int:
    """Checksum of a 9-byte frame: 0xFF - (sum of bytes 1..7 mod 256) + 1, mod 256."""
    return (0xFF - (sum(frame[1:8]) % 256) + 1) % 256


def build_request(command: MHZ19Command, arguments: bytes = bytes(5)) -> bytes:
    """The 9 bytes the host sends for ``command`` with its 5 argument bytes (bytes 3..7)."""
    if len(arguments) != 5:
        raise ValueError(f"MH-Z19 commands take 5 argument bytes, got {len(arguments)}")
    frame = bytes([START_BYTE, SENSOR_NUMBER, command.code]) + arguments + b"\x00"
    return frame[:8] + bytes([mhz19_checksum(frame)])


class MHZ19:
    """An MH-Z19 on a serial port opened at 9600 8N1 with a read timeout."""

    chip = "mhz19"

    def __init__(self, serial: SerialPort, *, clock: Clock = SYSTEM_CLOCK) -> None:
        require_timeout(serial, sensor=self.chip)
        self.serial = serial
        self.clock = clock

    @property
    def _where(self) -> str:
        return f"port {self.serial.port}"

    def _send(self, command: MHZ19Command, arguments: bytes = bytes(5)) -> None:
        # Bytes left over from an earlier, interrupted exchange would shift the next answer.
        self.serial.reset_input_buffer()
        self.serial.write(build_request(command, arguments))

    def _query(self, command: MHZ19Command) -> bytes:
        self._send(command)
        frame = read_up_to(
            self.serial, FRAME_LENGTH, deadline_s=RESPONSE_DEADLINE_S, clock=self.clock
        )
        if len(frame) < FRAME_LENGTH:
            raise SensorTimeoutError(
                f"{self._where}: {len(frame)} of {FRAME_LENGTH} bytes answered to"
                f" '{command.name}' ({frame.hex() or 'nothing'}); check wiring (TX/RX crossed),"
                " 5 V supply and that the serial console is off",
                sensor=self.chip,
            )
        if frame[0] != START_BYTE or frame[1] != command.code:
            raise ProtocolError(
                f"{self._where}: answer {frame.hex()} does not start with"
                f" ff{command.code:02x} (start byte, command)",
                sensor=self.chip,
            )
        expected = mhz19_checksum(frame)
        if frame[8] != expected:
            raise CrcError(received=frame[8], expected=expected, data=frame[:8], sensor=self.chip)
        return frame

    def start(self) -> None:
        """Prove the sensor answers with a valid frame (the sensor measures continuously)."""
        co2 = self.read_co2_ppm()
        log.info("mhz19 started port=%s co2_ppm=%d", self.serial.port, co2)

    def read_co2_ppm(self) -> int:
        """The CO2 concentration in ppm (a fresh answer; the sensor updates it every ~1-5 s)."""
        frame = self._query(READ_CO2)
        return frame[2] << 8 | frame[3]

    def read(self) -> Measurement:
        return Measurement(co2_ppm=float(self.read_co2_ppm()))

    def calibrate_zero_point(self) -> None:
        """Declare the current air to be 400 ppm. Only after 20+ minutes in fresh outdoor air."""
        log.warning("mhz19 zero point calibration port=%s", self.serial.port)
        self._send(ZERO_POINT_CALIBRATION)

    def set_automatic_baseline_correction(self, enabled: bool) -> None:
        """ABC assumes the sensor sees 400 ppm at least once every 24 h; a duct that never airs
        out to fresh air drifts low with ABC on."""
        self._send(SELF_CALIBRATION, bytes([ABC_ON if enabled else ABC_OFF, 0, 0, 0, 0]))

    def set_detection_range(self, ppm: int) -> None:
        """Full scale of the reading (bytes 6-7 of the command, big-endian)."""
        if ppm not in DETECTION_RANGES_PPM:
            raise ValueError(f"detection range must be one of {DETECTION_RANGES_PPM}, got {ppm}")
        self._send(DETECTION_RANGE, bytes([0, 0, 0, ppm >> 8, ppm & 0xFF]))

    def stop(self) -> None:
        """Nothing to do: the sensor measures continuously whether it is read or not."""
