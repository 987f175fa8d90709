"""The one TLS client context the link and ``doctor`` share."""

from __future__ import annotations

import ssl
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
