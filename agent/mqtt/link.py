"""The MQTT link (paho-mqtt 2.x): keeps one device connected to one broker.

Threads, none of them the caller's:

* the network thread (here) runs one :class:`~agent.mqtt.session.Session` per connection attempt:
  it connects (TCP + TLS handshake bounded by ``handshake_timeout_s``, then CONNACK within the
  same bound), runs paho's ``loop()``, and on any failure waits an exponential back-off with
  jitter before trying again, the very first connection included;
* the sender thread (:mod:`agent.mqtt.drain`) publishes from the outbox at QoS 1;
* a small worker pool (:mod:`agent.mqtt.commands`) runs commands.

``status`` is retained: ``online`` (with ``status_body()``) through the outbox on every connect;
the last will, registered with the broker at connect, is ``offline`` with ``"seq": null``.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from agent import wire
from agent.command_table import CommandTable
from agent.errors import describe_exception
from agent.mqtt.commands import CommandRunner
from agent.mqtt.drain import OutboxDrain
from agent.mqtt.session import Session
from agent.mqtt.settings import MqttError, MqttSettings
from agent.mqtt.tls import client_context
from agent.outbox import MessageClass, Outbox, OutboxError, OutboxMessage

__all__ = ["LinkState", "MqttLink", "backoff_delay"]

log = logging.getLogger(__name__)


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
    commands_subscribed: bool = False
    """The broker acknowledged the subscription to ``cmd/+`` on this connection (its SUBACK)."""
    offline_since: float | None = None
    """Wall-clock time the connection was lost (or the link started, if it never connected);
    None while connected. The last will cannot say it: its content is fixed at connect."""
    last_outage: tuple[float, float] | None = None
    """The last outage that ended: wall-clock (lost, back) times (not the start-up)."""


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential back-off with jitter: the ceiling doubles per attempt, the delay is drawn from
    its upper half, and the result is kept within ``[low, high]``."""
    ceiling = min(high, low * 2.0 ** min(attempt, 32))
    return min(high, max(low, rng.uniform(ceiling / 2.0, ceiling)))


