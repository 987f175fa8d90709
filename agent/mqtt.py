"""The MQTT link (paho-mqtt 2.x): drains the outbox to the broker and answers commands.

Three threads, none of them the caller's:

* the network thread owns one paho client per connection attempt: it connects (TCP + TLS
  handshake bounded by ``handshake_timeout_s``, then CONNACK within the same bound), runs paho's
  ``loop()``, and on any failure waits an exponential back-off with jitter before trying again,
  the very first connection included. A fresh client per attempt means nothing paho buffered for
  a dead connection is replayed behind our back: the outbox alone decides what is resent.
* the sender thread publishes from the outbox at QoS 1, pending ``status`` first, then the
  backlog in ``seq`` order, never more than ``inflight`` messages unacknowledged. A message is
  deleted from the outbox only after its PUBACK: ``on_publish`` maps the packet id back to the
  ``seq`` and the sender thread deletes acknowledged messages in batches (one SQLite transaction
  each; a crash in between only means a duplicate). After a disconnect
  the new connection replays the outbox from its oldest message: duplicates are possible, gaps
  are not.
* a small worker pool runs ``on_command`` so that a slow command never stalls paho's thread.

``status`` is retained: ``online`` (with ``status_body()``) through the outbox on every connect;
the last will, registered with the broker at connect, is ``offline`` with ``"seq": null``.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent import wire
from agent.errors import ExitCode, RemotairError, describe_exception
from agent.outbox import MessageClass, Outbox, OutboxError, OutboxMessage

__all__ = ["CommandHandler", "LinkState", "MqttError", "MqttLink", "MqttSettings", "TlsSettings"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, object]], dict[str, object]]

_PREFETCH = 256
_IDLE_POLL_S = 1.0
_LOOP_TIMEOUT_S = 0.5
HANDOVER_FACTOR = 4
DELETE_BATCH = 128
_DELETE_EVERY_S = 0.2


class MqttError(RemotairError):
    """The MQTT settings cannot work (unreadable certificate, bad protocol name)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS with a CA and an optional client certificate (AWS IoT Core style, port 8883)."""

    ca: Path | None = None
    """CA bundle that signed the broker's certificate; None uses the system's CAs."""
    cert: Path | None = None
    key: Path | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    client_id: str = ""
    """Empty: the device id (AWS IoT Core policies usually key on the client id)."""
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: int = 60
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    handshake_timeout_s: float = 10.0
    """Bound on TCP connect + TLS handshake, and again on waiting for CONNACK."""
    inflight: int = 20
    """Messages published but not yet acknowledged, at most."""
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 120.0
    topic_root: str = wire.TOPIC_ROOT

    def __post_init__(self) -> None:
        if self.protocol not in ("3.1.1", "5"):
            raise MqttError(f"mqtt protocol {self.protocol!r}: use '3.1.1' or '5'")
        if not 0 < self.port < 65536:
            raise MqttError(f"mqtt port {self.port} is not a TCP port")
        if self.inflight < 1:
            raise MqttError(f"mqtt inflight {self.inflight} must be at least 1")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise MqttError(
                f"mqtt reconnect delays {self.reconnect_min_s}..{self.reconnect_max_s} s: "
                "need 0 < min <= max"
            )
        if self.handshake_timeout_s <= 0 or self.keepalive < 1:
            raise MqttError("mqtt handshake_timeout_s and keepalive must be positive")
        wire.check_topic_root(self.topic_root)


@dataclass(frozen=True, slots=True)
class LinkState:
    connected: bool
    connected_since: float | None
    """Wall-clock time (epoch seconds) of the current connection's CONNACK."""
    last_error: str | None
    next_retry_at: float | None
    """Wall-clock time of the next connection attempt while disconnected."""
    inflight: int
    """Published and not yet acknowledged (paho keeps at most ``inflight`` of them on the wire)."""


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential back-off with jitter: the ceiling doubles per attempt, the delay is drawn from
    its upper half, and the result is kept within ``[low, high]``."""
    ceiling = min(high, low * 2.0 ** min(attempt, 32))
    return min(high, max(low, rng.uniform(ceiling / 2.0, ceiling)))


def describe_connect_error(exc: BaseException, settings: MqttSettings) -> str:
    """One plain line for a failed TCP/TLS connection."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message} ({where})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {_ssl_reason(exc)} ({where})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where} (no broker listening?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {settings.handshake_timeout_s:g} s connecting to {where}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {settings.host}: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({where})"
    return f"{type(exc).__name__}: {exc} ({where})"


