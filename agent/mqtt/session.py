"""One connection attempt to the broker: one paho client and its in-flight window.

A fresh session (and paho client) per attempt means nothing paho buffered for a dead connection
is replayed behind the outbox's back: the outbox alone decides what is resent. The session knows
nothing of the outbox; it reports what happens on the wire to a :class:`SessionEvents`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent import wire
from agent.mqtt.describe import describe_connect_error, describe_socket_error, reason_text
from agent.mqtt.settings import MqttSettings
from agent.outbox import OutboxMessage

__all__ = ["HANDOVER_FACTOR", "Session", "SessionEvents"]

log = logging.getLogger(__name__)

HANDOVER_FACTOR = 4
"""paho may hold this many times ``inflight`` unacknowledged messages in its own queue."""
_LOOP_TIMEOUT_S = 0.5


class SessionEvents(Protocol):
    """What a session reports; paho's network thread calls all of these (or the sender thread
    for an acknowledgement that overtook its publish call)."""

    def going_online(self) -> None:
        """The CONNACK arrived. Called under the session lock while it becomes ready, so that
        the sender cannot hand paho anything before this returns."""

    def connected(self, session: Session) -> None:
        """The session is ready for publishing."""

    def acknowledged(self, seq: int, *, wake: bool) -> None:
        """The broker took ``seq``; ``wake`` says the window has room for another batch."""

    def rejected(self, session: Session, seq: int, reason: str) -> None:
        """The broker answered ``seq`` with a failure reason code (MQTT 5)."""

    def command_received(self, message: paho.MQTTMessage) -> None:
        """A message arrived on the command filter."""

    def watched(self, topic: str, payload: bytes) -> None:
        """A message arrived on one of the link's watched topics (Home Assistant's birth)."""


def _write_wanted(client: paho.Client, userdata: object, sock: object) -> None:
    """Nothing to do: the network thread's ``loop()`` selects for writing when paho has data."""


