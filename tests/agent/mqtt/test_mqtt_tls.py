"""The one TLS client context the link and ``doctor`` share."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from agent.mqtt import TlsSettings
from agent.mqtt.tls import client_context
from hil.pki import make_pki


def test_client_context_verifies_the_broker_and_loads_the_client_certificate(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    context = client_context(TlsSettings(ca=pki.ca, cert=pki.client_cert, key=pki.client_key))
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1


def test_a_key_that_does_not_match_the_certificate_is_an_ssl_error(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with pytest.raises(ssl.SSLError):
        client_context(TlsSettings(ca=pki.ca, cert=pki.client_cert, key=pki.rogue_key))


def test_a_missing_ca_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        client_context(TlsSettings(ca=tmp_path / "absent.pem"))


def test_alpn_is_offered_for_aws_iot_core_on_port_443(tmp_path: Path) -> None:
    """AWS IoT Core serves MQTT on 443 only to a client that offers ALPN x-amzn-mqtt-ca."""
    pki = make_pki(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server.set_alpn_protocols(["x-amzn-mqtt-ca"])
    seen_by_server: list[str | None] = []
    offered = ["x-amzn-mqtt-ca", None]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in offered:
                raw, _ = listener.accept()
                with server.wrap_socket(raw, server_side=True) as tls:
                    seen_by_server.append(tls.selected_alpn_protocol())

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        for alpn in offered:
            context = client_context(TlsSettings(ca=pki.ca, alpn=alpn))
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                assert tls.selected_alpn_protocol() == alpn
        thread.join(timeout=5)
    assert seen_by_server == offered
