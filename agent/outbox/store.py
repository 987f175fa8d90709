"""The :class:`Outbox`: puts with the per-class eviction policy, deliveries, failures, reads.

See :mod:`agent.outbox` for the contract.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from agent import wire
from agent.outbox.database import OutboxDatabase
from agent.outbox.gaps import read_gaps, record_gaps
from agent.outbox.records import (
    OutboxMessage,
    OutboxStats,
    PutOutcome,
    PutResult,
    SetAsideMessage,
)
from agent.wire import MessageClass

__all__ = ["EVICTION_ORDER", "LATEST_PER_TOPIC", "Outbox"]

log = logging.getLogger(__name__)

EVICTION_ORDER = (MessageClass.TELEMETRY, MessageClass.VERDICT)
LATEST_PER_TOPIC = frozenset({MessageClass.STATUS, MessageClass.MODEL, MessageClass.DISCOVERY})
_EVICTION_BATCH = 256
_DELETE_CHUNK = 500
_MESSAGE_COLUMNS = "seq, kind, topic, payload, retain, created, attempts, correlation"


class _Refused(Exception):
    """Inside a put's transaction: policy finds no room; the put is rolled back."""


def _evicted_key(kind: MessageClass) -> str:
    return f"evicted.{kind.value}"


class Outbox:
    """Durable FIFO of outgoing messages for one device. Thread-safe (one connection, one lock)."""

    def __init__(
        self,
        path: Path,
        device_id: str,
        *,
        max_messages: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_attempts: int = 5,
        topic_root: str = wire.TOPIC_ROOT,
        simulated: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_messages < 1 or max_bytes < 1 or max_attempts < 1:
            raise ValueError("max_messages, max_bytes and max_attempts must be at least 1")
        self.path = Path(path)
        self.device_id = wire.check_name(device_id, "device id")
        self.topic_root = wire.check_topic_root(topic_root)
        self.simulated = simulated
        """Messages come from a simulated board: their envelope says ``"sim": true``."""
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_attempts = max_attempts
        self._clock = clock
        self._lock = threading.RLock()
        self._listeners: list[Callable[[OutboxMessage], None]] = []
        self._database = OutboxDatabase(self.path)
        self._db = self._database.connection
        self._sql = self._database.sql
        self._transaction = self._database.transaction
        self._counters = self._load_counters()

    def add_listener(self, listener: Callable[[OutboxMessage], None]) -> None:
        """Call ``listener(message)`` after every committed put (the MQTT link wakes on it)."""
        self._listeners.append(listener)

    def _load_counters(self) -> dict[str, int]:
        counters = {"next_seq": 1, "next_latest": 1, "depth": 0, "bytes": 0, "set_aside": 0}
        counters.update({kind_key: 0 for kind_key in map(_evicted_key, MessageClass)})
        counters.update(self._database.read_counters())
        return counters

    # -- writing -------------------------------------------------------------------------------

    def put(
        self,
        kind: MessageClass,
        name: str,
        body: Mapping[str, object],
        *,
        retain: bool = False,
        topic: str | None = None,
        correlation_data: bytes | None = None,
        ts: float | None = None,
    ) -> PutResult:
        """Queue one message durably; the result says whether it was stored (with its ``seq``),
        stored after evicting older ones, or refused by policy.

        ``name`` is the message's name within its class: the camera of a verdict, the alarm's
        name, the command of a result; empty for telemetry and status (see
        :func:`agent.wire.topic_for`). ``topic`` replaces the topic built from it: a discovery
        config's own topic, an MQTT 5 ResponseTopic. ``ts`` (epoch s) is when the content was
        measured, for the envelope; it defaults to now.

        Raises :class:`agent.wire.WireError` (incl. PayloadTooLargeError) for a message that can
        never be sent, :class:`OutboxError` only when the storage fails.
        """
        kind = MessageClass(kind)
        return self._put_batch(
            kind, self._topic(kind, name, topic), [body], retain, correlation_data, ts
        )

    def put_many(
        self,
        kind: MessageClass,
        name: str,
        bodies: Iterable[Mapping[str, object]],
        *,
        retain: bool = False,
    ) -> PutResult:
        """Queue several messages of one class and topic in one durable transaction (all or
        nothing, refused as a whole): a memory backlog moving in, a bulk import."""
        kind = MessageClass(kind)
        return self._put_batch(kind, self._topic(kind, name, None), list(bodies), retain, None)

    def put_discovery(self, topic: str, config: Mapping[str, object]) -> PutResult:
        """Queue one Home Assistant discovery config (retained, latest per topic, no envelope)."""
        return self.put(MessageClass.DISCOVERY, "", config, retain=True, topic=topic)

    def _topic(self, kind: MessageClass, name: str, topic: str | None) -> str:
        if topic is not None:
            return wire.validate_topic(topic)
        if kind is MessageClass.DISCOVERY:
            raise wire.WireError("a discovery message needs its full topic (topic=...)")
        return wire.topic_for(kind, self.device_id, name, topic_root=self.topic_root)

    def _put_batch(
        self,
        kind: MessageClass,
        topic: str,
        bodies: list[Mapping[str, object]],
        retain: bool,
        correlation_data: bytes | None,
        ts: float | None = None,
    ) -> PutResult:
        latest_key = topic if kind in LATEST_PER_TOPIC else None
        messages: list[OutboxMessage] = []
        evicted: dict[MessageClass, int] = {}
        with self._lock:
            created = self._clock() if ts is None else ts
            counters = dict(self._counters)
            try:
                with self._transaction("put", full_sync=True):
                    for body in bodies:
                        if latest_key is None:
                            seq = wire_seq = counters["next_seq"]
                            counters["next_seq"] = seq + 1
                        else:  # a latest-value message: its own (negative) keys, no wire seq
                            seq, wire_seq = -counters["next_latest"], None
                            counters["next_latest"] += 1
                        if kind is MessageClass.DISCOVERY:
                            payload = wire.encode_json(body, topic)
                        else:
                            payload = wire.encode_envelope(
                                self.device_id,
                                wire_seq,
                                body,
                                topic=topic,
                                ts=created,
                                sim=self.simulated,
                            )
                        if latest_key is not None:
                            self._drop_superseded(latest_key, counters)
                        room = self._make_room(kind, len(payload), counters)
                        for victim, count in room.items():
                            evicted[victim] = evicted.get(victim, 0) + count
                        self._db.execute(
                            "INSERT INTO messages (seq, kind, topic, payload, retain, created,"
                            " correlation, latest_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                seq,
                                kind.value,
                                topic,
                                payload,
                                int(retain),
                                created,
                                correlation_data,
                                latest_key,
                            ),
                        )
                        counters["depth"] += 1
                        counters["bytes"] += len(payload)
                        messages.append(
                            OutboxMessage(
                                seq, kind, topic, payload, retain, created, 0, correlation_data
                            )
                        )
                    self._write_counters(counters)
            except _Refused as refused:
                return self._count_refusal(kind, topic, str(refused))
            self._counters = counters
        for victim_kind, count in evicted.items():
            log.warning(
                "outbox evicted class=%s count=%d total=%d depth=%d bytes=%d for=%s seq=%d",
                victim_kind,
                count,
                counters[_evicted_key(victim_kind)],
                counters["depth"],
                counters["bytes"],
                kind,
                messages[-1].seq,
            )
        for message in messages:
            for listener in self._listeners:
                listener(message)
        outcome = PutOutcome.STORED_AFTER_EVICTING if evicted else PutOutcome.STORED
        return PutResult(outcome, tuple(messages), evicted)

    def _drop_superseded(self, latest_key: str, counters: dict[str, int]) -> None:
        rows = self._db.execute(
            "DELETE FROM messages WHERE latest_key = ? RETURNING seq, length(payload)",
            (latest_key,),
        ).fetchall()
        for seq, size in rows:
            counters["depth"] -= 1
            counters["bytes"] -= int(size)
            log.debug("outbox superseded topic=%s seq=%d", latest_key, seq)

    def _make_room(
        self, kind: MessageClass, size: int, counters: dict[str, int]
    ) -> dict[MessageClass, int]:
        """Evict per policy so one more message of ``size`` bytes fits; counts in ``counters``.
        Raises :class:`_Refused` when a telemetry or verdict message cannot get room."""
        evicted: dict[MessageClass, int] = {}

        def over() -> tuple[int, int]:
            return (
                counters["depth"] + 1 - self.max_messages,
                counters["bytes"] + size - self.max_bytes,
            )

        evictable = kind in EVICTION_ORDER
        if evictable and size > self.max_bytes:
            raise _Refused(f"{size} bytes never fit in max_bytes={self.max_bytes}")
        for victim in EVICTION_ORDER:
            extra_count, extra_bytes = over()
            while extra_count > 0 or extra_bytes > 0:
                rows = self._db.execute(
                    "SELECT seq, length(payload) FROM messages WHERE kind = ? ORDER BY seq LIMIT ?",
                    (victim.value, _EVICTION_BATCH),
                ).fetchall()
                if not rows:
                    break
                chosen: list[int] = []
                for seq, row_size in rows:
                    if extra_count <= 0 and extra_bytes <= 0:
                        break
                    chosen.append(int(seq))
                    extra_count -= 1
                    extra_bytes -= int(row_size)
                    counters["depth"] -= 1
                    counters["bytes"] -= int(row_size)
                self._db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in chosen])
                record_gaps(self._db, chosen, victim, "evicted", self._clock())
                counters[_evicted_key(victim)] += len(chosen)
                evicted[victim] = evicted.get(victim, 0) + len(chosen)
        extra_count, extra_bytes = over()
        if extra_count > 0 or extra_bytes > 0:
            if evictable:
                raise _Refused("full of messages that are never evicted")
            log.warning(
                "outbox over its bounds class=%s depth=%d bytes=%d: kept (never evicted)",
                kind,
                counters["depth"] + 1,
                counters["bytes"] + size,
            )
        return evicted

    def _count_refusal(self, kind: MessageClass, topic: str, why: str) -> PutResult:
        """A refused telemetry/verdict message counts as evicted (the put itself rolled back)."""
        key = _evicted_key(kind)
        counters = dict(self._counters)
        counters[key] += 1
        with self._transaction("count refusal", full_sync=False):
            self._write_counters(counters)
        self._counters = counters
        log.warning("outbox refused class=%s topic=%s: %s", kind, topic, why)
        reason = f"no room for a {kind} message on {topic}: {why}"
        return PutResult(PutOutcome.REFUSED_BY_POLICY, evicted={kind: 1}, reason=reason)

    def delivered(self, seq: int) -> bool:
        """The broker acknowledged ``seq``: delete it. False if it was already gone."""
        return self.delivered_many((seq,)) == 1

    def delivered_many(self, seqs: Iterable[int]) -> int:
        """Delete several acknowledged messages in one transaction; returns how many existed."""
        with self._lock:
            counters = dict(self._counters)
            removed = 0
            pending = list(seqs)
            with self._transaction("delete delivered", full_sync=False):
                for start in range(0, len(pending), _DELETE_CHUNK):
                    chunk = pending[start : start + _DELETE_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sizes = self._db.execute(
                        f"DELETE FROM messages WHERE seq IN ({marks}) RETURNING length(payload)",
                        chunk,
                    ).fetchall()
                    removed += len(sizes)
                    counters["depth"] -= len(sizes)
                    counters["bytes"] -= sum(int(size) for (size,) in sizes)
                if removed:
                    self._write_counters(counters)
            self._counters = counters
        return removed

    def failed(self, seq: int, reason: str, *, give_up: bool = False) -> bool:
        """The broker rejected ``seq``. Returns True when this attempt set it aside: after
        ``max_attempts`` failures, or at once with ``give_up`` (the link recognised a broker
        that refuses it by closing the connection)."""
        with self._lock:
            counters = dict(self._counters)
            with self._transaction("record failure", full_sync=True):
                row = self._db.execute(
                    "UPDATE messages SET attempts = attempts + 1, last_error = ? WHERE seq = ? "
                    "RETURNING attempts, length(payload), topic, kind",
                    (reason, seq),
                ).fetchone()
                if row is None:
                    return False
                attempts, size, topic, kind = int(row[0]), int(row[1]), str(row[2]), str(row[3])
                if attempts < self.max_attempts and not give_up:
                    log.warning(
                        "outbox publish rejected seq=%d topic=%s attempt=%d/%d reason=%s",
                        seq,
                        topic,
                        attempts,
                        self.max_attempts,
                        reason,
                    )
                    return False
                self._db.execute(
                    "INSERT OR REPLACE INTO set_aside (seq, kind, topic, payload, retain, created,"
                    " attempts, reason, set_aside_at) SELECT seq, kind, topic, payload, retain,"
                    " created, attempts, ?, ? FROM messages WHERE seq = ?",
                    (reason, self._clock(), seq),
                )
                self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                if seq > 0:
                    record_gaps(self._db, (seq,), MessageClass(kind), "set_aside", self._clock())
                counters["depth"] -= 1
                counters["bytes"] -= size
                counters["set_aside"] += 1
                self._write_counters(counters)
            self._counters = counters
        log.error(
            "outbox set aside seq=%d topic=%s attempts=%d reason=%s", seq, topic, attempts, reason
        )
        return True

    # -- reading -------------------------------------------------------------------------------

    def pending(self, limit: int, *, after_seq: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` undelivered stream messages with ``seq > after_seq``, oldest first
        (latest-value messages have negative keys: :meth:`pending_latest`)."""
        with self._lock, self._sql("read pending"):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [_message(row) for row in rows]

    def pending_latest(self) -> list[OutboxMessage]:
        """The undelivered latest-value messages (status, discovery; at most one per topic),
        oldest first: sent before the backlog."""
        with self._lock, self._sql("read pending latest-value messages"):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE latest_key IS NOT NULL"
                " ORDER BY created, seq DESC"
            ).fetchall()
        return [_message(row) for row in rows]

    def get(self, seq: int) -> OutboxMessage | None:
        with self._lock, self._sql("read message"):
            row = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq = ?", (seq,)
            ).fetchone()
        return None if row is None else _message(row)

    def set_aside_messages(self, limit: int = 100) -> list[SetAsideMessage]:
        with self._lock, self._sql("read set-aside messages"):
            rows = self._db.execute(
                "SELECT seq, kind, topic, payload, attempts, reason, set_aside_at FROM set_aside"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            SetAsideMessage(int(s), MessageClass(k), str(t), bytes(p), int(a), str(r), float(at))
            for s, k, t, p, a, r, at in rows
        ]

    def stats(self) -> OutboxStats:
        """Depth, size, age of the oldest message, evictions: counter rows plus one index probe."""
        with self._lock:
            with self._sql("read oldest"):
                oldest = [
                    float(created)
                    for where in ("seq > 0 ORDER BY seq", "seq < 0 ORDER BY seq DESC")
                    for (created,) in self._db.execute(
                        f"SELECT created FROM messages WHERE {where} LIMIT 1"
                    ).fetchall()
                ]
                gaps = read_gaps(self._db)
            counters = dict(self._counters)
        oldest_age = None if not oldest else max(0.0, self._clock() - min(oldest))
        return OutboxStats(
            depth=counters["depth"],
            bytes=counters["bytes"],
            oldest_age_s=oldest_age,
            evicted={kind: counters[_evicted_key(kind)] for kind in MessageClass},
            set_aside=counters["set_aside"],
            next_seq=counters["next_seq"],
            max_messages=self.max_messages,
            max_bytes=self.max_bytes,
            gaps=gaps,
        )

    def close(self) -> None:
        with self._lock:
            self._database.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _write_counters(self, counters: Mapping[str, int]) -> None:
        self._database.write_counters(
            (k, v) for k, v in counters.items() if self._counters.get(k) != v
        )


def _message(row: tuple[object, ...]) -> OutboxMessage:
    seq, kind, topic, payload, retain, created, attempts, correlation = row
    return OutboxMessage(
        seq=int(seq),  # type: ignore[call-overload]
        kind=MessageClass(str(kind)),
        topic=str(topic),
        payload=bytes(payload),  # type: ignore[call-overload]
        retain=bool(retain),
        created=float(created),  # type: ignore[arg-type]
        attempts=int(attempts),  # type: ignore[call-overload]
        correlation_data=None if correlation is None else bytes(correlation),  # type: ignore[call-overload]
    )
