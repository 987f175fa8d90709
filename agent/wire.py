"""MQTT wire format, version 1: topics, the JSON envelope and the message classes.

Everything the board publishes lives under ``remotair/v1/<device_id>/``::

    telemetry            MessageClass.TELEMETRY  sensor readings and per-sensor faults
    vision/<camera>      MessageClass.VERDICT    one clean/dirty verdict of one camera
    alarm/<name>         MessageClass.ALARM      an alarm raised or cleared
    status               MessageClass.STATUS     health; retained; the last will sets it offline
    model                MessageClass.MODEL      model rollout state; retained
    result/<command>     MessageClass.RESULT     the answer to a command (carries the request id)
    cmd/<command>        (subscribed)            commands to the board: ``{"id": "...", ...args}``

Home Assistant discovery configs (``MessageClass.DISCOVERY``) go to the discovery prefix
(``homeassistant/...``), are retained and are *not* wrapped in the envelope: Home Assistant reads
their keys as configuration (its ``device`` key is a mapping, not our device id).

Every other payload is one compact UTF-8 JSON object, the envelope first, then the body's fields::

    {"v":1,"device":"duct-7","seq":1042,"ts":"2026-11-25T21:04:05.123Z", ...body}

A message from a simulated board (``[board] kind = "sim"``, or ``--sim``) carries
``"sim": true`` right after ``ts``, so that no consumer mistakes simulated readings for real
ones; a real board's messages have no ``sim`` key.

``seq`` is assigned by the outbox: per device, strictly increasing, persisted, never reused (not
the 16-bit MQTT packet id). Delivery is at-least-once, so a consumer deduplicates on
``(device, seq)`` and detects loss as a gap in ``seq``. The broker-published last will is the one
payload the outbox never saw: it carries ``"seq": null``.

The limits are AWS IoT Core's, so that any broker takes the messages unchanged: at most
:data:`MAX_TOPIC_LEVELS` topic levels and :data:`MAX_PAYLOAD_BYTES` a payload.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from agent.errors import ExitCode, RemotairError

WIRE_VERSION = 1
TOPIC_ROOT = "remotair/v1"
MAX_TOPIC_LEVELS = 8
MAX_TOPIC_BYTES = 256
"""AWS IoT Core's limit on a topic's length in UTF-8 bytes."""
MAX_PAYLOAD_BYTES = 128 * 1024
"""AWS IoT Core's payload limit; the outbox refuses anything larger at put time."""

ENVELOPE_KEYS = ("v", "device", "seq", "ts")
SIM_KEY = "sim"
"""Envelope key present (``true``) only on messages from a simulated board."""

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ROOT_LEVEL = re.compile(r"[A-Za-z0-9_.-]+")


class MessageClass(enum.StrEnum):
    """What a message is; decides its topic and what the outbox may do with it when full."""

    TELEMETRY = "telemetry"
    VERDICT = "verdict"
    ALARM = "alarm"
    STATUS = "status"
    MODEL = "model"
    RESULT = "result"
    DISCOVERY = "discovery"


class WireError(RemotairError):
    """A topic or a payload that does not fit wire format version 1."""

    exit_code = ExitCode.FAILURE


class PayloadTooLargeError(WireError):
    """A payload over :data:`MAX_PAYLOAD_BYTES`: refused, never queued."""

    def __init__(self, topic: str, size: int, limit: int = MAX_PAYLOAD_BYTES) -> None:
        super().__init__(f"payload for {topic} is {size} bytes, over the {limit}-byte limit")
        self.topic = topic
        self.size = size
        self.limit = limit


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is usable as one topic level (``[A-Za-z0-9_-]+``)."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise WireError(f"{what} {name!r} is not topic-safe: use letters, digits, '_' or '-'")
    return name


def validate_topic(topic: str) -> str:
    """Return ``topic`` if a broker (AWS IoT Core included) takes it for a publish."""
    if not topic:
        raise WireError("empty topic")
    if "+" in topic or "#" in topic:
        raise WireError(f"topic {topic!r} contains a wildcard")
    if "\x00" in topic:
        raise WireError(f"topic {topic!r} contains a NUL character")
    levels = topic.split("/")
    if any(level == "" for level in levels):
        raise WireError(f"topic {topic!r} has an empty level")
    if len(levels) > MAX_TOPIC_LEVELS:
        raise WireError(f"topic {topic!r} has {len(levels)} levels, over {MAX_TOPIC_LEVELS}")
    size = len(topic.encode("utf-8"))
    if size > MAX_TOPIC_BYTES:
        raise WireError(f"topic {topic!r} is {size} bytes long, over {MAX_TOPIC_BYTES}")
    return topic


def check_topic_root(topic_root: str) -> str:
    """Return ``topic_root`` if every level is plain (no wildcard, no ``$``, not empty)."""
    levels = topic_root.split("/")
    for level in levels:
        if _ROOT_LEVEL.fullmatch(level) is None:
            raise WireError(f"topic root {topic_root!r}: level {level!r} is not topic-safe")
    return topic_root


def device_topic(device_id: str, *levels: str, topic_root: str = TOPIC_ROOT) -> str:
    """``<root>/<device>/<levels...>``, every level checked."""
    check_topic_root(topic_root)
    parts = [topic_root, check_name(device_id, "device id")]
    parts.extend(check_name(level, "topic level") for level in levels)
    return validate_topic("/".join(parts))


