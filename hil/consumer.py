"""An independent consumer of the wire format: what a back office would write to prove delivery.

A plain paho client (not the agent's MQTT code): a persistent MQTT 3.1.1 session on
``<root>/<device>/#`` that knows only docs/wire-format.md. Its rule: every stream ``seq`` below a
status's ``outbox.next_seq`` must arrive, unless the newest status names it in ``outbox.gaps``.
Status messages carry ``"seq": null``. It also notes when each alarm transition arrived, so a
soak scenario can measure alarm latencies from the outside.

Used by the delivery-contract tests and by ``remotair sim scenario`` (:mod:`hil.scenario`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

SUBSCRIBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class AlarmArrival:
    """One alarm transition as the consumer received it (``at``: its monotonic clock)."""

    at: float
    name: str
    state: str
    seq: int


class ContractConsumer:
    """Collect stream seqs, the statuses and the alarm transitions of one device."""

    def __init__(
        self, host: str, port: int, device: str, name: str, *, topic_root: str = "remotair/v1"
    ) -> None:
        self._cond = threading.Condition()
        self.prefix = f"{topic_root}/{device}/"
        self.received: dict[int, bytes] = {}
        self.duplicates = 0
        self.reused: list[int] = []
        self.statuses: list[dict[str, Any]] = []
        self.unnumbered: list[str] = []
        self.numbered_status: list[int] = []
        self.alarms: list[AlarmArrival] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"contract-{name}",
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self._subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(f"{self.prefix}#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(SUBSCRIBE_TIMEOUT_S):
            self.close()
            raise ConnectionError(f"the contract consumer could not subscribe on {host}:{port}")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if "/cmd/" in msg.topic:
            return
        document = json.loads(msg.payload)
        with self._cond:
            seq = document.get("seq")
            if msg.topic == f"{self.prefix}status":
                if seq is not None:
                    self.numbered_status.append(seq)
                # Not the last will, and not a retained copy: one delivered on (re)subscribe,
                # after a broker restart say, can be older than the stream already received.
                if "version" in document and not msg.retain:
                    self.statuses.append(document)
            elif seq is None:
                self.unnumbered.append(msg.topic)
            elif seq in self.received:
                self.duplicates += 1
                if self.received[seq] != bytes(msg.payload):
                    self.reused.append(seq)
            else:
                self.received[seq] = bytes(msg.payload)
                if msg.topic.startswith(f"{self.prefix}alarm/"):
                    arrival = AlarmArrival(
                        time.monotonic(), document["name"], document["state"], seq
                    )
                    self.alarms.append(arrival)
            self._cond.notify_all()

    def issued(self) -> int:
        """How many stream seqs the agent had issued by its newest status (0 before one)."""
        with self._cond:
            return int(self.statuses[-1]["outbox"]["next_seq"]) - 1 if self.statuses else 0

    def reported(self) -> set[int]:
        """The seqs the newest status reports as evicted or set aside."""
        with self._cond:
            if not self.statuses:
                return set()
            gaps = self.statuses[-1]["outbox"]["gaps"]
            return {s for g in gaps for s in range(g["first"], g["last"] + 1)}

    def missing(self) -> set[int]:
        """Seqs below the newest status's next_seq neither received nor reported as gaps."""
        with self._cond:
            if not self.statuses:
                return {-1}
            return set(range(1, self.issued() + 1)) - set(self.received) - self.reported()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition`` (called under the consumer's lock) holds; False on timeout."""
        with self._cond:
            return self._cond.wait_for(condition, timeout)

    def wait_complete(self, after_statuses: int, timeout: float = 30.0) -> None:
        """Wait for a status newer than ``after_statuses`` whose every seq has arrived."""
        if not self.wait_for(
            lambda: len(self.statuses) > after_statuses and not self.missing(), timeout
        ):
            raise AssertionError(f"seqs lost: {sorted(self.missing())[:50]}")

    def wait_stream(self, count: int, timeout: float = 30.0) -> None:
        if not self.wait_for(lambda: len(self.received) >= count, timeout):
            raise AssertionError(f"not within {timeout:g} s: {count} stream messages")

    def check(self) -> None:
        assert not self.reused, f"seqs reused for another payload: {self.reused}"
        assert not self.unnumbered, f"stream messages without seq: {self.unnumbered[:5]}"
        assert not self.numbered_status, f"status numbered in the stream: {self.numbered_status}"
        assert min(self.received) == 1, "the stream starts at 1 (discovery takes no seq)"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
