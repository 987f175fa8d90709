"""What the MQTT link is configured with: broker address, protocol, TLS files, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent import wire
from agent.errors import ExitCode, RemotairError

__all__ = ["MqttError", "MqttSettings", "TlsSettings"]


class MqttError(RemotairError):
    """The MQTT settings cannot work (unreadable certificate, bad protocol name)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS with a CA and an optional client certificate (AWS IoT Core style, port 8883)."""

    ca: Path | None = None
    """CA bundle that signed the broker's certificate; None uses the system's CAs."""
    cert: Path | None = None
    key: Path | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    client_id: str = ""
    """Empty: the device id (AWS IoT Core policies usually key on the client id)."""
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: int = 60
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    handshake_timeout_s: float = 10.0
    """Bound on TCP connect + TLS handshake, and again on waiting for CONNACK."""
    inflight: int = 20
    """Messages published but not yet acknowledged, at most."""
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 120.0
    topic_root: str = wire.TOPIC_ROOT

    def __post_init__(self) -> None:
        if self.protocol not in ("3.1.1", "5"):
            raise MqttError(f"mqtt protocol {self.protocol!r}: use '3.1.1' or '5'")
        if not 0 < self.port < 65536:
            raise MqttError(f"mqtt port {self.port} is not a TCP port")
        if self.inflight < 1:
            raise MqttError(f"mqtt inflight {self.inflight} must be at least 1")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise MqttError(
                f"mqtt reconnect delays {self.reconnect_min_s}..{self.reconnect_max_s} s: "
                "need 0 < min <= max"
            )
        if self.handshake_timeout_s <= 0 or self.keepalive < 1:
            raise MqttError("mqtt handshake_timeout_s and keepalive must be positive")
        wire.check_topic_root(self.topic_root)
