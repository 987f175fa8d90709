"""The JSON Schemas of docs/schemas/ describe what the code publishes, and catch what does not fit.

The broker fixtures check every message the integration tests receive; these tests check the
schemas themselves: each message class has one, the bodies the code builds fit them (the variants
the integration tests rarely see included: a cascade verdict, a retried cloud verdict, a failed
command), and a payload that breaks the contract fails with its topic and the offending key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent import wire
from agent.alarms import AlarmEvent
from agent.board import SensorInfo
from agent.command_table import Command, CommandReply, CommandTable, NoArgs, Transport
from agent.homeassistant import discovery_messages
from agent.models.install import InstallReport, InstallState
from agent.sampling import RoundResult
from agent.snapshots import SnapshotResult
from agent.vision import Verdict
from agent.wire import MessageClass
from drivers.measurement import Measurement
from tests.support.wire_schemas import SCHEMAS, check_message, schema_name, validator

if TYPE_CHECKING:
    from conftest import Mosquitto, Subscriber

DEVICE = "duct-7"
TS = 1_795_700_000.0


def enveloped(topic: str, body: dict[str, object], seq: int | None = 7) -> bytes:
    return wire.encode_envelope(DEVICE, seq, body, topic=topic, ts=TS)


def onnx_verdict(label: str = "dirty", p_dirty: float = 0.93) -> Verdict:
    confidence = p_dirty if label == "dirty" else 1 - p_dirty
    return Verdict(label, confidence, "onnx", "resnet@0123456789ab", 9.4, p_dirty)


def test_every_message_class_and_the_envelope_have_a_valid_schema() -> None:
    names = {path.name.removesuffix(".schema.json") for path in SCHEMAS.glob("*.schema.json")}
    wanted = {"vision" if kind is MessageClass.VERDICT else str(kind) for kind in MessageClass}
    assert wanted | {"envelope", "command"} <= names
    for name in names:
        validator(name)  # raises SchemaError for a schema that is not valid 2020-12


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("remotair/v1/duct-7/telemetry", ("telemetry", "duct-7")),
        ("site/a/remotair/duct-7/status", ("status", "duct-7")),
        ("remotair/v1/duct-7/model", ("model", "duct-7")),
        ("remotair/v1/duct-7/vision/upstream", ("vision", "duct-7")),
        ("remotair/v1/duct-7/alarm/co2_warning", ("alarm", "duct-7")),
        ("remotair/v1/duct-7/result/ping", ("result", "duct-7")),
        ("remotair/v1/duct-7/cmd/ping", ("command", "duct-7")),
        ("remotair/v1/duct-7/cmd/status", ("command", "duct-7")),
        ("remotair/v1/duct-7/result/telemetry", ("result", "duct-7")),
        ("homeassistant/sensor/duct-7/scd41_co2_ppm/config", ("discovery", None)),
        ("replies/operator-1", None),
    ],
)
def test_topics_map_to_their_schema(topic: str, expected: tuple[str, str | None] | None) -> None:
    assert schema_name(topic) == expected


def test_telemetry_with_readings_and_faults_fits() -> None:
    info = {"scd41": SensorInfo("scd41", "scd4x", "i2c-1 0x62")}
    result = RoundResult(
        TS,
        {"scd41": Measurement(temperature_c=19.3, humidity_rh=56.9, co2_ppm=1227.0)},
        {"sht41": "DeviceAbsentError: no answer on the bus"},
    )
    topic = wire.telemetry_topic(DEVICE)
    assert check_message(topic, enveloped(topic, result.telemetry_body(info))) is None


def test_verdicts_fit_plain_cascade_and_retried() -> None:
    topic = wire.vision_topic(DEVICE, "upstream")
    snapshot = Path("/var/lib/remotair/snapshots/upstream-20261125T215334.651Z.jpg")
    plain = SnapshotResult("upstream", TS, snapshot, onnx_verdict(), None).verdict_body()
    local = onnx_verdict("clean", 0.5)
    cloud = Verdict("dirty", 0.97, "rekognition", "arn:aws:rekognition:...", 310.0, 0.97)
    cascade = Verdict(
        "clean", 0.5, "cascade", local.model_id, 12.0, 0.5, (local, cloud), "onnx", pending=True
    )
    mixed = SnapshotResult("upstream", TS, None, cascade, None).verdict_body()
    for body in (plain, mixed, plain | {"retried": snapshot.name}):
        assert check_message(topic, enveloped(topic, body)) is None


def test_uncertain_and_unusable_verdicts_fit() -> None:
    topic = wire.vision_topic(DEVICE, "upstream")
    unsure = Verdict(
        "uncertain", 0.93, "onnx", "resnet@0123456789ab", 9.4, 0.07,
        reason="out of distribution: feature distance 3000 above 1057",
        extra={"leaning": "clean", "ood_score": 3000.0},
    )  # fmt: skip
    unusable = Verdict(
        "unusable", 1.0, "onnx", "resnet@0123456789ab", 2.0, None, decided_by="quality-gate",
        reason="too dark (mean brightness 9, 95th percentile 20 of 255)",
    )  # fmt: skip
    for verdict in (unsure, unusable):
        body = SnapshotResult("upstream", TS, None, verdict, None).verdict_body()
        assert body["reason"] == verdict.reason
        assert check_message(topic, enveloped(topic, body)) is None
    wrong = SnapshotResult("upstream", TS, None, unusable, None).verdict_body()
    assert check_message(topic, enveloped(topic, wrong | {"label": "maybe"})) is not None


@pytest.mark.parametrize("state", ["raised", "cleared"])
def test_alarm_transitions_fit(state: str) -> None:
    event = AlarmEvent(
        "co2_warning", "co2_warning", "", state, "warning",  # type: ignore[arg-type]
        1227.0, 1000.0, "CO2 1227 ppm at scd41 is above the warning threshold 1000 ppm", TS,
    )  # fmt: skip
    topic = wire.alarm_topic(DEVICE, event.name)
    assert check_message(topic, enveloped(topic, event.to_body())) is None


REMOTE = Transport.REMOTE


def test_results_fit_success_and_failure() -> None:
    topic = wire.result_topic(DEVICE, "ping")
    table = CommandTable(
        [Command("ping", NoArgs, lambda _: {"pong": True}, "answers", remote=True)]
    )
    ok = {"command": "ping", "id": "req-1", **table.call("ping", {}, transport=REMOTE).to_body()}
    failed = {"command": "ping", "id": None, **CommandReply.malformed("ping", "...").to_body()}
    unknown = {"command": "x", "id": 2, **table.call("x", {}, transport=REMOTE).to_body()}
    for body in (ok, failed, unknown):
        assert check_message(topic, enveloped(topic, body)) is None, body
    error = check_message(topic, enveloped(topic, {"command": "ping", "id": 1, "ok": False}))
    assert error is not None and "result.schema.json" in error


@pytest.mark.parametrize(
    "report",
    [
        InstallReport("r1", InstallState.DOWNLOADING, sha256="ab" * 32, percent=40),
        InstallReport(
            "r1", InstallState.ACTIVE, sha256="ab" * 32, signer="0ed358de667593ef",
            detail={"previous": None, "reference": {"images": 4}},
        ),
        InstallReport("r2", InstallState.FAILED, check="wrong key", reason="signed by key 1"),
    ],
)  # fmt: skip
def test_model_rollout_states_fit(report: InstallReport) -> None:
    topic = wire.device_topic(DEVICE, "model")
    body = report.to_dict() | {"at": "2026-11-26T10:00:00+00:00"}
    assert check_message(topic, enveloped(topic, body)) is None
    unexplained = {"id": "r3", "state": "failed", "at": "2026-11-26T10:00:00+00:00"}
    error = check_message(topic, enveloped(topic, unexplained))
    assert error is not None and "model.schema.json" in error


def test_the_last_will_fits_the_status_schema_with_seq_null() -> None:
    topic = wire.status_topic(DEVICE)
    will = enveloped(topic, {"state": "offline", "reason": "connection lost"}, seq=None)
    assert check_message(topic, will) is None


def test_discovery_configs_fit() -> None:
    messages = discovery_messages(
        DEVICE, "Remotair duct-7", [("scd41", "co2_ppm")], ["upstream"], expire_after_s=90
    )
    assert len(messages) == 4  # one reading, one verdict, active alarms, outbox depth
    for topic, config in messages:
        assert check_message(topic, wire.encode_json(config, topic)) is None


@pytest.mark.parametrize(
    ("suffix", "body", "found"),
    [
        ("telemetry", {"sensors": {}}, "'faults' is a required property"),
        (
            "telemetry",
            {"sensors": {"scd41": {"chip": "scd4x", "co2_ppm": "high"}}, "faults": {}},
            "at sensors/scd41/co2_ppm: 'high' is not of type 'number'",
        ),
        ("alarm/x", {"name": "x", "state": "on"}, "alarm.schema.json"),
        ("status", {"state": "online"}, "status.schema.json"),
    ],
)
def test_a_body_that_breaks_the_contract_is_named(
    suffix: str, body: dict[str, object], found: str
) -> None:
    topic = f"remotair/v1/{DEVICE}/{suffix}"
    error = check_message(topic, enveloped(topic, body))
    assert error is not None
    assert error.startswith(f"{topic}: ") and found in error


def test_the_sim_flag_fits_the_envelope_only_as_true() -> None:
    topic = wire.telemetry_topic(DEVICE)
    body: dict[str, object] = {"sensors": {}, "faults": {}}
    simulated = wire.encode_envelope(DEVICE, 7, body, topic=topic, ts=TS, sim=True)
    assert check_message(topic, simulated) is None
    wrong = json.loads(enveloped(topic, body)) | {"sim": False}
    error = check_message(topic, json.dumps(wrong).encode()) or ""
    assert "envelope.schema.json" in error or "telemetry" in error, error
    assert "sim" in error, error


def test_envelope_errors_and_unknown_topics_are_named() -> None:
    topic = wire.telemetry_topic(DEVICE)
    other = wire.encode_envelope("duct-8", 3, {"sensors": {}, "faults": {}}, topic=topic, ts=TS)
    assert "not the topic's 'duct-7'" in (check_message(topic, other) or "")
    no_seq = json.dumps({"v": 1, "device": DEVICE, "ts": "2026-11-25T21:04:05Z"}).encode()
    error = check_message(topic, no_seq, envelope_only=("telemetry",)) or ""
    assert "envelope.schema.json" in error and "'seq' is a required property" in error
    assert "no wire-format schema" in (check_message("elsewhere/x", b"{}") or "")


@pytest.mark.broker
def test_a_subscriber_fails_the_test_on_a_message_that_breaks_its_schema(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    watcher = subscribe(mosquitto, f"remotair/v1/{DEVICE}/#")
    publisher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        topic = wire.telemetry_topic(DEVICE)
        publisher.publish(topic, enveloped(topic, {"sensors": {}}), qos=1).wait_for_publish(5)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    with pytest.raises(pytest.fail.Exception, match=f"{topic}: does not fit telemetry"):
        watcher.wait_for(lambda ms: len(ms) >= 2, timeout=10)
    watcher.schema_errors.clear()  # seen and asserted: the fixture's teardown check passes
