"""Doctor's checks of the broker, step by step: the device's own certificate, DNS, TCP, TLS
(with the server certificate's days to expiry), MQTT CONNACK; every network step bounded by a
timeout. A broker that turns the client certificate down is named as such at whichever step
it does so (during the handshake with TLS 1.2, on the first read with TLS 1.3)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.doctor.checklist import (
    CERT_WARN_DAYS,
    NETWORK_TIMEOUT_S,
    Check,
    _fail,
    _pass,
    _warn,
    today_utc,
)
from agent.mqtt.describe import certificate_alert, describe_socket_error
from agent.mqtt.tls import client_context as tls_client_context


def check_broker(config: Config, timeout_s: float = NETWORK_TIMEOUT_S) -> Iterator[Check]:
    """DNS, TCP, TLS (with the server certificate's days to expiry), MQTT CONNACK; stops at the
    first failed step, since the later ones cannot succeed."""
    m = config.mqtt
    where = f"{m.host}:{m.port}"
    device = check_device_certificate(config)
    if device is not None:
        yield device  # a FAIL here is confirmed, or not, by the broker below
    try:
        addresses = _bounded(
            lambda: socket.getaddrinfo(m.host, m.port, type=socket.SOCK_STREAM),
            timeout_s,
            f"DNS lookup of {m.host}",
        )
    except OSError as exc:
        yield _fail(
            "broker",
            "dns",
            f"cannot resolve {m.host}: {exc}",
            "check [mqtt] host and the DNS server (/etc/resolv.conf, ping 8.8.8.8)",
        )
        return
    address = addresses[0][4][0]
    yield _pass("broker", "dns", f"{m.host} -> {address}")
    try:
        conn = socket.create_connection((address, m.port), timeout=timeout_s)
    except OSError as exc:
        yield _fail(
            "broker",
            "tcp",
            f"cannot connect to {where}: {exc.strerror or exc}",
            "is the broker running on that port? check [mqtt] port and any firewall",
        )
        return
    conn.close()
    yield _pass("broker", "tcp", f"{where} accepts connections")
    context: ssl.SSLContext | None = None
    if m.tls is not None:
        tls_check, context = _check_tls(config, address, timeout_s)
        yield tls_check
        if tls_check.status == "FAIL":
            return
    yield _check_connack(config, context, timeout_s)


def _check_tls(
    config: Config, address: str, timeout_s: float
) -> tuple[Check, ssl.SSLContext | None]:
    m = config.mqtt
    assert m.tls is not None
    try:
        context = tls_client_context(m.tls)
    except (OSError, ssl.SSLError) as exc:
        return (
            _fail(
                "broker",
                "tls",
                f"cannot load the [mqtt.tls] files: {exc}",
                "check the ca/cert/key paths and that the key matches the certificate",
            ),
            None,
        )
    try:
        der = _handshake(context, address, m.host, m.port, timeout_s)
    except ssl.SSLCertVerificationError as exc:
        unverified = _unverified_certificate(address, m.host, m.port, timeout_s)
        days = None if unverified is None else _days_left(unverified)
        if unverified is not None and days is not None and days < 0:
            return (
                _fail(
                    "broker",
                    "tls",
                    f"server certificate expired {-days} days ago"
                    f" (not after {_not_after(unverified).date()}; board clock says {today_utc()})",
                    "renew the broker's certificate (or fix the board clock if it is wrong)",
                ),
                None,
            )
        return (
            _fail(
                "broker",
                "tls",
                f"server certificate not trusted: {exc.verify_message}",
                "check [mqtt.tls] ca and that [mqtt] host matches the certificate's name",
            ),
            None,
        )
    except (OSError, ssl.SSLError) as exc:
        alert = certificate_alert(str(exc))
        if alert is not None:
            return _rejected_certificate("tls", config, alert), None
        return (
            _fail(
                "broker",
                "tls",
                f"TLS handshake with {m.host}:{m.port} failed: {exc}",
                "is this a TLS port (8883)? is the client certificate accepted by the broker?",
            ),
            None,
        )
    refusal = _client_certificate_refusal(config, address, timeout_s)
    if refusal is not None:
        return _rejected_certificate("tls", config, refusal), None
    days = _days_left(der)
    detail = f"handshake ok; server certificate valid {days} more days"
    if days < CERT_WARN_DAYS:
        return _warn("broker", "tls", detail, "renew the broker's certificate soon"), context
    return _pass("broker", "tls", detail), context


def _handshake(
    context: ssl.SSLContext, address: str, host: str, port: int, timeout_s: float
) -> bytes:
    with (
        socket.create_connection((address, port), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the server sent no certificate")
    return der


def _client_certificate_refusal(config: Config, address: str, timeout_s: float) -> str | None:
    """The alert of a broker that refuses the client certificate, from a TLS 1.2 handshake.

    With TLS 1.3 a handshake completes before the broker has checked the client certificate;
    one it refuses is only seen as a closed connection later (Mosquitto sends no alert at all).
    With TLS 1.2 the check is part of the handshake and a refusal is an alert that names it.
    A broker without TLS 1.2 leaves the question to the MQTT step.
    """
    tls = config.mqtt.tls
    if tls is None or tls.cert is None:
        return None
    context = tls_client_context(tls)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        _handshake(context, address, config.mqtt.host, config.mqtt.port, timeout_s)
    except (OSError, ssl.SSLError) as exc:
        return certificate_alert(str(exc))
    return None


def _unverified_certificate(address: str, host: str, port: int, timeout_s: float) -> bytes | None:
    """The server's certificate without verifying it: only to say *why* verification failed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        return _handshake(context, address, host, port, timeout_s)
    except (OSError, ssl.SSLError):
        return None


def check_device_certificate(config: Config) -> Check | None:
    """Days until the board's own (client) certificate expires; None without one.

    An expired device certificate is refused by the broker with nothing more than a TLS alert,
    so the board says it first, with the date.
    """
    tls = config.mqtt.tls
    if tls is None or tls.cert is None:
        return None
    from cryptography import x509

    path = Path(tls.cert)
    try:
        not_after = x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
    except (OSError, ValueError) as exc:
        return _fail(
            "broker",
            "device certificate",
            f"cannot read {path}: {exc}",
            "check [mqtt.tls] cert: a PEM certificate readable by the agent",
        )
    days = _days_until(not_after)
    if days < 0:
        return _fail(
            "broker",
            "device certificate",
            f"device certificate {path} expired {-days} days ago"
            f" (not after {not_after.date()}; board clock says {today_utc()})",
            "issue the board a new certificate and key (or fix the board clock if it is wrong)",
        )
    detail = f"device certificate {path} valid {days} more days (not after {not_after.date()})"
    if days < CERT_WARN_DAYS:
        return _warn("broker", "device certificate", detail, "renew the device certificate soon")
    return _pass("broker", "device certificate", detail)


def _rejected_certificate(step: str, config: Config, alert: str) -> Check:
    tls = config.mqtt.tls
    cert = tls.cert if tls is not None and tls.cert is not None else "no client certificate"
    return _fail(
        "broker",
        step,
        f"the broker rejected the client certificate (TLS alert: {alert})",
        f"is {cert} ([mqtt.tls] cert) signed by a CA the broker trusts, not expired, and "
        "registered and active for this board?",
    )


def _not_after(der: bytes) -> dt.datetime:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _days_left(der: bytes) -> int:
    return _days_until(_not_after(der))


def _days_until(not_after: dt.datetime) -> int:
    """Whole days until expiry; negative, in whole days elapsed, once expired."""
    left = not_after - dt.datetime.now(dt.UTC)
    return left.days if left >= dt.timedelta(0) else -(-left).days


def _check_connack(config: Config, context: ssl.SSLContext | None, timeout_s: float) -> Check:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    m = config.mqtt
    # Never the agent's own client id: the broker would disconnect the running agent.
    client_id = f"{m.client_id or config.device.id}-doctor-{os.getpid()}"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if m.protocol == "5" else paho.MQTTv311,
    )
    client.connect_timeout = timeout_s
    if context is not None:
        client.tls_set_context(context)
    if m.username:
        client.username_pw_set(m.username, m.password)
    answered = threading.Event()  # a CONNACK, or the connection closed without one
    reason: list[str] = []
    socket_errors: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, code: Any, _p: Any = None) -> None:
        reason.append("" if not code.is_failure else str(code))
        answered.set()

    def on_log(_c: Any, _u: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:  # paho only logs what it met on the socket
            socket_errors.append(text)

    client.on_connect = on_connect
    client.on_log = on_log
    client.on_disconnect = lambda *_args: answered.set()
    started = time.monotonic()
    try:
        client.connect(m.host, m.port, keepalive=max(5, int(timeout_s) * 2))
        client.loop_start()
        closed = answered.wait(timeout_s) and not reason  # before our own disconnect below
    except (OSError, ssl.SSLError) as exc:
        return _fail(
            "broker",
            "mqtt",
            f"MQTT connect failed: {exc}",
            "check the broker's log; TLS port and [mqtt.tls] must go together",
        )
    finally:
        client.disconnect()
        client.loop_stop()
    if closed:
        return _closed_without_connack(config, socket_errors, tls=context is not None)
    if not reason:
        return _fail(
            "broker",
            "mqtt",
            f"no CONNACK within {timeout_s:g} s",
            "something answers on the port but it is not an MQTT broker (wrong port?)",
        )
    if reason[0]:
        return _fail(
            "broker",
            "mqtt",
            f"broker refused the connection: {reason[0]}",
            "check [mqtt] username/password or the client certificate's policy",
        )
    ms = (time.monotonic() - started) * 1000
    return _pass("broker", "mqtt", f"CONNACK accepted in {ms:.0f} ms (MQTT {m.protocol})")


def _closed_without_connack(config: Config, socket_errors: list[str], *, tls: bool) -> Check:
    """The broker dropped the connection instead of answering CONNECT: say why, if anything did."""
    for text in socket_errors:
        alert = certificate_alert(text)
        if alert is not None:
            return _rejected_certificate("mqtt", config, alert)
    why = describe_socket_error(socket_errors[0], tls=tls, connected=False) if socket_errors else ""
    hint = "check the broker's log for why it dropped this client"
    if config.mqtt.protocol == "5":
        hint = (
            "a broker that speaks only MQTT 3.1.1 (RabbitMQ's MQTT plugin) drops MQTT 5 clients:"
            f' try [mqtt] protocol = "3.1.1"; else {hint}'
        )
    return _fail(
        "broker",
        "mqtt",
        "the broker closed the connection without a CONNACK" + (f": {why}" if why else ""),
        hint,
    )


def _bounded(action: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Run a call that has no timeout of its own (getaddrinfo) in a thread we stop waiting for."""
    box: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(action())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=target, name="doctor-bounded", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if errors:
        raise errors[0]
    if not box:
        raise TimeoutError(f"{what} took longer than {timeout_s:g} s")
    return box[0]
