"""One error family for every sensor failure, each carrying the context a technician needs."""

from __future__ import annotations


class SensorError(Exception):
    """Base of every sensor failure. ``sensor`` names the chip, ``address`` its bus address."""

    def __init__(self, message: str, *, sensor: str = "", address: int | None = None) -> None:
        self.sensor = sensor
        self.address = address
        where = sensor
        if address is not None:
            where = f"{sensor}@0x{address:02x}" if sensor else f"0x{address:02x}"
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message


class CrcError(SensorError):
    """A received checksum did not match the data (electrical noise, a loose wire, a wrong chip)."""

    def __init__(
        self,
        *,
        received: int,
        expected: int,
        data: bytes = b"",
        sensor: str = "",
        address: int | None = None,
    ) -> None:
        self.received = received
        self.expected = expected
        self.data = bytes(data)
        super().__init__(
            f"checksum mismatch: received 0x{received:02x}, expected 0x{expected:02x}"
            f" over {self.data.hex() or 'no data'}",
            sensor=sensor,
            address=address,
        )


class DeviceAbsentError(SensorError):
    """The chip did not answer (NACK, EIO/EREMOTEIO) or answered with the wrong identity."""


class NotReadyError(SensorError):
    """The chip answered but has no new measurement yet."""


class SensorTimeoutError(SensorError):
    """The bus or the chip did not complete within its time limit."""


class ProtocolError(SensorError):
    """A frame arrived with a wrong header, length or function code."""


class CameraError(Exception):
    """A camera could not deliver a frame (absent, busy, dead, unreadable file)."""

    def __init__(self, message: str, *, camera: str = "") -> None:
        self.camera = camera
        self.detail = message
        super().__init__(f"camera {camera}: {message}" if camera else message)
