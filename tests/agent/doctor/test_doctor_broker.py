"""Doctor's broker checks against real brokers: the device's own certificate, a broker that
turns the client certificate down (Mosquitto with mutual TLS), a broker that drops an MQTT 5
client (RabbitMQ)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent import doctor
from agent.config import Config
from hil.pki import Pki, make_expired_certificate
from hil.rabbitmq import RabbitMqBroker

if TYPE_CHECKING:
    from conftest import Mosquitto

pytestmark = pytest.mark.broker


def tls_config(
    config_file: Callable[[str], Config], port: int, ca: Path, cert: Path, key: Path
) -> Config:
    return config_file(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[mqtt.tls]\nca = "{ca}"\ncert = "{cert}"\nkey = "{key}"\n'
    )


def test_a_client_certificate_the_broker_rejects_is_named_as_such(
    tls_broker: tuple[Mosquitto, int, Pki], config_file: Callable[[str], Config]
) -> None:
    _, tls_port, pki = tls_broker
    config = tls_config(config_file, tls_port, pki.ca, pki.rogue_cert, pki.rogue_key)
    checks = list(doctor.check_broker(config, timeout_s=3))
    last = checks[-1]
    assert last.status == "FAIL", checks
    assert "rejected the client certificate" in last.detail, last
    assert "wrong port" not in last.hint, last
    assert str(pki.rogue_cert) in last.hint or "[mqtt.tls] cert" in last.hint, last


def test_the_device_certificate_days_to_expiry_are_checked(
    tls_broker: tuple[Mosquitto, int, Pki], config_file: Callable[[str], Config]
) -> None:
    _, tls_port, pki = tls_broker
    config = tls_config(config_file, tls_port, pki.ca, pki.client_cert, pki.client_key)
    checks = {c.name: c for c in doctor.check_broker(config, timeout_s=3)}
    device = checks["device certificate"]
    assert device.status == "WARN", device  # the test PKI is valid for one day
    assert "valid 0 more days" in device.detail and "renew" in device.hint
    assert checks["mqtt"].status == "PASS", checks


def test_an_expired_device_certificate_fails(
    tmp_path: Path, config_file: Callable[[str], Config]
) -> None:
    cert, key = make_expired_certificate(tmp_path / "device")
    config = config_file(f'[mqtt.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    check = doctor.check_device_certificate(config)
    assert check is not None and check.status == "FAIL"
    assert "device certificate" in check.detail and "expired 10 days ago" in check.detail
    assert str(cert) in check.detail


def test_an_mqtt5_client_dropped_by_a_311_only_broker_gets_the_protocol_hint(
    rabbitmq_node: RabbitMqBroker, config_file: Callable[[str], Config]
) -> None:
    rabbitmq_node.start()
    config = config_file(
        f'[mqtt]\nhost = "{rabbitmq_node.host}"\nport = {rabbitmq_node.port}\nprotocol = "5"\n'
    )
    checks = list(doctor.check_broker(config, timeout_s=5))
    last = checks[-1]
    assert (last.name, last.status) == ("mqtt", "FAIL"), checks
    assert last.detail.startswith("the broker closed the connection without a CONNACK"), last
    assert 'protocol = "3.1.1"' in last.hint and "wrong port" not in last.hint
