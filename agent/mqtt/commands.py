"""Commands arriving on ``cmd/<name>``: parsed, run on a small worker pool, answered through the
outbox on ``result/<name>`` (or an MQTT 5 response topic) so a slow command never stalls paho."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as paho

from agent import wire
from agent.errors import describe_exception
from agent.mqtt.settings import MqttSettings
from agent.outbox import MessageClass, Outbox, OutboxError

__all__ = ["CommandHandler", "CommandRunner"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, object]], dict[str, object]]


class CommandRunner:
    """Runs MQTT commands on worker threads and queues their results."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        device_id: str,
        on_command: CommandHandler | None,
        *,
        record_error: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.device_id = device_id
        self._on_command = on_command
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
        request_id: object = None
        body: dict[str, object]
        try:
            request = json.loads(payload.decode("utf-8")) if payload else {}
            if not isinstance(request, dict):
                raise ValueError(f"command body is a JSON {type(request).__name__}, not an object")
            request_id = request.get("id")
            if request_id is not None and (
                isinstance(request_id, bool) or not isinstance(request_id, str | int)
            ):
                request_id = None
                raise ValueError("command id must be a string or an integer")
            if self._on_command is None:
                raise ValueError("this agent takes no commands")
            reply = self._on_command(name, request)
            if not isinstance(reply, Mapping):
                raise TypeError(f"command {name} returned {type(reply).__name__}, not a dict")
            body = {"command": name, "id": request_id, "ok": True, "result": dict(reply)}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            body = {"command": name, "id": None, "ok": False, "error": f"malformed command: {exc}"}
        except Exception as exc:
            text, _ = describe_exception(exc)
            body = {"command": name, "id": request_id, "ok": False, "error": text}
        log.info("mqtt command name=%s id=%s ok=%s", name, request_id, body["ok"])
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
