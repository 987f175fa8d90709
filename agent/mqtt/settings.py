"""The ``[mqtt]`` section: broker address, protocol, credentials, TLS files, limits, topics.

The link is given this model as the loader built it; its cross-field rules (``problems``) are the
only check, for a file and for settings built in code alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from agent import wire
from agent.config_base import Problem, SecretPath, Section, setting, topic_prefix_problem
from agent.errors import ExitCode, RemotairError

__all__ = ["MAX_INFLIGHT", "MqttError", "MqttSettings", "TlsSettings"]

MAX_INFLIGHT = 100
"""AWS IoT Core's limit on unacknowledged QoS 1 publishes a connection."""


class MqttError(RemotairError):
    """The MQTT settings cannot work (unreadable certificate, bad protocol name)."""

    exit_code = ExitCode.USAGE


class TlsSettings(Section):
    """TLS to the broker. Present (even empty) means TLS; empty uses the system CA store."""

    ca: SecretPath | None = setting(
        None, "CA bundle to verify the broker", secret=True, example="/etc/remotair/ca.pem"
    )
    cert: SecretPath | None = setting(
        None,
        "client certificate (AWS IoT Core style)",
        secret=True,
        example="credential:device-cert",
    )
    key: SecretPath | None = setting(
        None, "client private key", secret=True, example="credential:device-key", repr=False
    )
    alpn: str | None = setting(
        None,
        "ALPN protocol to offer (AWS IoT Core on port 443: x-amzn-mqtt-ca)",
        example="x-amzn-mqtt-ca",
    )

    def problems(self) -> Iterator[Problem]:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            yield (missing,), "cert and key go together: set both or neither"


class MqttSettings(Section):
    """The broker and how to talk to it."""

    host: str = setting("localhost", "broker host name or address")
    port: int = setting(
        1883, "broker port (8883 for TLS; not changed by [mqtt.tls])", ge=1, le=65535
    )
    protocol: Literal["3.1.1", "5"] = setting("3.1.1", "MQTT protocol version")
    client_id: str = setting("", "MQTT client id", auto="the device id", example="remotair-01")
    keepalive: int = setting(60, "keep-alive in seconds", ge=1, le=65535)
    username: str | None = setting(None, "user name", example="remotair-01")
    password: str | None = setting(
        None, "password (prefer password_file)", example="change-me", repr=False
    )
    password_file: SecretPath | None = setting(
        None, "file holding the password", secret=True, example="credential:mqtt-password"
    )
    handshake_timeout_s: float = setting(
        10.0, "TCP connect and TLS handshake timeout (and the wait for CONNACK)", gt=0
    )
    inflight: int = setting(20, "QoS 1 messages awaiting PUBACK at once", ge=1, le=MAX_INFLIGHT)
    max_publish_rate: float = setting(
        100.0, "publishes a second at most (AWS IoT Core: 100); 0 for no cap", ge=0
    )
    drops_to_give_up: int = setting(
        3,
        "set a message aside when the broker closed the connection this many times in a row"
        " with it in flight (MQTT 3.1.1 policy denial)",
        ge=2,
        le=100,
    )
    reconnect_min_s: float = setting(1.0, "first reconnect delay", gt=0)
    reconnect_max_s: float = setting(120.0, "longest reconnect delay (exponential back-off)", gt=0)
    topic_root: str = setting(wire.TOPIC_ROOT, "topic prefix before the id")
    reply_prefix: str | None = setting(
        None,
        "an MQTT 5 ResponseTopic may also start with this (besides the device's own topics)",
        example="replies/ops",
    )
    session_expiry_s: int = setting(
        86400,
        "keep the broker session (commands sent while offline) this long; 0: clean session"
        " (MQTT 3.1.1: any value > 0 means clean session off, the broker decides how long)",
        ge=0,
        le=0xFFFFFFFF,
    )
    ha_discovery: bool = setting(False, "publish Home Assistant discovery")
    ha_prefix: str = setting("homeassistant", "Home Assistant discovery prefix")
    tls: TlsSettings | None = setting(None, "[mqtt.tls]: enables TLS")

    def problems(self) -> Iterator[Problem]:
        if not self.host:
            yield ("host",), "must not be empty"
        if self.password is not None and self.password_file is not None:
            yield ("password_file",), "set password or password_file, not both"
        if self.reconnect_min_s > self.reconnect_max_s:
            yield (
                ("reconnect_max_s",),
                f"{self.reconnect_max_s:g} is less than reconnect_min_s {self.reconnect_min_s:g}",
            )
        keys = ("topic_root", "ha_prefix") + (("reply_prefix",) if self.reply_prefix else ())
        for key in keys:
            message = topic_prefix_problem(getattr(self, key))
            if message is None and key == "topic_root":
                try:
                    wire.check_topic_root(self.topic_root)
                except wire.WireError as exc:
                    message = str(exc)
            if message:
                yield (key,), message