class MqttLink:
    """Keeps one device connected to one broker and drains its outbox there.

    ``commands`` answers ``cmd/<name>`` (as remote calls); without it every command is unknown.

    ``_state_lock`` guards what :meth:`state` reports (current session, last error, next retry);
    the drain and each session keep their own locks.
    """

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        device_id: str,
        *,
        commands: CommandTable | None = None,
        status_body: Callable[[], dict[str, object]],
        rng: random.Random | None = None,
        republish: Callable[[], None] | None = None,
        birth_topic: str | None = None,
    ) -> None:
        """``republish`` queues the retained configs again (Home Assistant discovery): called
        when ``birth_topic`` says ``online`` (Home Assistant restarted) and on a connection the
        broker has no session for (it restarted empty and lost the retained configs)."""
        self.settings = settings
        self.outbox = outbox
        self.device_id = wire.check_name(device_id, "device id")
        self.status_topic = wire.status_topic(device_id, topic_root=settings.topic_root)
        self.ssl_context: ssl.SSLContext | None = None
        self._status_body = status_body
        self._republish = republish
        self._watch = (birth_topic,) if birth_topic and republish else ()
        self._rng = rng or random.Random()
        self._state_lock = threading.Lock()
        self._session: Session | None = None
        self._last_error: str | None = None
        self._next_retry_at: float | None = None
        self._offline_since: float | None = time.time()
        self._last_outage: tuple[float, float] | None = None
        self._connected_once = False
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._drain = OutboxDrain(
            outbox,
            record_error=self._record_error,
            max_publish_rate=settings.max_publish_rate,
            drops_to_give_up=settings.drops_to_give_up,
        )
        self._commands = CommandRunner(
            settings, outbox, self.device_id, commands, record_error=self._record_error
        )
        outbox.add_listener(self._drain.message_put)

    # -- public --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; returns at once, broker or not."""
        if self._threads:
            raise RuntimeError("MqttLink already started")
        self.ssl_context = self._build_ssl_context()
        self._stopping.clear()
        self._commands.start()
        self._threads = [
            threading.Thread(target=self._network_main, name="remotair-mqtt-net", daemon=True),
            threading.Thread(
                target=self._drain.run,
                args=(self._stopping,),
                name="remotair-mqtt-send",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush what the broker takes within the bound, publish offline, disconnect.

        If the offline status is not acknowledged in time the link drops the connection so that
        the broker publishes the last will (offline) itself. Nothing to do if never started.
        """
        if not self._threads:
            return
        drain = self._drain
        deadline = time.monotonic() + max(0.0, flush_timeout_s)
        reserve = min(1.0, flush_timeout_s / 4)
        if drain.connected_session() is not None:
            drain.wait(lambda: self.outbox.stats().depth == 0, deadline - reserve)
        offline = self._put_status("offline")
        session = drain.connected_session()
        delivered = False
        if session is not None and offline is not None:
            seq = offline.seq
            delivered = drain.wait(lambda: self.outbox.get(seq) is None, deadline)
        self._stopping.set()
        drain.wake()
        if session is not None:
            session.close(clean=delivered)
        join_by = time.monotonic() + self.settings.handshake_timeout_s + 2.0
        for thread in self._threads:
            thread.join(timeout=max(0.1, join_by - time.monotonic()))
            if thread.is_alive():
                log.warning("mqtt thread %s did not stop in time", thread.name)
        self._threads = []
        try:
            drain.delete_acknowledged()
        except OutboxError as exc:
            log.error("mqtt cannot delete acknowledged messages at stop: %s", exc)
        self._commands.stop()
        log.info(
            "mqtt stopped offline_status=%s",
            "delivered" if delivered else "left to the last will",
        )

    def state(self) -> LinkState:
        with self._state_lock:
            session = self._session
            connected = session is not None and session.ready
            subscribed = connected and session is not None and session.commands_subscribed
            return LinkState(
                connected=connected,
                connected_since=session.connected_since if connected and session else None,
                last_error=self._last_error,
                next_retry_at=None if connected else self._next_retry_at,
                inflight=session.unacknowledged() if session is not None else 0,
                commands_subscribed=subscribed,
                offline_since=None if connected else self._offline_since,
                last_outage=self._last_outage,
            )

    # -- SessionEvents (paho's network thread) ---------------------------------------------------

    def going_online(self) -> None:
        with self._state_lock:  # the online status says what the outage was, and no old error
            if self._offline_since is not None and self._connected_once:
                self._last_outage = (self._offline_since, time.time())
            self._connected_once = True
            self._offline_since = None
            self._last_error = None
        self._put_status("online")

    def connected(self, session: Session) -> None:
        log.info(
            "mqtt connected broker=%s protocol=%s tls=%s client_id=%s",
            self._where(),
            self.settings.protocol,
            "yes" if self.ssl_context else "no",
            self.settings.client_id or self.device_id,
        )
        with self._state_lock:
            self._next_retry_at = None
        if self._republish is not None and not session.session_present:
            log.info("mqtt new broker session: queueing the retained configs again")
            self._call_republish()
        self._drain.wake()

    def watched(self, topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            log.info("mqtt %s is online: queueing the retained configs again", topic)
            self._call_republish()

    def _call_republish(self) -> None:
        if self._republish is None:
            return
        try:
            self._republish()
        except Exception as exc:  # paho's thread must survive whatever the callback does
            self._record_error(describe_exception(exc)[0])
            log.error("mqtt republish failed: %s", describe_exception(exc)[0])

    def acknowledged(self, seq: int, *, wake: bool) -> None:
        self._drain.acknowledged(seq, wake=wake)

    def rejected(self, session: Session, seq: int, reason: str) -> None:
        self._drain.rejected(session, seq, reason)

    def command_received(self, message: paho.MQTTMessage) -> None:
        self._commands.received(message)

    # -- network thread ------------------------------------------------------------------------

    def _network_main(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            session = Session(
                self.settings,
                self.device_id,
                self,
                self.ssl_context,
                sim=self.outbox.simulated,  # the last will says so too
                watch=self._watch,
            )
            with self._state_lock:
                self._session = session
            self._drain.attach(session)
            error = session.run()
            if self._stopping.is_set():
                self._drain.wake()
                break
            if session.connected_since is not None:
                self._drain.connection_dropped(session)
            self._drain.wake()
            if session.connected_since is not None:
                attempt = 0
            delay = backoff_delay(
                attempt, self.settings.reconnect_min_s, self.settings.reconnect_max_s, self._rng
            )
            attempt += 1
            with self._state_lock:
                self._last_error = error
                self._next_retry_at = time.time() + delay
                if self._offline_since is None:
                    self._offline_since = time.time()
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

    # -- helpers -------------------------------------------------------------------------------

    def _put_status(self, state: str) -> OutboxMessage | None:
        try:
            body: dict[str, Any] = dict(self._status_body())
        except Exception as exc:
            log.error("mqtt status_body failed: %s", describe_exception(exc)[0])
            body = {}
        body["state"] = state
        try:
            return self.outbox.put(MessageClass.STATUS, "", body, retain=True).message
        except (OutboxError, wire.WireError) as exc:
            self._record_error(str(exc))
            log.error("mqtt cannot queue status state=%s error=%s", state, exc)
            return None

    def _buffered(self) -> str:
        """How many messages wait in the outbox, for the log lines that say we are offline."""
        try:
            return str(self.outbox.stats().depth)
        except OutboxError:
            return "?"

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
            return client_context(tls)
        except (OSError, ssl.SSLError) as exc:
            raise MqttError(f"mqtt tls: cannot load CA/certificate/key: {exc}") from exc