def telemetry_topic(device_id: str, *, topic_root: str = TOPIC_ROOT) -> str:
    return device_topic(device_id, "telemetry", topic_root=topic_root)


def vision_topic(device_id: str, camera: str, *, topic_root: str = TOPIC_ROOT) -> str:
    return device_topic(device_id, "vision", check_name(camera, "camera"), topic_root=topic_root)


def alarm_topic(device_id: str, name: str, *, topic_root: str = TOPIC_ROOT) -> str:
    return device_topic(device_id, "alarm", check_name(name, "alarm name"), topic_root=topic_root)


def status_topic(device_id: str, *, topic_root: str = TOPIC_ROOT) -> str:
    return device_topic(device_id, "status", topic_root=topic_root)


def command_topic(device_id: str, command: str, *, topic_root: str = TOPIC_ROOT) -> str:
    return device_topic(device_id, "cmd", check_name(command, "command"), topic_root=topic_root)


def result_topic(device_id: str, command: str, *, topic_root: str = TOPIC_ROOT) -> str:
    return device_topic(device_id, "result", check_name(command, "command"), topic_root=topic_root)


def command_filter(device_id: str, *, topic_root: str = TOPIC_ROOT) -> str:
    """The subscription that receives every command for this device."""
    check_topic_root(topic_root)
    return f"{topic_root}/{check_name(device_id, 'device id')}/cmd/+"


def command_name(topic: str, device_id: str, *, topic_root: str = TOPIC_ROOT) -> str | None:
    """The command name of a ``cmd/<command>`` topic of this device, or None if it is not one."""
    prefix = f"{topic_root}/{device_id}/cmd/"
    if not topic.startswith(prefix):
        return None
    name = topic[len(prefix) :]
    return name if _NAME.fullmatch(name) else None


_CLASS_LEVEL = {
    MessageClass.TELEMETRY: "telemetry",
    MessageClass.STATUS: "status",
    MessageClass.MODEL: "model",
    MessageClass.VERDICT: "vision",
    MessageClass.ALARM: "alarm",
    MessageClass.RESULT: "result",
}


def topic_for(
    kind: MessageClass, device_id: str, suffix: str, *, topic_root: str = TOPIC_ROOT
) -> str:
    """The topic of a message of class ``kind``; ``suffix`` is checked against the class.

    ``suffix`` is the topic below ``<root>/<device>/``: ``telemetry``, ``status``,
    ``vision/<camera>``, ``alarm/<name>``, ``result/<command>``. The short forms are accepted
    too: empty for telemetry and status, the bare camera / alarm / command name for the others.
    For discovery it is the full topic (``homeassistant/...``), outside the device's tree.
    """
    if kind is MessageClass.DISCOVERY:
        return validate_topic(suffix)
    level = _CLASS_LEVEL[kind]
    if kind in (MessageClass.TELEMETRY, MessageClass.STATUS, MessageClass.MODEL):
        if suffix not in ("", level):
            raise WireError(f"{kind} message: topic suffix must be '{level}', got {suffix!r}")
        return device_topic(device_id, level, topic_root=topic_root)
    name = suffix.removeprefix(f"{level}/")
    what = {"vision": "camera", "alarm": "alarm name", "result": "command"}[level]
    return device_topic(device_id, level, check_name(name, what), topic_root=topic_root)


def format_ts(when: datetime | float) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``: ``2026-11-25T21:04:05.123Z``."""
    moment = when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)
    if moment.tzinfo is None:
        raise WireError(f"timestamp {moment!r} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_json(document: Mapping[str, object], topic: str) -> bytes:
    """Compact UTF-8 JSON; NaN/infinity refused (JSON has no such numbers)."""
    try:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise WireError(f"payload for {topic} is not valid JSON: {exc}") from exc
    except TypeError as exc:
        raise WireError(f"payload for {topic} is not JSON-serialisable: {exc}") from exc
    payload = text.encode("utf-8")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(topic, len(payload))
    return payload


def encode_envelope(
    device_id: str,
    seq: int | None,
    body: Mapping[str, object],
    *,
    topic: str,
    ts: datetime | float,
    sim: bool = False,
) -> bytes:
    """The envelope (``v``, ``device``, ``seq``, ``ts``, and ``sim`` from a simulated board)
    followed by the body's fields."""
    clash = [key for key in (*ENVELOPE_KEYS, SIM_KEY) if key in body]
    if clash:
        raise WireError(f"payload body for {topic} uses envelope key(s) {', '.join(clash)}")
    if any(isinstance(value, float) and not math.isfinite(value) for value in body.values()):
        raise WireError(f"payload body for {topic} has a non-finite number")
    document: dict[str, object] = {
        "v": WIRE_VERSION,
        "device": device_id,
        "seq": seq,
        "ts": format_ts(ts),
    }
    if sim:
        document[SIM_KEY] = True
    document.update(body)
    return encode_json(document, topic)


def decode_payload(payload: bytes) -> dict[str, object]:
    """Parse one payload back into a dict (consumers and tests)."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"payload is not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise WireError(f"payload is a JSON {type(document).__name__}, not an object")
    return document
