"""The MQTT link against real brokers: schema, outages, SIGKILL, TLS, will, commands.

Tests that take ``mqtt_broker`` run on every broker of the matrix (tests/agent/conftest.py):
Mosquitto with MQTT 3.1.1 and 5, RabbitMQ's MQTT plugin with 3.1.1. The rest need a Mosquitto
feature (an ACL file, TLS listeners, MQTT 5 properties).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent import homeassistant, wire
from agent.command_table import Command, CommandArgs, CommandTable, NoArgs
from agent.mqtt import (
    DELETE_BATCH,
    HANDOVER_FACTOR,
    LinkState,
    MqttLink,
    MqttSettings,
    TlsSettings,
    backoff_delay,
)
from agent.mqtt.session import Session
from agent.outbox import MessageClass, Outbox
from hil.pki import Pki
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Mosquitto, Received, Subscriber

    from hil.broker import Broker
    from hil.rabbitmq import RabbitMqBroker

# The link is tested with made-up bodies: only their envelope follows the wire format.
pytestmark = [
    pytest.mark.broker,
    pytest.mark.wire_envelope_only("telemetry", "vision", "alarm", "status"),
]

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ["3.1.1", "5"]
PAHO_PROTOCOL = {"3.1.1": paho.MQTTv311, "5": paho.MQTTv5}


def settings_for(broker: Broker, protocol: str = "", **overrides: object) -> MqttSettings:
    """Fast reconnects; ``protocol`` defaults to the newest the broker speaks."""
    protocol = protocol or ("5" if "5" in broker.protocols else "3.1.1")
    values: dict[str, object] = {
        "host": broker.host,
        "port": broker.port,
        "protocol": protocol,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "handshake_timeout_s": 5.0,
        "keepalive": 10,
        "max_publish_rate": 0.0,  # the cap has its own tests (test_broker_limits.py)
    }
    values.update(overrides)
    return MqttSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def device() -> str:
    """A device id of the test's own: RabbitMQ's retained messages and sessions outlive a test."""
    return f"duct-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def outbox(device: str, tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db", device) as box:
        yield box


@pytest.fixture
def links(device: str) -> Iterator[Callable[..., MqttLink]]:
    started: list[MqttLink] = []

    def make(settings: MqttSettings, box: Outbox, **kwargs: object) -> MqttLink:
        kwargs.setdefault("status_body", lambda: {"version": "test"})
        link = MqttLink(settings, box, device, **kwargs)  # type: ignore[arg-type]
        link.start()
        started.append(link)
        return link

    yield make
    for link in started:
        link.stop(flush_timeout_s=0.5)


@dataclass(frozen=True)
class Rig:
    """What most tests here share: the test's own device id, its outbox, ``links(settings, box)``
    (started links, stopped at teardown) and ``subscribe`` (watchers, checked at teardown)."""

    device: str
    outbox: Outbox
    links: Callable[..., MqttLink]
    subscribe: Callable[..., Subscriber]


@pytest.fixture
def rig(
    device: str,
    outbox: Outbox,
    links: Callable[..., MqttLink],
    subscribe: Callable[..., Subscriber],
) -> Rig:
    return Rig(device, outbox, links, subscribe)


def docs(messages: list[Received], suffix: str) -> list[dict[str, object]]:
    return [m.document for m in messages if m.topic.endswith(suffix)]


def seqs_on(messages: list[Received], suffix: str) -> list[int]:
    return [int(d["seq"]) for d in docs(messages, suffix)]  # type: ignore[call-overload]


def has_seqs(suffix: str, wanted: set[int]) -> Callable[[list[Received]], bool]:
    return lambda messages: wanted <= set(seqs_on(messages, suffix))


# -- schema ----------------------------------------------------------------------------------------


def test_topics_payload_schema_qos_and_retained_status(
    protocol: str, mqtt_broker: Broker, rig: Rig
) -> None:
    watcher = rig.subscribe(
        mqtt_broker, f"remotair/v1/{rig.device}/#", protocol=PAHO_PROTOCOL[protocol]
    )
    telemetry = rig.outbox.put(
        MessageClass.TELEMETRY, "", {"sensors": {"duct": {"chip": "scd4x", "co2_ppm": 612.0}}}
    ).message
    verdict = rig.outbox.put(
        MessageClass.VERDICT, "cam0", {"camera": "cam0", "label": "clean"}
    ).message
    alarm = rig.outbox.put(
        MessageClass.ALARM, "co2_high", {"event": "raised", "value": 1600.0}
    ).message
    link = rig.links(settings_for(mqtt_broker, protocol), rig.outbox)
    received = watcher.wait_for(lambda ms: len(ms) >= 4)
    by_topic = {m.topic: m for m in received}
    base = f"remotair/v1/{rig.device}"
    assert by_topic[f"{base}/telemetry"].payload == telemetry.payload
    assert by_topic[f"{base}/vision/cam0"].payload == verdict.payload
    assert by_topic[f"{base}/alarm/co2_high"].payload == alarm.payload
    assert all(m.qos == 1 for m in received)
    status = json.loads(by_topic[f"{base}/status"].payload)
    assert status["state"] == "online"
    assert status["version"] == "test"
    for document in [json.loads(m.payload) for m in received]:
        assert list(document)[:4] == ["v", "device", "seq", "ts"]
        assert document["v"] == 1
        assert document["device"] == rig.device
        if document.get("state") is None:  # the stream; status is a latest-value message
            assert isinstance(document["seq"], int)
        else:
            assert document["seq"] is None
        assert str(document["ts"]).endswith("Z")
    wait_until(lambda: rig.outbox.stats().depth == 0, 5, "outbox drained after PUBACKs")
    state = link.state()
    assert state.connected and state.connected_since is not None and state.inflight == 0
    late = rig.subscribe(mqtt_broker, f"{base}/status")
    [retained] = late.wait_for(lambda ms: len(ms) >= 1)
    assert retained.retain is True
    assert json.loads(retained.payload)["state"] == "online"


def test_stop_publishes_offline_retained_with_the_health_document(
    mqtt_broker: Broker, rig: Rig
) -> None:
    watcher = rig.subscribe(mqtt_broker, f"remotair/v1/{rig.device}/status")
    link = MqttLink(
        settings_for(mqtt_broker), rig.outbox, rig.device, status_body=lambda: {"uptime_s": 1}
    )
    link.start()
    watcher.wait_for(lambda ms: any(b'"online"' in m.payload for m in ms))
    for i in range(50):
        rig.outbox.put(MessageClass.TELEMETRY, "", {"i": i})
    link.stop(flush_timeout_s=5)
    assert rig.outbox.stats().depth == 0, "backlog flushed within the bound"
    last = watcher.wait_for(lambda ms: b'"offline"' in ms[-1].payload)[-1]
    document = json.loads(last.payload)
    assert document["state"] == "offline"
    assert document["seq"] is None, "status is a latest-value message, outside the stream"
    assert document["uptime_s"] == 1, "a clean stop is not the last will"
    assert link.state().connected is False


def test_agent_keeps_running_without_broker_and_delivers_when_it_appears(
    mqtt_broker: Broker, rig: Rig
) -> None:
    mqtt_broker.stop()
    started = time.monotonic()
    link = rig.links(settings_for(mqtt_broker), rig.outbox)
    assert time.monotonic() - started < 1.0, "start() must not block on the broker"
    rig.outbox.put(MessageClass.ALARM, "co2_high", {"event": "raised"})
    wait_until(lambda: link.state().last_error is not None, 5, "first connect failure recorded")
    state = link.state()
    assert not state.connected
    assert "connection refused" in str(state.last_error)
    assert state.next_retry_at is not None
    mqtt_broker.start()
    watcher = rig.subscribe(mqtt_broker, f"remotair/v1/{rig.device}/alarm/#")
    wait_until(lambda: rig.outbox.stats().depth == 0, 10, "backlog delivered once the broker is up")
    assert link.state().connected
    del watcher


# -- no gap --------------------------------------------------------------------------------


def test_broker_outage_every_seq_delivered_no_gap(
    protocol: str, mqtt_broker: Broker, rig: Rig
) -> None:
    broker = mqtt_broker  # persistent: the watcher's session survives the restart
    watcher = rig.subscribe(
        broker, f"remotair/v1/{rig.device}/telemetry", client_id=f"watch-{rig.device}"
    )
    link = rig.links(settings_for(broker, protocol, inflight=5), rig.outbox)
    total = 400
    put_seqs: list[int] = []

    def produce() -> None:
        for i in range(total):
            put_seqs.append(rig.outbox.put(MessageClass.TELEMETRY, "", {"i": i}).message.seq)
            time.sleep(0.002)

    producer = threading.Thread(target=produce)
    producer.start()
    watcher.wait_for(lambda ms: len(ms) >= 100)
    broker.stop()  # mid-stream: some messages are in flight right now
    wait_until(lambda: not link.state().connected, 5, "link notices the outage")
    time.sleep(0.5)
    broker.start()
    producer.join(timeout=20)
    received = watcher.wait_for(has_seqs("telemetry", set(put_seqs)), timeout=20)
    seqs = seqs_on(received, "telemetry")
    assert sorted(set(seqs)) == put_seqs, "every seq delivered, no gap"
    wait_until(lambda: rig.outbox.stats().depth == 0, 5, "outbox empty once everything is acked")


_KILLED_AGENT = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from agent.mqtt import MqttLink, MqttSettings
from agent.outbox import Outbox
outbox = Outbox(Path({path!r}), {device!r})
settings = MqttSettings(host="127.0.0.1", port={port}, protocol={protocol!r}, inflight=1,
                        reconnect_min_s=0.1, reconnect_max_s=0.5, keepalive=10,
                        max_publish_rate=0)
MqttLink(settings, outbox, {device!r}, status_body=lambda: {{"pid": 1}}).start()
print("started", flush=True)
time.sleep(60)
"""


