"""Commands that cannot be turned against the fleet, against a real Mosquitto: response topics
only under the device's own topics, commands sent while the board was offline arrive (persistent
session), and a stale one is answered "expired", not run."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.command_table import Command, CommandTable, NoArgs
from agent.mqtt import MqttLink, MqttSettings
from agent.mqtt.commands import CommandRunner
from agent.outbox import Outbox
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Mosquitto, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.wire_envelope_only("status")]


@pytest.fixture
def device() -> str:
    return f"cmd-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pings() -> list[str]:
    """The ids of the ping requests that actually ran."""
    return []


@pytest.fixture
def table(pings: list[str]) -> CommandTable:
    def ping(args: NoArgs) -> dict[str, object]:
        pings.append("ran")
        return {"pong": True}

    return CommandTable([Command("ping", NoArgs, ping, "answers", remote=True)])


@pytest.fixture
def link_for(device: str, tmp_path: Path, table: CommandTable) -> Iterator[Callable[..., MqttLink]]:
    made: list[tuple[MqttLink, Outbox]] = []

    def make(broker: Mosquitto, protocol: str, **overrides: object) -> MqttLink:
        values: dict[str, object] = {
            "host": broker.host,
            "port": broker.port,
            "protocol": protocol,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.2,
            "keepalive": 10,
        }
        values.update(overrides)
        box = Outbox(tmp_path / "outbox.db", device)
        link = MqttLink(
            MqttSettings(**values),  # type: ignore[arg-type]
            box,
            device,
            commands=table,
            status_body=lambda: {"version": "test"},
        )
        link.start()
        made.append((link, box))
        wait_until(lambda: link.state().commands_subscribed, 10, "the SUBACK of cmd/+")
        return link

    yield make
    for link, box in made:
        link.stop(flush_timeout_s=0.5)
        box.close()


def v5_publish(client: paho.Client, topic: str, body: dict[str, object], **props: object) -> None:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for key, value in props.items():
        setattr(properties, key, value)
    info = client.publish(topic, json.dumps(body), qos=1, properties=properties)
    info.wait_for_publish(timeout=5)


def test_a_response_topic_of_another_device_is_refused_and_answered_on_result(
    device: str,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    link_for: Callable[..., MqttLink],
    pings: list[str],
) -> None:
    other = subscribe(mosquitto, "remotair/v1/other/#")
    replies = subscribe(
        mosquitto, f"remotair/v1/{device}/result/#", f"remotair/v1/{device}/r/#", schema="result"
    )
    link_for(mosquitto, "5")
    cmd = f"remotair/v1/{device}/cmd/ping"
    v5_publish(replies.client, cmd, {"id": "evil"}, ResponseTopic="remotair/v1/other/status")
    v5_publish(replies.client, cmd, {"id": "own"}, ResponseTopic=f"remotair/v1/{device}/r/1")
    answers = replies.wait_for(lambda ms: len(ms) >= 2, timeout=10)
    by_topic = {m.topic: json.loads(m.payload) for m in answers}
    refused = by_topic[f"remotair/v1/{device}/result/ping"]
    assert (refused["id"], refused["ok"], refused["code"]) == ("evil", False, "reply_topic_refused")
    assert "remotair/v1/other/status" in refused["error"]
    assert by_topic[f"remotair/v1/{device}/r/1"]["ok"] is True
    assert pings == ["ran"], "the refused request did not run"
    assert not other.snapshot(), "nothing published under another device"


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_commands_sent_while_offline_arrive_and_stale_ones_are_not_run(
    device: str,
    protocol: str,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    link_for: Callable[..., MqttLink],
    pings: list[str],
) -> None:
    results = subscribe(mosquitto, f"remotair/v1/{device}/result/#")
    link = link_for(mosquitto, protocol)
    link.stop(flush_timeout_s=1)  # the board goes away; its broker session stays
    cmd = f"remotair/v1/{device}/cmd/ping"
    soon = time.time() + 0.3
    for body in ({"id": "stale", "expires": soon}, {"id": "fresh", "expires": time.time() + 600}):
        info = results.client.publish(cmd, json.dumps(body), qos=1)
        info.wait_for_publish(timeout=5)
    wait_until(lambda: time.time() > soon, 5, "the first request goes stale")

    link_for(mosquitto, protocol)  # back, same client id
    answers = results.wait_for(lambda ms: len(ms) >= 2, timeout=10)
    by_id = {d["id"]: d for d in (json.loads(m.payload) for m in answers)}
    assert by_id["fresh"]["ok"] is True
    assert (by_id["stale"]["ok"], by_id["stale"]["code"]) == (False, "expired")
    assert pings == ["ran"], "only the fresh request ran"


def test_mqtt5_message_expiry_is_honoured(
    device: str, tmp_path: Path, table: CommandTable, pings: list[str]
) -> None:
    """What the broker left of a request's MessageExpiryInterval is its deadline here."""
    with Outbox(tmp_path / "o.db", device) as box:
        settings = MqttSettings(protocol="5")
        runner = CommandRunner(settings, box, device, table, record_error=lambda _: None)
        runner.start()
        for remaining, request_id in ((0, "stale"), (60, "fresh")):
            message = paho.MQTTMessage(topic=f"remotair/v1/{device}/cmd/ping".encode())
            message.payload = json.dumps({"id": request_id}).encode()
            message.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            message.properties.MessageExpiryInterval = remaining
            runner.received(message)
        wait_until(lambda: box.stats().depth == 2, 5, "both answered")
        runner.stop()
        answers = {d["id"]: d for d in (json.loads(m.payload) for m in box.pending(10))}
    assert answers["stale"]["code"] == "expired"
    assert answers["fresh"]["ok"] is True
    assert pings == ["ran"]
