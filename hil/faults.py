"""Fault injection switches. Each simulated part owns one of these; tests flip them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class ChipFaults:
    """Faults of one simulated chip (I2C or UART). Mutable on purpose: it is a control panel."""

    absent: bool = False
    """The chip is gone: every transfer is NACKed (I2C) or unanswered (UART)."""
    nack_next: int = 0
    """Transient: NACK the next N transfers, then recover (EMI, a brown-out)."""
    timeout: bool = False
    """Every transfer hangs until the bus gives up (ETIMEDOUT); UART: no answer."""
    corrupt_crc: int = 0
    """Corrupt the checksum of the next N responses; -1 corrupts every response."""
    stuck_not_ready: bool = False
    """The chip answers but never reports a new measurement."""
    drift: dict[str, float] = field(default_factory=dict)
    """Additive offset per quantity (``{"co2_ppm": 300.0}``): an ageing sensor."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take_nack(self) -> bool:
        """True when this transfer must be NACKed (consumes one transient NACK)."""
        with self._lock:
            if self.absent:
                return True
            if self.nack_next > 0:
                self.nack_next -= 1
                return True
            return False

    def take_corruption(self) -> bool:
        """True when this response's checksum must be corrupted (consumes one)."""
        with self._lock:
            if self.corrupt_crc < 0:
                return True
            if self.corrupt_crc > 0:
                self.corrupt_crc -= 1
                return True
            return False

    def clear(self) -> None:
        """Back to a healthy chip."""
        with self._lock:
            self.absent = self.timeout = self.stuck_not_ready = False
            self.nack_next = self.corrupt_crc = 0
            self.drift = {}


@dataclass
class CameraFaults:
    """Faults of one simulated camera."""

    dead: bool = False
    """Capture fails (unplugged ribbon cable, a dead sensor)."""
    black: bool = False
    """Frames arrive but are black (lens covered, LED off)."""
    frozen: bool = False
    """Every frame is the same as the last good one (a hung pipeline)."""

    def clear(self) -> None:
        self.dead = self.black = self.frozen = False
