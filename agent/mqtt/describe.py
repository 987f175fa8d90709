"""One plain line for each way a broker connection fails, for logs and ``remotair status``."""

from __future__ import annotations

import socket
import ssl

from paho.mqtt.reasoncodes import ReasonCode

from agent.mqtt.settings import MqttSettings

__all__ = ["describe_connect_error", "describe_socket_error", "reason_text"]


def describe_connect_error(exc: BaseException, settings: MqttSettings) -> str:
    """One plain line for a failed TCP/TLS connection."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message} ({where})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {_ssl_reason(exc)} ({where})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where} (no broker listening?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {settings.handshake_timeout_s:g} s connecting to {where}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {settings.host}: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({where})"
    return f"{type(exc).__name__}: {exc} ({where})"


def describe_socket_error(text: str, *, tls: bool, connected: bool) -> str:
    """One plain line for an error paho met on an open socket (it only logs those)."""
    detail = text.split(": ", 1)[1] if text.startswith("failed to receive on socket: ") else text
    lowered = detail.lower()
    if "alert" in lowered:
        alert = detail.split("] ", 1)[-1].split(" (_ssl", 1)[0]
        hint = "" if connected else " (is the client certificate signed by a CA the broker trusts?)"
        return f"TLS: broker rejected the handshake: {alert}{hint}"
    if tls and not connected and ("eof" in lowered or "reset" in lowered):
        return (
            "TLS: broker closed the connection during the handshake (client certificate rejected?)"
        )
    if "ssl" in lowered:
        return f"TLS: {detail}"
    return detail


def reason_text(reason: ReasonCode | int | None) -> str:
    """An MQTT reason code as its name and hex value."""
    if isinstance(reason, ReasonCode):
        return f"{reason.getName()} (0x{reason.value:02x})"
    return str(reason)


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.lower().replace("_", " ")
    return str(exc)
