"""Wire format version 1: topics, limits, envelope."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent import wire
from agent.wire import MessageClass, WireError


def test_topics_of_every_message_class() -> None:
    assert wire.telemetry_topic("duct-7") == "remotair/v1/duct-7/telemetry"
    assert wire.vision_topic("duct-7", "upstream") == "remotair/v1/duct-7/vision/upstream"
    assert wire.alarm_topic("duct-7", "co2_high") == "remotair/v1/duct-7/alarm/co2_high"
    assert wire.status_topic("duct-7") == "remotair/v1/duct-7/status"
    assert wire.command_topic("duct-7", "ping") == "remotair/v1/duct-7/cmd/ping"
    assert wire.result_topic("duct-7", "ping") == "remotair/v1/duct-7/result/ping"
    assert wire.command_filter("duct-7") == "remotair/v1/duct-7/cmd/+"


def test_topic_for_maps_classes_and_suffixes() -> None:
    assert wire.topic_for(MessageClass.VERDICT, "d1", "cam0") == "remotair/v1/d1/vision/cam0"
    assert wire.topic_for(MessageClass.RESULT, "d1", "ping") == "remotair/v1/d1/result/ping"
    assert wire.topic_for(MessageClass.TELEMETRY, "d1", "", topic_root="x/y") == "x/y/d1/telemetry"
    assert (
        wire.topic_for(MessageClass.DISCOVERY, "d1", "homeassistant/sensor/d1/a/config")
        == "homeassistant/sensor/d1/a/config"
    )
    with pytest.raises(WireError, match="must be 'telemetry'"):
        wire.topic_for(MessageClass.TELEMETRY, "d1", "extra")


@pytest.mark.parametrize(
    ("kind", "suffix", "topic"),
    [
        (MessageClass.TELEMETRY, "telemetry", "remotair/v1/d1/telemetry"),
        (MessageClass.STATUS, "status", "remotair/v1/d1/status"),
        (MessageClass.STATUS, "", "remotair/v1/d1/status"),
        (MessageClass.VERDICT, "vision/cam0", "remotair/v1/d1/vision/cam0"),
        (MessageClass.ALARM, "alarm/co2_high", "remotair/v1/d1/alarm/co2_high"),
        (MessageClass.ALARM, "co2_high", "remotair/v1/d1/alarm/co2_high"),
        (MessageClass.RESULT, "result/ping", "remotair/v1/d1/result/ping"),
    ],
)
def test_topic_for_accepts_relative_paths(kind: MessageClass, suffix: str, topic: str) -> None:
    assert wire.topic_for(kind, "d1", suffix) == topic


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [
        (MessageClass.ALARM, "vision/cam0"),
        (MessageClass.VERDICT, "alarm/x"),
        (MessageClass.STATUS, "telemetry"),
        (MessageClass.RESULT, "result/a/b"),
    ],
)
def test_topic_for_refuses_a_suffix_of_another_class(kind: MessageClass, suffix: str) -> None:
    with pytest.raises(WireError):
        wire.topic_for(kind, "d1", suffix)


@pytest.mark.parametrize("name", ["", "a/b", "a+b", "#", "sp ace", "é", "a.b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(WireError, match="not topic-safe"):
        wire.vision_topic("d1", name)


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("a//b", "empty level"),
        ("a/+/b", "wildcard"),
        ("a/#", "wildcard"),
        ("", "empty topic"),
        ("/".join("abcdefghi"), "9 levels"),
    ],
)
def test_validate_topic_rejects(topic: str, why: str) -> None:
    with pytest.raises(WireError, match=why):
        wire.validate_topic(topic)


def test_eight_levels_is_the_limit() -> None:
    assert wire.validate_topic("/".join("abcdefgh")) == "a/b/c/d/e/f/g/h"
    with pytest.raises(WireError, match="levels"):
        wire.device_topic("d1", "a", "b", "c", "d", "e", "f", topic_root="r/v1")


def test_command_name_parsing() -> None:
    assert wire.command_name("remotair/v1/d1/cmd/read_now", "d1") == "read_now"
    assert wire.command_name("remotair/v1/d2/cmd/ping", "d1") is None
    assert wire.command_name("remotair/v1/d1/cmd/bad name", "d1") is None
    assert wire.command_name("remotair/v1/d1/status", "d1") is None


def test_timestamp_is_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 25, 22, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert wire.format_ts(moment) == "2026-11-25T21:04:05.123Z"
    assert wire.format_ts(0.5) == "1970-01-01T00:00:00.500Z"
    with pytest.raises(WireError, match="no time zone"):
        wire.format_ts(datetime(2026, 1, 1))


def test_envelope_fields_first_then_body_compact_utf8() -> None:
    payload = wire.encode_envelope(
        "duct-7",
        42,
        {"label": "propre", "temp": "21 °C"},
        topic="t",
        ts=datetime(2026, 1, 2, tzinfo=UTC),
    )
    text = payload.decode("utf-8")
    assert " " not in text.replace("21 °C", "")
    assert "°" in text  # UTF-8, not \u escapes
    document = json.loads(text)
    assert list(document) == ["v", "device", "seq", "ts", "label", "temp"]
    assert document["v"] == 1
    assert document["device"] == "duct-7"
    assert document["seq"] == 42
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(document["ts"]))
    assert wire.decode_payload(payload) == document


def test_a_simulated_board_says_so_in_the_envelope_a_real_one_has_no_sim_key() -> None:
    simulated = json.loads(wire.encode_envelope("d1", 1, {"x": 1}, topic="t", ts=0.0, sim=True))
    assert list(simulated) == ["v", "device", "seq", "ts", "sim", "x"]
    assert simulated["sim"] is True
    real = json.loads(wire.encode_envelope("d1", 1, {"x": 1}, topic="t", ts=0.0))
    assert "sim" not in real


@pytest.mark.parametrize("key", ["seq", "sim"])
def test_envelope_refuses_clashing_keys_and_nan(key: str) -> None:
    with pytest.raises(WireError, match="envelope key"):
        wire.encode_envelope("d1", 1, {key: 3}, topic="t", ts=0.0)
    with pytest.raises(WireError, match="non-finite"):
        wire.encode_envelope("d1", 1, {"co2_ppm": float("nan")}, topic="t", ts=0.0)
    with pytest.raises(WireError, match="not valid JSON"):
        wire.encode_envelope("d1", 1, {"nested": {"x": float("inf")}}, topic="t", ts=0.0)


def test_payload_limit_is_128_kib() -> None:
    overhead = len(wire.encode_envelope("d1", 1, {"x": ""}, topic="t", ts=0.0))
    fits = wire.encode_envelope(
        "d1", 1, {"x": "a" * (wire.MAX_PAYLOAD_BYTES - overhead)}, topic="t", ts=0.0
    )
    assert len(fits) == wire.MAX_PAYLOAD_BYTES == 131072
    with pytest.raises(wire.PayloadTooLargeError) as caught:
        wire.encode_envelope(
            "d1", 1, {"x": "a" * (wire.MAX_PAYLOAD_BYTES - overhead + 1)}, topic="t", ts=0.0
        )
    assert caught.value.size == wire.MAX_PAYLOAD_BYTES + 1
    assert "over the 131072-byte limit" in str(caught.value)


def test_decode_rejects_non_objects() -> None:
    with pytest.raises(WireError, match="not an object"):
        wire.decode_payload(b"[1]")
    with pytest.raises(WireError, match="not UTF-8 JSON"):
        wire.decode_payload(b"\xff")
