"""What each broker of the matrix does differently, pinned down as docs/brokers.md states it.

The agent's own behaviour on each broker is tested in test_mqtt.py; these tests hold the brokers
to the table that operators read, so a broker upgrade that changes a row fails here first.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from hil.broker import Broker

pytestmark = pytest.mark.broker

WAIT_S = 10.0


@dataclass(frozen=True)
class Behaviour:
    mqtt5: bool
    retained_on_wildcard_filters: bool
    granted_qos_for_2: int


EXPECTED = {
    "mosquitto": Behaviour(mqtt5=True, retained_on_wildcard_filters=True, granted_qos_for_2=2),
    "rabbitmq": Behaviour(mqtt5=False, retained_on_wildcard_filters=False, granted_qos_for_2=1),
}


class Client:
    """A paho client whose connect, subscribe and receive are events with bounded waits."""

    def __init__(
        self,
        broker: Broker,
        client_id: str = "",
        *,
        protocol: MQTTProtocolVersion = paho.MQTTv311,
        clean_session: bool = True,
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if protocol == paho.MQTTv5 else clean_session,
        )
        self.broker = broker
        self.connected = threading.Event()
        self.answered = threading.Event()  # connected, or refused / closed by the broker
        self.granted: list[int] = []
        self.messages: list[paho.MQTTMessage] = []
        self._subscribed = threading.Event()
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.answered.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: object,
        code: ReasonCode,
        *rest: object,
    ) -> None:
        if not code.is_failure:
            self.connected.set()
        self.answered.set()

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        codes: list[ReasonCode],
        *rest: object,
    ) -> None:
        self.granted = [code.value for code in codes]
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def connect(self) -> Client:
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        return self

    def wait_connected(self) -> Client:
        assert self.connected.wait(WAIT_S), "no CONNACK"
        return self

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self._subscribed.wait(WAIT_S), f"no SUBACK for {topic}"
        return self.granted

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT_S)

    def wait_for(self, topic: str, count: int = 1) -> list[paho.MQTTMessage]:
        """Everything received until ``count`` messages on ``topic`` are in."""
        with self._cond:
            arrived = self._cond.wait_for(
                lambda: sum(m.topic == topic for m in self.messages) >= count, WAIT_S
            )
            assert arrived, f"not {count} message(s) on {topic} within {WAIT_S} s"
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(broker: Broker, client_id: str = "", **options: object) -> Client:
        client = Client(broker, client_id, **options)  # type: ignore[arg-type]
        made.append(client)
        return client.connect()

    yield make
    for client in made:
        client.close()


@pytest.fixture
def base() -> str:
    """A topic root of the test's own: the RabbitMQ node's retained messages outlive a test."""
    return f"remotair/v1/matrix-{uuid.uuid4().hex[:8]}"


def test_mqtt5_connect(mqtt_broker: Broker, clients: Callable[..., Client]) -> None:
    client = clients(mqtt_broker, protocol=paho.MQTTv5)
    assert client.answered.wait(WAIT_S), "the broker neither accepted nor refused"
    assert client.connected.is_set() is EXPECTED[mqtt_broker.kind].mqtt5


def test_retained_status_on_exact_and_wildcard_filters(
    mqtt_broker: Broker, clients: Callable[..., Client], base: str
) -> None:
    publisher = clients(mqtt_broker).wait_connected()
    publisher.publish(f"{base}/status", b"online", retain=True)
    exact = clients(mqtt_broker).wait_connected()
    exact.subscribe(f"{base}/status")
    [retained] = exact.wait_for(f"{base}/status")
    assert (retained.payload, retained.retain) == (b"online", True)
    wildcard = clients(mqtt_broker).wait_connected()
    wildcard.subscribe(f"{base}/#")
    # A retained message is sent right after the SUBACK: a live marker published after the
    # SUBACK arrives after it, so whatever came before the marker is all that will come.
    publisher.publish(f"{base}/marker", b"live")
    before = wildcard.wait_for(f"{base}/marker")
    got_retained = any(m.topic == f"{base}/status" and m.retain for m in before)
    assert got_retained is EXPECTED[mqtt_broker.kind].retained_on_wildcard_filters


def test_last_will_becomes_the_retained_status(
    mqtt_broker: Broker, clients: Callable[..., Client], base: str
) -> None:
    watcher = clients(mqtt_broker).wait_connected()
    watcher.subscribe(f"{base}/status")
    doomed = Client(mqtt_broker)
    doomed.client.will_set(f"{base}/status", b"offline", qos=1, retain=True)
    doomed.connect().wait_connected()
    doomed.client.loop_stop()
    sock = doomed.client.socket()
    assert sock is not None
    sock.close()  # the network dropped: no DISCONNECT, the will goes out
    [live] = watcher.wait_for(f"{base}/status")
    assert live.payload == b"offline"
    late = clients(mqtt_broker).wait_connected()
    late.subscribe(f"{base}/status")
    [kept] = late.wait_for(f"{base}/status")
    assert (kept.payload, kept.retain) == (b"offline", True)


def test_qos2_subscription_is_granted(
    mqtt_broker: Broker, clients: Callable[..., Client], base: str
) -> None:
    client = clients(mqtt_broker).wait_connected()
    assert client.subscribe(f"{base}/cmd/#", qos=2) == [
        EXPECTED[mqtt_broker.kind].granted_qos_for_2
    ]


def test_persistent_session_survives_a_broker_restart_and_gets_what_came_meanwhile(
    mqtt_broker: Broker, clients: Callable[..., Client], base: str
) -> None:
    client_id = f"matrix-{uuid.uuid4().hex[:8]}"
    away = clients(mqtt_broker, client_id, clean_session=False).wait_connected()
    away.subscribe(f"{base}/cmd/#")
    away.close()
    mqtt_broker.stop()
    mqtt_broker.start()
    publisher = clients(mqtt_broker).wait_connected()
    for n in range(3):
        publisher.publish(f"{base}/cmd/ping", str(n).encode())
    back = clients(mqtt_broker, client_id, clean_session=False).wait_connected()
    received = back.wait_for(f"{base}/cmd/ping", count=3)
    assert [m.payload for m in received] == [b"0", b"1", b"2"]