def test_sigkill_mid_publish_then_restart_no_gap_and_last_will(
    device: str,
    protocol: str,
    mqtt_broker: Broker,
    tmp_path: Path,
    subscribe: Callable[..., Subscriber],
) -> None:
    path = tmp_path / "agent-outbox.db"
    total = 3000
    with Outbox(path, device) as box:
        for i in range(total):
            box.put(MessageClass.TELEMETRY, "", {"i": i})
    watcher = subscribe(mqtt_broker, f"remotair/v1/{device}/#")
    script = _KILLED_AGENT.format(
        root=str(ROOT), path=str(path), device=device, port=mqtt_broker.port, protocol=protocol
    )
    agent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        watcher.wait_for(lambda ms: len(seqs_on(ms, "telemetry")) >= 200, timeout=20)
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
    will = watcher.wait_for(lambda ms: any("reason" in d for d in docs(ms, "status")), timeout=10)
    [offline] = [d for d in docs(will, "status") if "reason" in d]
    assert offline["state"] == "offline", "the broker published the last will"
    with Outbox(path, device) as box:
        left = box.stats().depth
        assert 0 < left < total, "the kill really landed mid-drain"
        link = MqttLink(settings_for(mqtt_broker, protocol), box, device, status_body=dict)
        link.start()
        try:
            received = watcher.wait_for(has_seqs("telemetry", set(range(1, total + 1))), timeout=20)
        finally:
            link.stop(flush_timeout_s=1)
    seqs = seqs_on(received, "telemetry")
    assert set(seqs) == set(range(1, total + 1)), "no gap after SIGKILL and restart"
    duplicates = len(seqs) - len(set(seqs))
    # Resent at most: what paho held (inflight=1 in the killed agent) and the acknowledged
    # messages whose batched delete had not run yet.
    bound = 1 * HANDOVER_FACTOR + DELETE_BATCH
    assert duplicates <= bound, f"{duplicates} duplicates, more than {bound}"


