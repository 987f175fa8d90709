"""Broker fixtures: a real Mosquitto on a free loopback port, the broker matrix, a subscriber.

A test that takes ``mqtt_broker`` runs once per broker of the matrix (Mosquitto, RabbitMQ's MQTT
plugin); if it also takes ``protocol``, once per protocol each broker speaks. RabbitMQ is one node
for the whole session (it takes ~10 s to boot), so its retained messages and sessions outlive a
test: tests on it use a device id of their own.

Every message a subscriber receives is checked against its JSON Schema in ``docs/schemas/``
(``tests/support/wire_schemas.py``): a payload that breaks the written wire format fails the test
with the topic and the schema error. A test module that publishes made-up bodies through the MQTT
link marks it with ``pytest.mark.wire_envelope_only("telemetry", ...)``: those are checked against
the envelope only.
"""

from __future__ import annotations

import functools
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hil.broker import Broker, BrokerError, LocalBroker
from hil.broker import free_port as broker_free_port
from hil.pki import Pki, make_pki
from hil.rabbitmq import RabbitMqBroker
from tests.support.wire_schemas import check_message

BROKER_PROTOCOLS = {"mosquitto": ("3.1.1", "5"), "rabbitmq": ("3.1.1",)}


class Mosquitto(LocalBroker):
    """A real mosquitto (``hil.broker.LocalBroker``) whose start failures fail the test."""

    def start(self) -> None:
        try:
            super().start()
        except BrokerError as exc:
            pytest.fail(str(exc), pytrace=False)


def free_port() -> int:
    return broker_free_port()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Make (and start) brokers with extra config lines; all are killed at teardown."""
    brokers: list[Mosquitto] = []

    def make(
        extra_config: str = "", name: str = "mosquitto", *, persistence: bool = False
    ) -> Mosquitto:
        broker = Mosquitto(
            tmp_path, extra_config, name=f"{name}{len(brokers)}", persistence=persistence
        )
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``mqtt_broker`` (and ``protocol`` with it) over the broker matrix."""
    if "mqtt_broker" not in metafunc.fixturenames:
        return
    if "protocol" in metafunc.fixturenames:
        pairs = [(kind, p) for kind, protocols in BROKER_PROTOCOLS.items() for p in protocols]
        metafunc.parametrize(
            ("mqtt_broker", "protocol"),
            pairs,
            indirect=["mqtt_broker"],
            ids=[f"{kind}-{p}" for kind, p in pairs],
        )
    else:
        metafunc.parametrize("mqtt_broker", list(BROKER_PROTOCOLS), indirect=True)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[RabbitMqBroker]:
    """One RabbitMQ node for the run; closed (node, port mapper, files) however the run ends.

    SIGTERM (``timeout``, a CI runner) is turned into an interrupt while the node runs, so that
    this teardown runs; a SIGKILL still ends the node and its port mapper (they get SIGTERM when
    we die) but leaves the directory in /tmp.
    """
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        node = RabbitMqBroker()
        node.start()
    except BrokerError as exc:
        signal.signal(signal.SIGTERM, previous)
        pytest.fail(str(exc), pytrace=False)
    try:
        yield node
    finally:
        node.close()
        signal.signal(signal.SIGTERM, previous)
    left = node.leftovers()
    assert not left, f"RabbitMQ left behind: {left}"


@pytest.fixture
def mqtt_broker(
    request: pytest.FixtureRequest, mosquitto_factory: Callable[..., Mosquitto]
) -> Broker:
    """The broker of this parametrization, running; ``stop()``/``start()`` is an outage."""
    if request.param == "mosquitto":
        return mosquitto_factory(persistence=True)
    node: RabbitMqBroker = request.getfixturevalue("rabbitmq_node")
    try:
        node.start()  # a test that failed mid-outage leaves the application stopped
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return node


@pytest.fixture
def free_tcp_port() -> Callable[[], int]:
    """A free loopback port, e.g. for a second (TLS) listener of one broker."""
    return free_port


@pytest.fixture
def tls_broker(
    tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto]
) -> tuple[Mosquitto, int, Pki]:
    """A broker with a plain listener (the test's subscriber) plus a mutual-TLS one."""
    pki = make_pki(tmp_path / "pki", "remotair-test")
    tls_port = free_port()
    broker = mosquitto_factory(
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "require_certificate true\n"
    )
    return broker, tls_port, pki


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: object | None = None

    @functools.cached_property
    def document(self) -> Any:
        """The payload parsed as JSON, once: a wait re-evaluates its condition over every message
        received so far at each arrival, and re-parsing thousands of payloads each time made the
        subscriber, not the agent, the bottleneck of the long delivery tests."""
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A paho client that collects what it receives; every wait is bounded."""

    host: str
    port: int
    topics: tuple[str, ...]
    protocol: MQTTProtocolVersion = paho.MQTTv5
    client_id: str = ""
    """Non-empty: a persistent MQTT 3.1.1 session that survives reconnects and broker restarts
    (with a broker started with ``persistence=True``), so nothing published meanwhile is missed."""
    schema: str | None = None
    """Check every message against this schema (docs/schemas/), whatever its topic."""
    envelope_only: tuple[str, ...] = ()
    """Schemas whose bodies this test makes up: only their envelope is checked."""
    messages: list[Received] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        if self.client_id:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=paho.MQTTv311,
                clean_session=False,
            )
        else:
            self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=self.protocol)
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: paho.Client, *args: object) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, *args: object) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        error = check_message(
            msg.topic, bytes(msg.payload), schema=self.schema, envelope_only=self.envelope_only
        )
        with self._cond:
            if error is not None:
                self.schema_errors.append(error)
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), msg.retain, msg.qos, msg.properties)
            )
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> Subscriber:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"subscriber not subscribed to {self.topics} within {timeout} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                self.check_schemas()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"condition not met within {timeout} s; got {len(self.messages)} "
                        f"message(s): {[m.topic for m in self.messages[-10:]]}"
                    )
                self._cond.wait(remaining)
            self.check_schemas()
            return list(self.messages)

    def check_schemas(self) -> None:
        """Fail the test if any message received so far broke its schema."""
        with self._cond:
            if self.schema_errors:
                pytest.fail("\n".join(self.schema_errors), pytrace=False)

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)


@pytest.fixture
def subscribe(request: pytest.FixtureRequest) -> Iterator[Callable[..., Subscriber]]:
    """``subscribe(broker, "topic/#", ...)`` -> a started Subscriber, stopped at teardown.

    At teardown every message each subscriber received has been checked against its schema.
    """
    started: list[Subscriber] = []
    marker = request.node.get_closest_marker("wire_envelope_only")
    envelope_only = tuple(marker.args) if marker else ()

    def make(
        broker: Broker,
        *topics: str,
        protocol: MQTTProtocolVersion | None = None,
        client_id: str = "",
        schema: str | None = None,
    ) -> Subscriber:
        if protocol is None:  # the newest the broker speaks
            protocol = paho.MQTTv5 if "5" in broker.protocols else paho.MQTTv311
        subscriber = Subscriber(
            broker.host, broker.port, topics, protocol, client_id, schema, envelope_only
        ).start()
        started.append(subscriber)
        return subscriber

    yield make
    for subscriber in started:
        subscriber.stop()
    for subscriber in started:
        subscriber.check_schemas()