class Session:
    """One connection attempt: one paho client and its in-flight accounting.

    ``lock`` guards ``ready`` and the packet-id bookkeeping (``inflight``, ``early_acks``).
    """

    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        events: SessionEvents,
        ssl_context: ssl.SSLContext | None,
        *,
        sim: bool = False,
        watch: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.watch = watch
        """Topics subscribed besides the commands; their messages go to ``events.watched``."""
        self.device_id = device_id
        self.events = events
        self.tls = ssl_context is not None
        self.v5 = settings.protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or device_id,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            clean_session=None if self.v5 else settings.session_expiry_s == 0,
            reconnect_on_failure=False,
        )
        self.client.connect_timeout = settings.handshake_timeout_s
        self.client.max_inflight_messages_set(settings.inflight)
        self.client.max_queued_messages_set(0)
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        if ssl_context is not None:
            self.client.tls_set_context(ssl_context)
        status_topic = wire.status_topic(device_id, topic_root=settings.topic_root)
        will = wire.encode_envelope(
            device_id,
            None,
            {"state": "offline", "reason": "connection lost"},
            topic=status_topic,
            ts=time.time(),
            sim=sim,
        )
        self.client.will_set(status_topic, will, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_log = self._on_log
        # Only the network thread may write to the socket (two writers corrupt a TLS stream):
        # with a write-registration callback, publish() from the sender thread queues the packet
        # and wakes the network thread's select() instead of writing itself.
        self.client.on_socket_register_write = _write_wanted
        self.client.on_socket_unregister_write = _write_wanted

        self.lock = threading.RLock()
        self.ready = False
        self.refused: str | None = None
        self.socket_error: str | None = None
        self.connected_since: float | None = None
        self.session_present = False
        """The broker still had this client's session (CONNACK): it did not restart empty."""
        self.commands_subscribed = False
        """The broker acknowledged the ``cmd/+`` subscription (SUBACK without a failure code)."""
        self.inflight: dict[int, int] = {}
        self.refill_below = settings.inflight * (HANDOVER_FACTOR - 1)
        """Wake the sender once this few are unacknowledged: it then hands over a batch."""
        self.early_acks: dict[int, ReasonCode] = {}

    # -- paho callbacks (paho's network thread) ---------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.refused = f"broker refused connection: {reason_text(reason)}"
            return
        self.connected_since = time.time()
        self.session_present = bool(flags.session_present)
        filter_ = wire.command_filter(self.device_id, topic_root=self.settings.topic_root)
        client.subscribe([(filter_, 1), *((topic, 1) for topic in self.watch)])
        # The online status is queued once the session counts as connected (so it says so) and
        # under the session lock, so the sender cannot slip an older, "not connected" status out
        # first: the new one supersedes it before the sender's next batch.
        with self.lock:
            self.ready = True
            self.events.going_online()
        self.events.connected(self)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        commands, *watched = reasons  # one SUBACK for the command filter and the watch topics
        if commands.is_failure:
            # AWS IoT Core answers a subscription its policy denies with 0x80: the link works,
            # but no command will ever arrive. Say so instead of waiting in silence.
            log.warning(
                "mqtt command subscription refused reason=%s (is cmd/+ allowed for this client?)",
                reason_text(commands),
            )
        for topic, reason in zip(self.watch, watched, strict=False):
            if reason.is_failure:
                log.warning(
                    "mqtt subscription refused topic=%s reason=%s", topic, reason_text(reason)
                )
        self.commands_subscribed = not commands.is_failure

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self.lock:
            self.ready = False
        if self.socket_error is None:
            if flags.is_disconnect_packet_from_server:
                self.socket_error = f"broker disconnected us: {reason_text(reason)}"
            elif self.connected_since is None and self.refused is None:
                self.socket_error = "broker closed the connection before its CONNACK" + (
                    " (a broker that speaks only MQTT 3.1.1, such as RabbitMQ's MQTT plugin,"
                    ' drops MQTT 5 clients: try [mqtt] protocol = "3.1.1")'
                    if self.v5
                    else ""
                )
            elif reason.is_failure:
                self.socket_error = "connection lost (broker closed it or the network dropped)"

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self.lock:
            seq = self.inflight.pop(mid, None)
            if seq is None:
                self.early_acks[mid] = reason
                return
            refill = len(self.inflight) <= self.refill_below
        self._answered(seq, reason, refill=refill)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.topic in self.watch:
            self.events.watched(message.topic, bytes(message.payload))
        else:
            self.events.command_received(message)

    def _on_log(self, client: paho.Client, userdata: object, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR and self.socket_error is None:
            self.socket_error = describe_socket_error(text, tls=self.tls, connected=self.ready)

    def _answered(self, seq: int, reason: ReasonCode, *, refill: bool = True) -> None:
        if reason.is_failure:
            self.events.rejected(self, seq, f"broker rejected publish: {reason_text(reason)}")
        else:
            self.events.acknowledged(seq, wake=refill)

    # -- called from the sender thread ------------------------------------------------------

    def publish(self, message: OutboxMessage) -> bool:
        """Publish one message at QoS 1; False when the connection is gone."""
        properties = None
        if self.v5 and message.correlation_data is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = message.correlation_data
        info = self.client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, properties=properties
        )
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.debug("mqtt publish not sent seq=%d rc=%s", message.seq, info.rc)
            return False
        with self.lock:
            early = self.early_acks.pop(info.mid, None)
            if early is None:
                self.inflight[info.mid] = message.seq
        if early is not None:
            self._answered(message.seq, early)
        return True

    def room(self) -> int:
        """How many more messages may be handed to paho now.

        paho keeps at most ``inflight`` on the wire (``max_inflight_messages_set``) and sends the
        next one from its own queue on each PUBACK without waiting for our thread; we hand it at
        most ``HANDOVER_FACTOR * inflight`` unacknowledged messages in all.
        """
        with self.lock:
            if not self.ready:
                return 0
            return self.settings.inflight * HANDOVER_FACTOR - len(self.inflight)

    def unacknowledged_seqs(self) -> list[int]:
        """The messages handed over and not acknowledged, oldest first (after a drop: the ones
        that were in flight when the connection ended)."""
        with self.lock:
            return list(self.inflight.values())

    def unacknowledged(self) -> int:
        """For :meth:`MqttLink.state`; read without the lock (a snapshot, and the lock may be
        held by a thread that is waiting for the link's state lock)."""
        return len(self.inflight)

    # -- the network thread's loop, and closing from the stopping thread --------------------

    def run(self) -> str:
        """Connect and run paho's loop until the connection ends; returns why it ended."""
        settings = self.settings
        # Commands sent while the board was away wait in its broker session (3.1.1: the clean
        # session flag, set when the client was made).
        v5_session: dict[str, Any] = {}
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = settings.session_expiry_s
            v5_session = {"clean_start": settings.session_expiry_s == 0, "properties": properties}
        try:
            self.client.connect(settings.host, settings.port, settings.keepalive, **v5_session)
        except (OSError, ssl.SSLError) as exc:
            return describe_connect_error(exc, settings)
        connack_by = time.monotonic() + settings.handshake_timeout_s
        while True:
            rc = self.client.loop(timeout=_LOOP_TIMEOUT_S)
            if self.refused is not None:
                self.client.disconnect()
                return self.refused
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if self.connected_since is None and time.monotonic() > connack_by:
                self.client.disconnect()
                return (
                    f"no CONNACK from {settings.host}:{settings.port} "
                    f"within {settings.handshake_timeout_s:g} s"
                )
        with self.lock:
            self.ready = False
        if self.refused is not None:
            return self.refused
        return self.socket_error or f"connection lost ({paho.error_string(rc)})"

    def close(self, *, clean: bool) -> None:
        """Disconnect; unless ``clean``, so that the broker publishes the last will."""
        if clean:
            self.client.disconnect()
        elif self.v5:
            self.client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            )
        else:
            sock = self.client.socket()
            if sock is not None:
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # type: ignore[arg-type]
                except OSError as exc:
                    log.debug("mqtt socket shutdown failed: %s", exc)
