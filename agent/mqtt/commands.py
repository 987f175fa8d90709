"""Commands arriving on ``cmd/<name>``: read, run through the agent's command table on a small
worker pool (so a slow command never stalls paho), answered through the outbox on
``result/<name>`` (or an MQTT 5 response topic under the device's own topics) with the
request's ``id``.

A command cannot be turned against the fleet: an MQTT 5 ResponseTopic outside this device's own
topics (``<topic_root>/<device>/``) and outside ``[mqtt] reply_prefix`` is refused (code
``reply_topic_refused``, the command does not run) and answered on ``result/<name>``. A request
carries its staleness with it, as MQTT 5 message expiry or an ``expires`` field: one that would
run after it is answered ``expired`` and not run (a command queued by a persistent session while
the board was offline, or stuck behind a slow one).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from agent import wire
from agent.command_table import CommandReply, CommandTable, Outcome, Transport
from agent.mqtt.settings import MqttSettings
from agent.outbox import MessageClass, Outbox, OutboxError

__all__ = ["CommandRunner", "Request", "read_request"]

log = logging.getLogger(__name__)

ENVELOPE_FIELDS = ("id", "expires")
"""The transport's own fields of a command body; the rest are the command's arguments."""


class MalformedCommand(ValueError):
    """The body cannot be read as a command."""


@dataclass(frozen=True, slots=True)
class Request:
    """A command body as the transport reads it."""

    id: str | int | None
    arguments: dict[str, Any]
    expires_at: float | None = None
    """Epoch seconds from the body's ``expires``; None when it has none."""


def read_request(payload: bytes) -> Request:
    """A command body -> :class:`Request`. Raises :class:`MalformedCommand`."""
    try:
        request = json.loads(payload.decode("utf-8")) if payload else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedCommand(f"malformed command: {exc}") from exc
    if not isinstance(request, dict):
        raise MalformedCommand(
            f"malformed command: the body is a JSON {type(request).__name__}, not an object"
        )
    request_id = request.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, str | int)
    ):
        raise MalformedCommand("malformed command: id must be a string or an integer")
    arguments = {k: v for k, v in request.items() if k not in ENVELOPE_FIELDS}
    return Request(request_id, arguments, _expiry(request.get("expires")))


def _expiry(value: object) -> float | None:
    """``expires``: epoch seconds, or UTC ISO 8601 with ``Z`` or an offset."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if when.tzinfo is not None:
                return when.timestamp()
    raise MalformedCommand(
        "malformed command: expires must be epoch seconds or UTC ISO 8601 (2026-11-26T10:00:00Z)"
    )


class CommandRunner:
    """Runs MQTT commands on worker threads and queues their results."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        device_id: str,
        commands: CommandTable | None,
        *,
        record_error: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.device_id = device_id
        self.commands = commands if commands is not None else CommandTable([])
        self._record_error = record_error
        self._workers: ThreadPoolExecutor | None = None
        own = wire.device_topic(device_id, "x", topic_root=settings.topic_root)[:-1]
        self.reply_prefixes = tuple(
            p for p in (own, f"{settings.reply_prefix}/" if settings.reply_prefix else None) if p
        )
        """A ResponseTopic must start with one of these."""

    def start(self) -> None:
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remotair-cmd")

    def stop(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
            self._workers = None

    def received(self, message: paho.MQTTMessage) -> None:
        """A message on the command filter (paho's thread): hand it to a worker."""
        if message.retain:
            log.warning("mqtt ignored retained command topic=%s", message.topic)
            return
        name = wire.command_name(message.topic, self.device_id, topic_root=self.settings.topic_root)
        if name is None:
            log.warning("mqtt ignored command on unusable topic=%s", message.topic)
            return
        response_topic: str | None = None
        correlation: bytes | None = None
        expires_at: float | None = None
        properties = message.properties
        if properties is not None:
            response_topic = getattr(properties, "ResponseTopic", None) or None
            correlation = getattr(properties, "CorrelationData", None) or None
            remaining = getattr(properties, "MessageExpiryInterval", None)
            if remaining is not None:  # what the broker left of it, counted from now
                expires_at = time.time() + float(remaining)
        workers = self._workers
        if workers is None:
            return
        workers.submit(
            self.run, name, bytes(message.payload), response_topic, correlation, expires_at
        )

    def run(
        self,
        name: str,
        payload: bytes,
        response_topic: str | None,
        correlation: bytes | None,
        expires_at: float | None = None,
    ) -> None:
        """Run one command and queue its result (a worker thread)."""
        request_id: str | int | None = None
        if response_topic is not None and not response_topic.startswith(self.reply_prefixes):
            reply = CommandReply.refused(
                name,
                Outcome.REPLY_TOPIC_REFUSED,
                f"response topic {response_topic!r} is outside this device's topics"
                f" ({' or '.join(p + '...' for p in self.reply_prefixes)}): not run",
            )
            response_topic = None
            request_id = _id_of(payload)
        else:
            try:
                request = read_request(payload)
            except MalformedCommand as exc:
                reply = CommandReply.malformed(name, str(exc))
            else:
                request_id = request.id
                stale = [t for t in (expires_at, request.expires_at) if t is not None]
                reply = self.commands.call(
                    name,
                    request.arguments,
                    transport=Transport.REMOTE,
                    payload_bytes=len(payload),
                    expires_at=min(stale) if stale else None,
                    request_id=request_id,
                )
        body = {"command": name, "id": request_id, **reply.to_body()}
        log.info("mqtt command name=%s id=%s ok=%s", name, request_id, reply.ok)
        self._put_result(name, body, response_topic, correlation)

    def _put_result(
        self,
        name: str,
        body: dict[str, object],
        response_topic: str | None,
        correlation: bytes | None,
    ) -> None:
        topic = response_topic if self.settings.protocol == "5" else None
        try:
            try:
                self.outbox.put(
                    MessageClass.RESULT, name, body, topic=topic, correlation_data=correlation
                )
            except wire.WireError as exc:
                if topic is None:
                    raise
                log.warning(
                    "mqtt response topic %r unusable (%s): using result/%s", topic, exc, name
                )
                self.outbox.put(MessageClass.RESULT, name, body, correlation_data=correlation)
        except (OutboxError, wire.WireError) as exc:
            self._record_error(str(exc))
            log.error("mqtt cannot queue command result name=%s error=%s", name, exc)


def _id_of(payload: bytes) -> str | int | None:
    """The request's id, for answering a request refused before it was read."""
    try:
        return read_request(payload).id
    except MalformedCommand:
        return None
