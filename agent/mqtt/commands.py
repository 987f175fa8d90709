"""Commands arriving on ``cmd/<name>``: read, run through the agent's command table on a small
worker pool (so a slow command never stalls paho), answered through the outbox on
``result/<name>`` (or an MQTT 5 response topic) with the request's ``id``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import paho.mqtt.client as paho

from agent import wire
from agent.command_table import CommandReply, CommandTable, Transport
from agent.mqtt.settings import MqttSettings
from agent.outbox import MessageClass, Outbox, OutboxError

__all__ = ["CommandRunner", "read_request"]

log = logging.getLogger(__name__)

ENVELOPE_FIELDS = ("id",)
"""The transport's own fields of a command body; the rest are the command's arguments."""


class MalformedCommand(ValueError):
    """The body cannot be read as a command."""


def read_request(payload: bytes) -> tuple[str | int | None, dict[str, Any]]:
    """A command body -> (request id, arguments). Raises :class:`MalformedCommand`."""
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
    return request_id, arguments


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
        properties = message.properties
        if properties is not None:
            response_topic = getattr(properties, "ResponseTopic", None) or None
            correlation = getattr(properties, "CorrelationData", None) or None
        workers = self._workers
        if workers is None:
            return
        workers.submit(self.run, name, bytes(message.payload), response_topic, correlation)

    def run(
        self, name: str, payload: bytes, response_topic: str | None, correlation: bytes | None
    ) -> None:
        """Run one command and queue its result (a worker thread)."""
        request_id: str | int | None = None
        try:
            request_id, arguments = read_request(payload)
        except MalformedCommand as exc:
            reply = CommandReply.malformed(name, str(exc))
        else:
            reply = self.commands.call(
                name,
                arguments,
                transport=Transport.REMOTE,
                payload_bytes=len(payload),
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