def describe_socket_error(text: str, *, tls: bool, connected: bool) -> str:
    """One plain line for an error paho met on an open socket (it only logs those)."""
    detail = text.split(": ", 1)[1] if text.startswith("failed to receive on socket: ") else text
    lowered = detail.lower()
    if "alert" in lowered:
        alert = detail.split("] ", 1)[-1].split(" (_ssl", 1)[0]
        hint = "" if connected else " (is the client certificate signed by a CA the broker trusts?)"
        return f"TLS: broker rejected the handshake: {alert}{hint}"
    if tls and not connected and ("eof" in lowered or "reset" in lowered):
        return (
            "TLS: broker closed the connection during the handshake (client certificate rejected?)"
        )
    if "ssl" in lowered:
        return f"TLS: {detail}"
    return detail


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.lower().replace("_", " ")
    return str(exc)


def _write_wanted(client: paho.Client, userdata: object, sock: object) -> None:
    """Nothing to do: the network thread's ``loop()`` selects for writing when paho has data."""


def _reason_text(reason: ReasonCode | int | None) -> str:
    if isinstance(reason, ReasonCode):
        return f"{reason.getName()} (0x{reason.value:02x})"
    return str(reason)


class _Session:
    """One connection attempt: one paho client and its in-flight accounting."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        settings = link.settings
        self.v5 = settings.protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or link.device_id,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            clean_session=None if self.v5 else True,
            reconnect_on_failure=False,
        )
        self.client.connect_timeout = settings.handshake_timeout_s
        self.client.max_inflight_messages_set(settings.inflight)
        self.client.max_queued_messages_set(0)
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        if link.ssl_context is not None:
            self.client.tls_set_context(link.ssl_context)
        will = wire.encode_envelope(
            link.device_id,
            None,
            {"state": "offline", "reason": "connection lost"},
            topic=link.status_topic,
            ts=time.time(),
        )
        self.client.will_set(link.status_topic, will, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
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
        self.inflight: dict[int, int] = {}
        self.refill_below = settings.inflight * (HANDOVER_FACTOR - 1)
        """Wake the sender once this few are unacknowledged: it then hands over a batch."""
        self.early_acks: dict[int, ReasonCode] = {}
        self.retries: deque[int] = deque()
        self.backlog: deque[OutboxMessage] = deque()
        self.cursor = 0
        self.status_dirty = True
        self.sent_status: set[int] = set()

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
            self.refused = f"broker refused connection: {_reason_text(reason)}"
            return
        self.connected_since = time.time()
        filter_ = wire.command_filter(self.link.device_id, topic_root=self.link.settings.topic_root)
        client.subscribe(filter_, qos=1)
        # The online status is queued once the session counts as connected (so it says so) and
        # under the session lock, so the sender cannot slip an older, "not connected" status out
        # first: the new one supersedes it before the sender's next batch.
        with self.lock:
            self.ready = True
            self.link._put_status("online")
        self.link._connected(self)

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
                self.socket_error = f"broker disconnected us: {_reason_text(reason)}"
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
        self._acknowledged(seq, reason, refill=refill)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self.link._command_received(message)

    def _on_log(self, client: paho.Client, userdata: object, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR and self.socket_error is None:
            tls = self.link.ssl_context is not None
            self.socket_error = describe_socket_error(text, tls=tls, connected=self.ready)

    # -- bookkeeping -------------------------------------------------------------------------

    def _acknowledged(self, seq: int, reason: ReasonCode, *, refill: bool = True) -> None:
        if not reason.is_failure:
            self.link._acknowledged(seq, wake=refill)
            return
        try:
            text = f"broker rejected publish: {_reason_text(reason)}"
            if not self.link.outbox.failed(seq, text):
                with self.lock:
                    self.retries.append(seq)
        except OutboxError as exc:
            self.link._record_error(str(exc))
            log.error("mqtt cannot update outbox seq=%d error=%s", seq, exc)
        self.link._wake()

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
            self._acknowledged(message.seq, early)
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
            return self.link.settings.inflight * HANDOVER_FACTOR - len(self.inflight)

    def next_batch(self, room: int) -> list[OutboxMessage]:
        """Retries of rejected messages, then pending status, then the backlog in seq order."""
        outbox = self.link.outbox
        batch: list[OutboxMessage] = []
        with self.lock:
            retries = [self.retries.popleft() for _ in range(min(room, len(self.retries)))]
            status_dirty, self.status_dirty = self.status_dirty, False
        for seq in retries:
            message = outbox.get(seq)
            if message is not None:
                batch.append(message)
        if status_dirty:
            for message in outbox.pending_status():
                if message.seq not in self.sent_status and len(batch) < room:
                    self.sent_status.add(message.seq)
                    batch.append(message)
        while len(batch) < room:
            if not self.backlog:
                self.backlog.extend(outbox.pending(max(_PREFETCH, room), after_seq=self.cursor))
                if not self.backlog:
                    break
                self.cursor = self.backlog[-1].seq
            message = self.backlog.popleft()
            if message.kind is MessageClass.STATUS:
                if message.seq in self.sent_status:
                    continue
                self.sent_status.add(message.seq)
            batch.append(message)
        return batch

    def note_put(self, message: OutboxMessage) -> None:
        if message.kind is MessageClass.STATUS:
            with self.lock:
                self.status_dirty = True


class MqttLink:
    """Keeps one device connected to one broker and drains its outbox there."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        device_id: str,
        *,
        on_command: CommandHandler | None = None,
        status_body: Callable[[], dict[str, object]],
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.device_id = wire.check_name(device_id, "device id")
        self.status_topic = wire.status_topic(device_id, topic_root=settings.topic_root)
        self.ssl_context: ssl.SSLContext | None = None
        self._on_command = on_command
        self._status_body = status_body
        self._rng = rng or random.Random()
        self._wake_cond = threading.Condition()
        self._events = 0
        self._state_lock = threading.Lock()
        self._session: _Session | None = None
        self._last_error: str | None = None
        self._next_retry_at: float | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acked_lock = threading.Lock()
        self._acked: list[int] = []
        self._last_delete = 0.0
        self._workers: ThreadPoolExecutor | None = None
        outbox.add_listener(self._message_put)

    # -- public --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; returns at once, broker or not."""
        if self._threads:
            raise RuntimeError("MqttLink already started")
        self.ssl_context = self._build_ssl_context()
        self._stopping.clear()
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remotair-cmd")
        self._threads = [
            threading.Thread(target=self._network_main, name="remotair-mqtt-net", daemon=True),
            threading.Thread(target=self._sender_main, name="remotair-mqtt-send", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush what the broker takes within the bound, publish offline, disconnect.

        If the offline status is not acknowledged in time the link drops the connection so that
        the broker publishes the last will (offline) itself.
        """
        deadline = time.monotonic() + max(0.0, flush_timeout_s)
        reserve = min(1.0, flush_timeout_s / 4)
        if self._connected_session() is not None:
            self._wait(lambda: self.outbox.stats().depth == 0, deadline - reserve)
        offline = self._put_status("offline")
        session = self._connected_session()
        delivered = False
        if session is not None and offline is not None:
            seq = offline.seq
            delivered = self._wait(lambda: self.outbox.get(seq) is None, deadline)
        self._stopping.set()
        self._wake()
        if session is not None:
            self._close(session, clean=delivered)
        join_by = time.monotonic() + self.settings.handshake_timeout_s + 2.0
        for thread in self._threads:
            thread.join(timeout=max(0.1, join_by - time.monotonic()))
            if thread.is_alive():
                log.warning("mqtt thread %s did not stop in time", thread.name)
        self._threads = []
        try:
            self._delete_acknowledged()
        except OutboxError as exc:
            log.error("mqtt cannot delete acknowledged messages at stop: %s", exc)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
            self._workers = None
        log.info(
            "mqtt stopped offline_status=%s",
            "delivered" if delivered else "left to the last will",
        )

    def state(self) -> LinkState:
        with self._state_lock:
            session = self._session
            connected = session is not None and session.ready
            return LinkState(
                connected=connected,
                connected_since=session.connected_since if connected and session else None,
                last_error=self._last_error,
                next_retry_at=None if connected else self._next_retry_at,
                inflight=len(session.inflight) if session is not None else 0,
            )

    # -- network thread ------------------------------------------------------------------------

    def _network_main(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            session = _Session(self)
            with self._state_lock:
                self._session = session
            error = self._run_session(session)
            if self._stopping.is_set():
                break
            if session.connected_since is not None:
                attempt = 0
            delay = backoff_delay(
                attempt, self.settings.reconnect_min_s, self.settings.reconnect_max_s, self._rng
            )
            attempt += 1
            with self._state_lock:
                self._last_error = error
                self._next_retry_at = time.time() + delay
            if session.connected_since is not None:
                log.warning(
                    "mqtt disconnected broker=%s reason=%s retry_in=%.1fs buffered=%s "
                    "(unacknowledged messages stay in the outbox)",
                    self._where(),
                    error,
                    delay,
                    self._buffered(),
                )
            else:
                log.warning(
                    "mqtt connect failed broker=%s error=%s retry_in=%.1fs buffered=%s",
                    self._where(),
                    error,
                    delay,
                    self._buffered(),
                )
            self._stopping.wait(delay)
        with self._state_lock:
            self._next_retry_at = None

    def _run_session(self, session: _Session) -> str:
        """Connect and run paho's loop until the connection ends; returns why it ended."""
        settings = self.settings
        try:
            session.client.connect(settings.host, settings.port, settings.keepalive)
        except (OSError, ssl.SSLError) as exc:
            return describe_connect_error(exc, settings)
        connack_by = time.monotonic() + settings.handshake_timeout_s
        while True:
            rc = session.client.loop(timeout=_LOOP_TIMEOUT_S)
            if session.refused is not None:
                session.client.disconnect()
                return session.refused
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if session.connected_since is None and time.monotonic() > connack_by:
                session.client.disconnect()
                return f"no CONNACK from {self._where()} within {settings.handshake_timeout_s:g} s"
        with session.lock:
            session.ready = False
        self._wake()
        if session.refused is not None:
            return session.refused
        return session.socket_error or f"connection lost ({paho.error_string(rc)})"

    def _connected(self, session: _Session) -> None:
        log.info(
            "mqtt connected broker=%s protocol=%s tls=%s client_id=%s",
            self._where(),
            self.settings.protocol,
            "yes" if self.ssl_context else "no",
            self.settings.client_id or self.device_id,
        )
        with self._state_lock:
            self._next_retry_at = None
        self._wake()

    def _close(self, session: _Session, *, clean: bool) -> None:
        if clean:
            session.client.disconnect()
        elif session.v5:
            session.client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            )
        else:
            sock = session.client.socket()
            if sock is not None:
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # type: ignore[arg-type]
                except OSError as exc:
                    log.debug("mqtt socket shutdown failed: %s", exc)

    # -- sender thread -------------------------------------------------------------------------

    def _acknowledged(self, seq: int, *, wake: bool) -> None:
        """PUBACK for ``seq`` (paho's thread): the sender thread deletes it, in batches."""
        with self._acked_lock:
            self._acked.append(seq)
            wake = wake or len(self._acked) >= DELETE_BATCH
        if wake:
            self._wake()

    def _delete_acknowledged(self, *, force: bool = True) -> int:
        """Delete acknowledged messages: always when forced, else once a batch has gathered or
        a short while has passed (one transaction per batch, not per message)."""
        with self._acked_lock:
            if not self._acked:
                return 0
            due = time.monotonic() - self._last_delete >= _DELETE_EVERY_S
            if not (force or due or len(self._acked) >= DELETE_BATCH):
                return 0
            seqs, self._acked = self._acked, []
            self._last_delete = time.monotonic()
        if seqs:
            try:
                self.outbox.delivered_many(seqs)
            except OutboxError:
                with self._acked_lock:
                    self._acked[:0] = seqs  # retried; a crash meanwhile only means duplicates
                raise
        return len(seqs)

    def _sender_main(self) -> None:
        while not self._stopping.is_set():
            with self._wake_cond:
                seen = self._events
            session = self._connected_session()
            sent = 0
            try:
                idle = True
                if session is not None:
                    sent, idle = self._send_some(session)
                deleted = self._delete_acknowledged(force=idle)
            except OutboxError as exc:
                deleted = 0
                self._record_error(str(exc))
                log.error("mqtt cannot update the outbox error=%s", exc)
                self._stopping.wait(_IDLE_POLL_S)
            if sent == 0 and deleted == 0:
                with self._wake_cond:
                    if self._events == seen:
                        self._wake_cond.wait(_IDLE_POLL_S if not self._acked else _DELETE_EVERY_S)

    def _send_some(self, session: _Session) -> tuple[int, bool]:
        """Hand paho what the window allows; returns (sent, whether the outbox ran dry)."""
        room = session.room()
        if room <= 0:
            return 0, False
        batch = session.next_batch(room)
        sent = 0
        for message in batch:
            if not session.publish(message):
                break
            sent += 1
        return sent, not batch

    # -- commands (worker threads) -------------------------------------------------------------

    def _command_received(self, message: paho.MQTTMessage) -> None:
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
        workers.submit(self._run_command, name, bytes(message.payload), response_topic, correlation)

    def _run_command(
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

    # -- helpers -------------------------------------------------------------------------------

    def _put_status(self, state: str) -> OutboxMessage | None:
        try:
            body: dict[str, Any] = dict(self._status_body())
        except Exception as exc:
            log.error("mqtt status_body failed: %s", describe_exception(exc)[0])
            body = {}
        body["state"] = state
        try:
            return self.outbox.put(MessageClass.STATUS, "", body, retain=True)
        except (OutboxError, wire.WireError) as exc:
            self._record_error(str(exc))
            log.error("mqtt cannot queue status state=%s error=%s", state, exc)
            return None

    def _message_put(self, message: OutboxMessage) -> None:
        session = self._session
        if session is not None:
            session.note_put(message)
        self._wake()

    def _buffered(self) -> str:
        """How many messages wait in the outbox, for the log lines that say we are offline."""
        try:
            return str(self.outbox.stats().depth)
        except OutboxError:
            return "?"

    def _wake(self) -> None:
        with self._wake_cond:
            self._events += 1
            self._wake_cond.notify_all()

    def _wait(self, done: Callable[[], bool], deadline: float) -> bool:
        while True:
            try:
                if done():
                    return True
            except OutboxError as exc:
                self._record_error(str(exc))
                log.error("mqtt stop cannot read the outbox: %s", exc)
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._wake_cond:
                self._wake_cond.wait(min(remaining, 0.05))

    def _connected_session(self) -> _Session | None:
        session = self._session
        return session if session is not None and session.ready else None

    def _record_error(self, text: str) -> None:
        with self._state_lock:
            self._last_error = text

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _build_ssl_context(self) -> ssl.SSLContext | None:
        tls = self.settings.tls
        if tls is None:
            return None
        try:
            context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca is not None else None)
            if tls.cert is not None:
                context.load_cert_chain(
                    str(tls.cert), str(tls.key) if tls.key is not None else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise MqttError(f"mqtt tls: cannot load CA/certificate/key: {exc}") from exc
        return context