def test_a_reconnect_clears_last_error_and_the_status_says_how_long_it_was_away(
    mosquitto_factory: Callable[..., Mosquitto], rig: Rig
) -> None:
    broker = mosquitto_factory()
    link = rig.links(settings_for(broker, "3.1.1"), rig.outbox)
    wait_until(lambda: link.state().connected, 10, "connected")
    assert link.state().offline_since is None and link.state().last_outage is None
    broker.stop()
    wait_until(
        lambda: link.state().last_error is not None and link.state().offline_since is not None,
        10,
        "the outage is seen",
    )
    lost = link.state().offline_since
    assert lost is not None
    broker.start()
    wait_until(lambda: link.state().connected, 10, "connected again")
    state = link.state()
    assert state.last_error is None, "an error of the last connection is not today's"
    assert state.offline_since is None
    assert state.last_outage is not None and state.last_outage[0] == lost
    assert state.last_outage[1] >= lost


# -- broker rejects a message --------------------------------------------------------------------


def test_mqtt5_rejected_publish_is_set_aside_and_does_not_block(
    device: str,
    mosquitto_factory: Callable[..., Mosquitto],
    tmp_path: Path,
    links: Callable[..., MqttLink],
    subscribe: Callable[..., Subscriber],
) -> None:
    acl = tmp_path / "acl"
    acl.write_text(
        f"topic readwrite remotair/v1/{device}/telemetry\n"
        f"topic readwrite remotair/v1/{device}/status\n"
        f"topic read remotair/v1/{device}/cmd/#\n"
    )
    broker = mosquitto_factory(f"acl_file {acl}\n")
    watcher = subscribe(broker, f"remotair/v1/{device}/telemetry")
    with Outbox(tmp_path / "o.db", device, max_attempts=3) as box:
        forbidden = box.put(MessageClass.ALARM, "forbidden", {"event": "raised"}).message
        after = box.put(MessageClass.TELEMETRY, "", {"i": 1}).message
        link = links(settings_for(broker, "5"), box)
        watcher.wait_for(has_seqs("telemetry", {after.seq}))
        wait_until(lambda: box.stats().set_aside == 1, 10, "rejected message set aside")
        [aside] = box.set_aside_messages()
        assert aside.seq == forbidden.seq
        assert aside.attempts == 3
        assert "Not authorized" in aside.reason
        wait_until(lambda: box.stats().depth == 0, 5, "queue not blocked")
        assert link.state().connected
        link.stop(flush_timeout_s=1)


