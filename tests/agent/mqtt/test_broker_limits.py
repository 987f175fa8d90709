"""AWS IoT Core's ways, against a real Mosquitto: a publish refused by closing the connection
(MQTT 3.1.1), the publish-rate cap, the in-flight limit."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
import pytest
from pydantic import ValidationError

from agent.mqtt import MqttLink, MqttSettings
from agent.mqtt.poison import DropWatch
from agent.outbox import MessageClass, Outbox
from tests.support.cutting_proxy import CuttingProxy
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Mosquitto, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.wire_envelope_only("telemetry", "alarm", "status")]

DEVICE = "limits-board"


def settings(port: int, **overrides: object) -> MqttSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "protocol": "3.1.1",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "handshake_timeout_s": 5.0,
        "keepalive": 10,
    }
    values.update(overrides)
    return MqttSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def link_for(tmp_path: Path) -> Iterator[Callable[[MqttSettings], tuple[MqttLink, Outbox]]]:
    made: list[tuple[MqttLink, Outbox]] = []

    def make(mqtt: MqttSettings) -> tuple[MqttLink, Outbox]:
        box = Outbox(tmp_path / f"o{len(made)}.db", DEVICE)
        link = MqttLink(mqtt, box, DEVICE, status_body=lambda: {"version": "test"})
        made.append((link, box))
        return link, box

    yield make
    for link, box in made:
        link.stop(flush_timeout_s=0.5)
        box.close()


@pytest.fixture
def proxies() -> Iterator[list[CuttingProxy]]:
    made: list[CuttingProxy] = []
    yield made
    for proxy in made:
        proxy.close()


def received_seqs(watcher: Subscriber) -> set[int]:
    return {m.document["seq"] for m in watcher.snapshot()}


def test_a_publish_refused_by_closing_the_connection_is_set_aside(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    proxies: list[CuttingProxy],
    link_for: Callable[[MqttSettings], tuple[MqttLink, Outbox]],
) -> None:
    proxy = CuttingProxy((mosquitto.host, mosquitto.port), lambda t: t.endswith("/forbidden"))
    proxies.append(proxy)
    watcher = subscribe(mosquitto, f"remotair/v1/{DEVICE}/telemetry")
    link, box = link_for(settings(proxy.port))
    before = [box.put(MessageClass.TELEMETRY, "", {"i": i}).message for i in range(5)]
    forbidden = box.put(MessageClass.ALARM, "forbidden", {"state": "raised"}).message
    after = [box.put(MessageClass.TELEMETRY, "", {"i": i}).message for i in range(5, 10)]
    assert forbidden is not None
    link.start()

    wanted = {m.seq for m in before + after if m is not None}
    watcher.wait_for(lambda ms: wanted <= received_seqs(watcher), timeout=20)
    wait_until(lambda: box.stats().depth == 0, 10, "nothing blocks the queue any more")
    [aside] = box.set_aside_messages()
    assert aside.seq == forbidden.seq
    assert "closed the connection 3 times in a row" in aside.reason
    # Three drops with it in flight; a drop may go uncounted when the cut overtakes the sender
    # thread's bookkeeping of the publish it just handed to paho.
    assert proxy.cuts in (3, 4), proxy.cuts
    [gap] = box.stats().gaps
    assert (gap.first, gap.last, gap.cause) == (forbidden.seq, forbidden.seq, "set_aside")
    wait_until(lambda: link.state().connected, 10, "connected again")


def test_drops_that_deliver_on_the_next_connection_set_nothing_aside(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    proxies: list[CuttingProxy],
    link_for: Callable[[MqttSettings], tuple[MqttLink, Outbox]],
) -> None:
    """A flaky network cuts the first two connections mid-publish: delivered, not set aside."""
    cuts = itertools.count()
    proxy = CuttingProxy(
        (mosquitto.host, mosquitto.port),
        lambda topic: topic.endswith("/telemetry") and next(cuts) in (3, 4),
    )
    proxies.append(proxy)
    watcher = subscribe(mosquitto, f"remotair/v1/{DEVICE}/telemetry")
    link, box = link_for(settings(proxy.port))
    wanted = {box.put(MessageClass.TELEMETRY, "", {"i": i}).message.seq for i in range(20)}  # type: ignore[union-attr]
    link.start()
    watcher.wait_for(lambda ms: wanted <= received_seqs(watcher), timeout=20)
    wait_until(lambda: box.stats().depth == 0, 10, "drained")
    assert proxy.cuts == 2
    assert box.stats().set_aside == 0 and box.stats().gaps == ()


def test_drop_watch_needs_the_same_lone_message_in_flight_each_time() -> None:
    watch = DropWatch(3)
    assert watch.dropped([4, 5, 6, 7]) is None and not watch.careful
    assert watch.dropped([5, 6, 7, 8]) is None and watch.careful  # one at a time from now on
    watch.acknowledged(5)
    watch.acknowledged(6)
    assert watch.dropped([7]) == (7, 3)
    assert not watch.careful, "a fresh start after giving up"
    assert watch.dropped([9]) is None
    watch.acknowledged(9)
    assert watch.dropped([9, 10]) is None and not watch.careful, (
        "an acknowledged suspect is cleared"
    )
    assert watch.dropped([]) is None


def test_the_publish_rate_cap_holds_over_every_second(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    link_for: Callable[[MqttSettings], tuple[MqttLink, Outbox]],
) -> None:
    rate = 40
    watcher = subscribe(mosquitto, f"remotair/v1/{DEVICE}/telemetry")
    link, box = link_for(settings(mosquitto.port, max_publish_rate=rate, inflight=100))
    box.put_many(MessageClass.TELEMETRY, "", [{"i": i} for i in range(120)])
    arrivals: list[float] = []
    collect = watcher.client.on_message

    def timed(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        arrivals.append(time.monotonic())
        collect(client, userdata, message)  # type: ignore[misc]

    watcher.client.on_message = timed
    link.start()
    watcher.wait_for(lambda ms: len(ms) >= 120, timeout=30)
    # Any one-second window holds at most the rate plus the burst (a tenth of a second's worth).
    for i, start in enumerate(arrivals):
        window = [t for t in arrivals[i:] if t - start < 1.0]
        assert len(window) <= rate + rate // 10 + 1, f"{len(window)} publishes within 1 s"


def test_more_than_100_in_flight_is_refused() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        settings(1883, inflight=101)
