"""systemd's notify protocol (``Type=notify``, watchdog) over ``$NOTIFY_SOCKET``, no dependency.

A datagram of ``KEY=VALUE`` lines to the socket systemd names; an abstract socket is written with
a leading ``@``. Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends readiness, status, watchdog and stopping notifications to systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        owned = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 1e6 if usec.isdigit() and owned else None
        """systemd's WatchdogSec; ping at least twice as often."""

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str) -> bool:
        if not self._address:
            return False
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
            return True
        except OSError as exc:
            log.warning("sd_notify failed socket=%s error=%s", self._address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send(READY="1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self) -> bool:
        return self.send(STOPPING="1")