# -- TLS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tls_with_client_certificate(
    protocol: str, tls_broker: tuple[Mosquitto, int, Pki], rig: Rig
) -> None:
    broker, tls_port, pki = tls_broker
    watcher = rig.subscribe(broker, f"remotair/v1/{rig.device}/#")
    message = rig.outbox.put(MessageClass.ALARM, "co2_high", {"event": "raised"}).message
    tls = TlsSettings(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    link = rig.links(settings_for(broker, protocol, port=tls_port, tls=tls), rig.outbox)
    watcher.wait_for(has_seqs("alarm/co2_high", {message.seq}))
    assert link.state().connected
    assert link.state().last_error is None


def _failing_tls_state(
    broker: Mosquitto,
    tls_port: int,
    tls: TlsSettings,
    outbox: Outbox,
    links: Callable[..., MqttLink],
) -> LinkState:
    outbox.put(MessageClass.ALARM, "co2_high", {"event": "raised"})
    link = links(settings_for(broker, port=tls_port, tls=tls), outbox)
    wait_until(lambda: link.state().next_retry_at is not None, 10, "TLS failure recorded")
    first_retry = link.state().next_retry_at
    wait_until(  # it keeps retrying with back-off
        lambda: link.state().next_retry_at not in (None, first_retry), 10, "a later retry"
    )
    state = link.state()
    assert not state.connected
    assert outbox.stats().depth >= 1, "nothing is lost while it cannot connect"
    return state


def test_client_certificate_from_another_ca_is_a_clear_tls_error(
    tls_broker: tuple[Mosquitto, int, Pki], outbox: Outbox, links: Callable[..., MqttLink]
) -> None:
    broker, tls_port, pki = tls_broker
    tls = TlsSettings(ca=pki.ca, cert=pki.rogue_cert, key=pki.rogue_key)
    state = _failing_tls_state(broker, tls_port, tls, outbox, links)
    error = str(state.last_error)
    assert error.startswith("TLS: broker "), error
    assert "unknown ca" in error or "client certificate rejected" in error, error


def test_untrusted_broker_certificate_is_a_clear_tls_error(
    tls_broker: tuple[Mosquitto, int, Pki], outbox: Outbox, links: Callable[..., MqttLink]
) -> None:
    broker, tls_port, pki = tls_broker
    tls = TlsSettings(ca=pki.rogue_ca, cert=pki.client_cert, key=pki.client_key)
    state = _failing_tls_state(broker, tls_port, tls, outbox, links)
    assert str(state.last_error).startswith("TLS: certificate verify failed"), state.last_error


def test_mqtt5_on_a_broker_that_speaks_only_311_says_so(
    rabbitmq_node: RabbitMqBroker, outbox: Outbox, links: Callable[..., MqttLink]
) -> None:
    rabbitmq_node.start()
    link = links(settings_for(rabbitmq_node, "5"), outbox)
    wait_until(lambda: link.state().last_error is not None, 10, "the dropped connection recorded")
    error = str(link.state().last_error)
    assert error.startswith("broker closed the connection before its CONNACK"), error
    assert 'protocol = "3.1.1"' in error, error


def test_refused_credentials_say_not_authorised(
    mosquitto_factory: Callable[..., Mosquitto], outbox: Outbox, links: Callable[..., MqttLink]
) -> None:
    broker = mosquitto_factory("allow_anonymous false\n")
    link = links(settings_for(broker, "5", username="nobody", password="wrong"), outbox)
    wait_until(lambda: link.state().last_error is not None, 10, "refusal recorded")
    error = str(link.state().last_error)
    assert error.startswith("broker refused connection: "), error
    assert "not authori" in error.lower(), error


# -- commands --------------------------------------------------------------------------------


def test_commands_answered_with_correlation_id_off_the_network_thread(
    protocol: str, mqtt_broker: Broker, rig: Rig
) -> None:
    threads: list[str] = []

    class PingArgs(CommandArgs):
        n: int | None = None

    def ping(args: PingArgs) -> dict[str, object]:
        threads.append(threading.current_thread().name)
        return {"pong": args.n}

    def explode(args: NoArgs) -> dict[str, object]:
        threads.append(threading.current_thread().name)
        raise RuntimeError("camera 0 is not answering")

    commands = CommandTable(
        [
            Command("ping", PingArgs, ping, "answers", remote=True),
            Command("explode", NoArgs, explode, "breaks", remote=True),
            Command("local", NoArgs, explode, "the control socket only"),
        ]
    )

    watcher = rig.subscribe(mqtt_broker, f"remotair/v1/{rig.device}/result/#")
    link = rig.links(settings_for(mqtt_broker, protocol), rig.outbox, commands=commands)
    wait_until(lambda: link.state().commands_subscribed, 5, "the SUBACK of cmd/+")
    sender = watcher.client
    cmd = f"remotair/v1/{rig.device}/cmd"
    sender.publish(f"{cmd}/ping", json.dumps({"id": "req-1", "n": 7}), qos=1)
    sender.publish(f"{cmd}/ping", b"{not json", qos=1)
    sender.publish(f"{cmd}/explode", json.dumps({"id": 42}), qos=1)
    sender.publish(f"{cmd}/reboot", json.dumps({"id": "r1"}), qos=1)
    sender.publish(f"{cmd}/local", json.dumps({"id": "l1"}), qos=1)
    sender.publish(f"{cmd}/ping", json.dumps({"id": "bad-arg", "n": "seven"}), qos=1)
    received = watcher.wait_for(lambda ms: len(ms) >= 6)
    results = {(d["command"], d["id"]): d for d in docs(received, "")}
    ok = results[("ping", "req-1")]
    assert ok["ok"] is True and ok["result"] == {"pong": 7}
    malformed = results[("ping", None)]
    assert malformed["ok"] is False and "malformed command" in str(malformed["error"])
    failed = results[("explode", 42)]
    assert failed["ok"] is False and "camera 0 is not answering" in str(failed["error"])
    unknown = results[("reboot", "r1")]
    assert (unknown["ok"], unknown["code"]) == (False, "unknown_command"), unknown
    assert "known: explode, ping" in str(unknown["error"]), unknown
    local = results[("local", "l1")]
    assert (local["ok"], local["code"]) == (False, "local_only"), local
    bad = results[("ping", "bad-arg")]
    assert (bad["ok"], bad["code"]) == (False, "bad_arguments"), bad
    assert all(isinstance(d["seq"], int) for d in results.values())
    assert threads and all(name.startswith("remotair-cmd") for name in threads), threads


@pytest.mark.parametrize(("code", "subscribed"), [(1, True), (0x80, False), (0x87, False)])
def test_the_suback_decides_whether_commands_can_arrive(
    code: int, subscribed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Mosquitto grants every subscription (its ACLs filter deliveries instead); AWS IoT Core
    # answers one its policy denies with 0x80. paho hands the SUBACK's codes to on_subscribe.
    settings = MqttSettings(host="localhost")
    session = Session(settings, "duct-7", events=None, ssl_context=None)  # type: ignore[arg-type]
    reasons = [ReasonCode(PacketTypes.SUBACK, identifier=code)]
    with caplog.at_level(logging.WARNING, logger="agent.mqtt"):
        session.client.on_subscribe(session.client, None, 1, reasons, None)  # type: ignore[misc]
    assert session.commands_subscribed is subscribed
    assert ("command subscription refused" in caplog.text) is not subscribed


def test_mqtt5_response_topic_and_correlation_data(mosquitto: Mosquitto, rig: Rig) -> None:
    watcher = rig.subscribe(mosquitto, "replies/operator-1", schema="result")
    link = rig.links(
        settings_for(mosquitto, "5", reply_prefix="replies"),
        rig.outbox,
        commands=CommandTable(
            [Command("ping", NoArgs, lambda _: {"pong": True}, "answers", remote=True)]
        ),
    )
    wait_until(lambda: link.state().commands_subscribed, 5, "the SUBACK of cmd/+")
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ResponseTopic = "replies/operator-1"
    properties.CorrelationData = b"\x00corr-9"
    watcher.client.publish(
        f"remotair/v1/{rig.device}/cmd/ping", b'{"id": "r9"}', qos=1, properties=properties
    )
    [reply] = watcher.wait_for(lambda ms: len(ms) >= 1)
    assert json.loads(reply.payload)["id"] == "r9"
    assert getattr(reply.properties, "CorrelationData", None) == b"\x00corr-9"


# -- Home Assistant discovery --------------------------------------------------------------------


def test_home_assistant_discovery_retained_through_outbox(mosquitto: Mosquitto, rig: Rig) -> None:
    messages = homeassistant.discovery_messages(
        rig.device,
        "Duct 7",
        [("duct", "co2_ppm"), ("filter", "differential_pressure_pa")],
        ["cam0"],
        expire_after_s=90,
    )
    assert homeassistant.queue_discovery(rig.outbox, messages) == 5
    link = rig.links(settings_for(mosquitto), rig.outbox)
    wait_until(lambda: rig.outbox.stats().depth == 0, 5, "discovery delivered")
    watcher = rig.subscribe(mosquitto, "homeassistant/#")  # subscribed after: sees retained configs
    received = watcher.wait_for(lambda ms: len(ms) >= 5)
    assert {m.topic for m in received} == {topic for topic, _ in messages}
    assert all(m.retain for m in received)
    configs = {m.topic: json.loads(m.payload) for m in received}
    assert configs == dict(messages)
    assert link.state().connected


def test_home_assistant_configs_come_back_after_its_birth_and_an_empty_broker_restart(
    mosquitto_factory: Callable[..., Mosquitto], rig: Rig
) -> None:
    broker = mosquitto_factory()  # no persistence: a restart forgets retained messages
    messages = homeassistant.discovery_messages(
        rig.device, "Duct 7", [("duct", "co2_ppm")], [], expire_after_s=90
    )
    queued: list[float] = []

    def republish() -> None:
        queued.append(time.monotonic())
        homeassistant.queue_discovery(rig.outbox, messages)

    link = rig.links(
        settings_for(broker, "3.1.1"),
        rig.outbox,
        republish=republish,
        birth_topic="homeassistant/status",
    )
    wait_until(lambda: len(queued) == 1, 5, "a new broker session: configs queued")
    wait_until(lambda: link.state().commands_subscribed, 5, "subscribed")
    birth = rig.subscribe(broker, "homeassistant/sensor/#")
    birth.client.publish("homeassistant/status", b"offline", qos=1).wait_for_publish(5)
    birth.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
    wait_until(lambda: len(queued) == 2, 5, "Home Assistant's birth: configs queued again")

    broker.stop()
    broker.start()
    wait_until(lambda: len(queued) == 3, 15, "the broker came back empty: configs queued again")
    wait_until(lambda: rig.outbox.stats().depth == 0, 10, "configs delivered")
    late = rig.subscribe(broker, "homeassistant/#")
    received = late.wait_for(lambda ms: len(ms) >= len(messages), timeout=10)
    assert all(m.retain for m in received), "retained on the broker again"
    assert {m.topic: json.loads(m.payload) for m in received} == dict(messages)


def test_home_assistant_configs_render_against_real_payloads(device: str) -> None:
    jinja2 = pytest.importorskip("jinja2")
    messages = dict(
        homeassistant.discovery_messages(
            device,
            "Duct 7",
            [
                ("duct", "co2_ppm"),
                ("duct", "temperature_c"),
                ("filter", "differential_pressure_pa"),
            ],
            ["cam0"],
            expire_after_s=90,
            verdict_expire_after_s=2700,
        )
    )
    co2 = messages[f"homeassistant/sensor/{device}/duct_co2_ppm/config"]
    assert co2["device_class"] == "carbon_dioxide" and co2["unit_of_measurement"] == "ppm"
    assert co2["state_topic"] == wire.telemetry_topic(device)
    assert co2["expire_after"] == 90
    assert co2["availability"] == [
        {
            "topic": wire.status_topic(device),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    dp = messages[f"homeassistant/sensor/{device}/filter_differential_pressure_pa/config"]
    assert (dp["device_class"], dp["unit_of_measurement"]) == ("pressure", "Pa")
    verdict = messages[f"homeassistant/sensor/{device}/cam0_verdict/config"]
    assert verdict["state_topic"] == wire.vision_topic(device, "cam0")
    assert verdict["options"] == ["clean", "dirty"] and verdict["expire_after"] == 2700
    unique_ids = [c["unique_id"] for c in messages.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    assert len({json.dumps(c["device"]) for c in messages.values()}) == 1, "one HA device"

    env = jinja2.Environment()

    def render(template: object, payload: dict[str, object]) -> str:
        return str(env.from_string(str(template)).render(value_json=payload))

    telemetry = {
        "v": 1,
        "device": device,
        "seq": 5,
        "ts": "2026-11-25T21:04:05.123Z",
        "sensors": {"duct": {"chip": "scd4x", "co2_ppm": 612.0, "temperature_c": 21.5}},
        "faults": {"filter": "no ACK at 0x25"},
    }
    assert render(co2["value_template"], telemetry) == "612.0"
    temperature = messages[f"homeassistant/sensor/{device}/duct_temperature_c/config"]
    assert render(temperature["value_template"], telemetry) == "21.5"
    assert render(dp["value_template"], telemetry) == "None"  # faulted: unknown, not made up
    vision = {
        "camera": "cam0",
        "label": "dirty",
        "confidence": 0.93,
        "backend": "onnx",
        "model": "resnet-q8",
        "latency_ms": 41.0,
    }
    assert render(verdict["value_template"], vision) == "dirty"
    availability = co2["availability"][0]
    assert render(availability["value_template"], {"state": "offline"}) == "offline"
    alarms = messages[f"homeassistant/sensor/{device}/active_alarms/config"]
    depth = messages[f"homeassistant/sensor/{device}/outbox_depth/config"]
    assert alarms["state_topic"] == depth["state_topic"] == wire.status_topic(device)
    health = {
        "state": "online",
        "alarms": [{"name": "co2_warning"}, {"name": "filter_clogged"}],
        "outbox": {"depth": 42},
    }
    assert render(alarms["value_template"], health) == "2"
    assert json.loads(render(alarms["json_attributes_template"], health)) == {
        "alarms": ["co2_warning", "filter_clogged"]
    }
    assert render(depth["value_template"], health) == "42"
    will = {"state": "offline", "reason": "connection lost"}
    assert render(alarms["value_template"], will) == render(depth["value_template"], will)
    assert render(depth["value_template"], will) == "None"


def test_home_assistant_rejects_unknown_quantities(device: str) -> None:
    with pytest.raises(wire.WireError, match="quantity 'lux'"):
        homeassistant.discovery_messages(device, "D", [("duct", "lux")], [], expire_after_s=60)


# -- back-off --------------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_within_bounds() -> None:
    import random

    rng = random.Random(7)
    delays = [[backoff_delay(a, 1.0, 30.0, rng) for _ in range(200)] for a in range(8)]
    assert all(1.0 <= d <= 30.0 for row in delays for d in row)
    assert delays[0] == [1.0] * 200
    assert len({round(d, 6) for d in delays[3]}) > 100, "jittered"
    assert max(delays[2]) <= 4.0 < min(delays[4]) + 4.0
    assert min(delays[7]) >= 15.0
