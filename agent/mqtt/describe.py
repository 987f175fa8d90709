"""One plain line for each way a broker connection fails, for logs and ``remotair status``."""

from __future__ import annotations

import socket
import ssl

from paho.mqtt.reasoncodes import ReasonCode

from agent.mqtt.settings import MqttSettings

__all__ = ["certificate_alert", "describe_connect_error", "describe_socket_error", "reason_text"]

# TLS alerts a server sends about the certificate its client presented (RFC 8446 6.2): the
# broker turned the board's certificate down, whatever the port or the MQTT layer look like.
_CERTIFICATE_ALERTS = (
    "bad certificate",
    "unsupported certificate",
    "certificate revoked",
    "certificate expired",
    "certificate unknown",
    "unknown ca",
    "access denied",
    "certificate required",
)


def describe_connect_error(exc: BaseException, settings: MqttSettings) -> str:
    """One plain line for a failed TCP/TLS connection."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message} ({where})"
    if isinstance(exc, ssl.SSLError):
        alert = certificate_alert(str(exc))
        if alert is not None:
            return f"TLS: broker rejected the client certificate: {alert} ({where})"
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
    rejected = certificate_alert(detail)
    if rejected is not None:
        return f"TLS: broker rejected the client certificate: {rejected}"
    if "alert" in lowered:
        alert = _alert_text(detail)
        hint = "" if connected else " (is the client certificate signed by a CA the broker trusts?)"
        return f"TLS: broker rejected the handshake: {alert}{hint}"
    if tls and not connected and ("eof" in lowered or "reset" in lowered):
        return (
            "TLS: broker closed the connection during the handshake (client certificate rejected?)"
        )
    if "ssl" in lowered:
        return f"TLS: {detail}"
    return detail


def certificate_alert(text: str) -> str | None:
    """The TLS alert in an SSL error's text when it is about the client's certificate.

    With TLS 1.3 the broker checks the client certificate after the client has finished its
    side of the handshake, so the alert arrives on the first read: as an error paho logs, not
    as a failed connect.
    """
    if "alert" not in text.lower():
        return None
    alert = _alert_text(text)
    return alert if any(name in alert.lower() for name in _CERTIFICATE_ALERTS) else None


def _alert_text(text: str) -> str:
    """``[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)`` -> the words."""
    return text.split("] ", 1)[-1].split(" (_ssl", 1)[0]


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
