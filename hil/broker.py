"""A throwaway Mosquitto on loopback, for the demo, the tests and the benchmarks.

It is a real broker (the Debian ``mosquitto`` package), started on a free port with a generated
config; ``stop()`` and ``start()`` keep the port, so a test can take the broker away and bring it
back the way a network outage would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Protocol

START_TIMEOUT_S = 10.0


class BrokerError(RuntimeError):
    """A broker is missing or would not start."""


class Broker(Protocol):
    """What the tests need of any broker: where it listens, what it speaks, an outage on demand.

    ``stop()`` then ``start()`` is a broker restart on the same port.
    """

    kind: str
    host: str
    port: int
    protocols: frozenset[str]

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise BrokerError(
            "mosquitto is not installed: run `make setup broker` (or `apt-get install mosquitto`)"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def end_process(process: subprocess.Popen[bytes] | None, *, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; wait for it either way (no zombie left)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    await_or_kill(process, grace_s)


def await_or_kill(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """Wait ``grace_s`` for a process told to stop, then SIGKILL it and reap it."""
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalBroker:
    """One mosquitto process listening on ``host:port`` (a free loopback port by default)."""

    kind = "mosquitto"
    protocols = frozenset({"3.1.1", "5"})

    def __init__(
        self,
        directory: Path,
        extra_config: str = "",
        name: str = "mosquitto",
        *,
        persistence: bool = False,
        port: int | None = None,
    ) -> None:
        self.binary = mosquitto_binary()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.directory = directory
        self.config_path = directory / f"{name}.conf"
        self.log_path = directory / f"{name}.log"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true" if persistence else "persistence false",
            f"persistence_location {directory}/",
            f"persistence_file {name}.db",
            # A test subscriber may fall behind a fast drain; the default queue of 1000 QoS 1
            # messages per client would make the broker drop the rest.
            "max_queued_messages 1000000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # Otherwise mosquitto drops to the 'mosquitto' user and cannot read our directory.
            lines.append("user root")
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)], stdout=log_file, stderr=log_file
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if port_open(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"mosquitto did not accept connections on {self.host}:{self.port} within "
            f"{START_TIMEOUT_S:g} s; its log:\n{self.log_path.read_text(errors='replace')}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        end_process(process)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
