"""The durable outbox: every message leaves the board through here, and leaves it only on PUBACK.

SQLite in WAL mode. A ``put`` commits with ``synchronous=FULL`` before it returns, so a power cut
loses nothing that ``put`` returned for. Deleting a delivered message commits with
``synchronous=NORMAL``: losing such a delete to a power cut only means one duplicate, which the
consumer drops by ``seq``.

``seq`` is per device, strictly increasing and kept in a counter row written in the same
transaction as the message, so it is never reused: not after a delete, an eviction, a set-aside
or a restart. Depth, bytes, eviction and set-aside counts live in counter rows too, so opening a
large outbox and calling :meth:`Outbox.stats` every second read a handful of rows, never the whole
table.

Per-class policy when the outbox is full (``max_messages`` or ``max_bytes`` reached):

* ``alarm``: never evicted. An alarm is stored even if that takes the outbox over its bounds.
* ``telemetry``: evicted first, oldest first.
* ``verdict``: evicted next, oldest first, if evicting every telemetry message was not enough.
* ``status`` and ``discovery``: "latest per topic": a new one replaces the undelivered older one
  of the same topic (that is not counted as an eviction: the newer state supersedes it). Never
  evicted for room.
* ``result``: never evicted (few, and someone is waiting for them).

A telemetry or verdict message that cannot get room even after the evictions (the outbox is full
of alarms, results and status) is refused with :class:`OutboxFullError` and counted as evicted.
Every eviction is counted per class, persisted, logged, and reported by :meth:`Outbox.stats`.

Delivery order: :meth:`Outbox.pending` returns messages oldest first by ``seq``. The MQTT link
sends the pending ``status`` messages (:meth:`Outbox.pending_status`, at most one per topic)
before the backlog on every connect, so a dashboard sees the board online without waiting for a
long backlog to drain; everything else goes out in ``seq`` order.

A message the broker keeps rejecting is :meth:`Outbox.failed` up to ``max_attempts`` times, then
moved to the ``set_aside`` table: kept for inspection (:meth:`Outbox.set_aside_messages`),
counted, and never blocking the messages behind it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent import wire
from agent.errors import ExitCode, RemotairError
from agent.wire import MessageClass

__all__ = [
    "MessageClass",
    "Outbox",
    "OutboxError",
    "OutboxFullError",
    "OutboxMessage",
    "OutboxStats",
    "SetAsideMessage",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EVICTION_ORDER = (MessageClass.TELEMETRY, MessageClass.VERDICT)
LATEST_PER_TOPIC = frozenset({MessageClass.STATUS, MessageClass.DISCOVERY})
_EVICTION_BATCH = 256
_DELETE_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    correlation BLOB,
    latest_key TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_kind ON messages (kind, seq);
CREATE INDEX IF NOT EXISTS messages_latest ON messages (latest_key)
    WHERE latest_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS set_aside (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    set_aside_at REAL NOT NULL
);
"""

_MESSAGE_COLUMNS = "seq, kind, topic, payload, retain, created, attempts, correlation"


class OutboxError(RemotairError):
    """The outbox database cannot be opened or written (read-only, disk full, corrupt)."""

    exit_code = ExitCode.FAILURE

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"outbox {path}: {message}")
        self.path = path


class OutboxFullError(OutboxError):
    """A telemetry or verdict message found no room even after evicting what policy allows."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One undelivered message, ready to publish as is."""

    seq: int
    kind: MessageClass
    topic: str
    payload: bytes
    retain: bool
    created: float
    """Wall-clock time of the put (seconds since the epoch)."""
    attempts: int
    correlation_data: bytes | None = None
    """MQTT 5 CorrelationData to send with a command result that asked for a ResponseTopic."""


@dataclass(frozen=True, slots=True)
class SetAsideMessage:
    """A message the broker kept rejecting, moved out of the queue."""

    seq: int
    kind: MessageClass
    topic: str
    payload: bytes
    attempts: int
    reason: str
    set_aside_at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    evicted: Mapping[MessageClass, int]
    set_aside: int
    next_seq: int
    max_messages: int
    max_bytes: int

    @property
    def fill_fraction(self) -> float:
        """How full the outbox is, by whichever bound is closer (for the near-full alarm)."""
        return max(self.depth / self.max_messages, self.bytes / self.max_bytes)

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted.values())


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_messages < 1 or max_bytes < 1 or max_attempts < 1:
            raise ValueError("max_messages, max_bytes and max_attempts must be at least 1")
        self.path = Path(path)
        self.device_id = wire.check_name(device_id, "device id")
        self.topic_root = wire.check_topic_root(topic_root)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_attempts = max_attempts
        self._clock = clock
        self._lock = threading.RLock()
        self._sync_full: bool | None = None
        self._listeners: list[Callable[[OutboxMessage], None]] = []
        self._db = self._open()
        self._counters = self._load_counters()

    def add_listener(self, listener: Callable[[OutboxMessage], None]) -> None:
        """Call ``listener(message)`` after every committed put (the MQTT link wakes on it)."""
        self._listeners.append(listener)

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(self.path, f"cannot create directory: {exc.strerror or exc}") from exc
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"cannot open: {_explain(exc)}") from exc
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(self.path, f"WAL journal mode refused (got {mode!r})")
            db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OutboxError(self.path, f"schema version {version}, expected {SCHEMA_VERSION}")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            db.close()
            raise OutboxError(self.path, f"cannot open: {_explain(exc)}") from exc
        except OutboxError:
            db.close()
            raise
        self._sync_full = True
        return db

    def _load_counters(self) -> dict[str, int]:
        with self._sql("read counters"):
            rows = self._db.execute("SELECT name, value FROM counters").fetchall()
        counters = {"next_seq": 1, "depth": 0, "bytes": 0, "set_aside": 0}
        counters.update({kind_key: 0 for kind_key in map(_evicted_key, MessageClass)})
        counters.update({str(name): int(value) for name, value in rows})
        return counters

    # -- writing -------------------------------------------------------------------------------

    def put(
        self,
        kind: MessageClass,
        suffix: str,
        body: Mapping[str, object],
        *,
        retain: bool = False,
        topic: str | None = None,
        correlation_data: bytes | None = None,
        ts: float | None = None,
    ) -> OutboxMessage:
        """Queue one message durably and return it (with its ``seq``) once it is on disk.

        ``suffix`` is the topic below ``<root>/<device>/`` (``telemetry``, ``vision/cam0``,
        ``alarm/co2_high``, ``status``, ``result/ping``; see :func:`agent.wire.topic_for`), the
        full topic for discovery; ``topic`` overrides it (an MQTT 5 ResponseTopic). Raises
        :class:`agent.wire.WireError` (incl. PayloadTooLargeError) for a message that can never
        be sent, :class:`OutboxError` if the disk refuses it. ``ts`` (epoch s) is when the
        content was measured, for the envelope; it defaults to now.
        """
        kind = MessageClass(kind)
        if topic is None:
            topic = wire.topic_for(kind, self.device_id, suffix, topic_root=self.topic_root)
        else:
            wire.validate_topic(topic)
        return self._put_batch(kind, topic, [body], retain, correlation_data, ts)[0]

    def put_many(
        self,
        kind: MessageClass,
        suffix: str,
        bodies: Iterable[Mapping[str, object]],
        *,
        retain: bool = False,
    ) -> list[OutboxMessage]:
        """Queue several messages of one class and topic in one durable transaction (all or
        nothing): a memory backlog moving in, a bulk import."""
        kind = MessageClass(kind)
        topic = wire.topic_for(kind, self.device_id, suffix, topic_root=self.topic_root)
        return self._put_batch(kind, topic, list(bodies), retain, None)

    def _put_batch(
        self,
        kind: MessageClass,
        topic: str,
        bodies: list[Mapping[str, object]],
        retain: bool,
        correlation_data: bytes | None,
        ts: float | None = None,
    ) -> list[OutboxMessage]:
        latest_key = topic if kind in LATEST_PER_TOPIC else None
        messages: list[OutboxMessage] = []
        evicted: dict[MessageClass, int] = {}
        with self._lock:
            created = self._clock() if ts is None else ts
            counters = dict(self._counters)
            with self._transaction("put", full_sync=True):
                for body in bodies:
                    seq = counters["next_seq"]
                    if kind is MessageClass.DISCOVERY:
                        payload = wire.encode_json(body, topic)
                    else:
                        payload = wire.encode_envelope(
                            self.device_id, seq, body, topic=topic, ts=created
                        )
                    if latest_key is not None:
                        self._drop_superseded(latest_key, counters)
                    for victim, count in self._make_room(
                        kind, topic, len(payload), counters
                    ).items():
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
                    counters["next_seq"] = seq + 1
                    counters["depth"] += 1
                    counters["bytes"] += len(payload)
                    messages.append(
                        OutboxMessage(
                            seq, kind, topic, payload, retain, created, 0, correlation_data
                        )
                    )
                self._write_counters(counters)
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
        return messages

    def put_discovery(self, topic: str, config: Mapping[str, object]) -> OutboxMessage:
        """Queue one Home Assistant discovery config (retained, latest per topic, no envelope)."""
        return self.put(MessageClass.DISCOVERY, topic, config, retain=True)

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
        self, kind: MessageClass, topic: str, size: int, counters: dict[str, int]
    ) -> dict[MessageClass, int]:
        """Evict per policy so one more message of ``size`` bytes fits; counts in ``counters``."""
        evicted: dict[MessageClass, int] = {}

        def over() -> tuple[int, int]:
            return (
                counters["depth"] + 1 - self.max_messages,
                counters["bytes"] + size - self.max_bytes,
            )

        evictable = kind in EVICTION_ORDER
        if evictable and size > self.max_bytes:
            self._refuse(kind, topic, f"{size} bytes never fit in max_bytes={self.max_bytes}")
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
                counters[_evicted_key(victim)] += len(chosen)
                evicted[victim] = evicted.get(victim, 0) + len(chosen)
        extra_count, extra_bytes = over()
        if extra_count > 0 or extra_bytes > 0:
            if evictable:
                self._refuse(kind, topic, "full of messages that are never evicted")
            log.warning(
                "outbox over its bounds class=%s depth=%d bytes=%d: kept (never evicted)",
                kind,
                counters["depth"] + 1,
                counters["bytes"] + size,
            )
        return evicted

    def _refuse(self, kind: MessageClass, topic: str, why: str) -> None:
        """Count a refused telemetry/verdict message as evicted (outside the rolled-back put)."""
        key = _evicted_key(kind)
        self._counters[key] += 1
        with self._transaction("count refusal", full_sync=False, nested_ok=True):
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (key, self._counters[key]),
            )
        log.warning("outbox refused class=%s topic=%s: %s", kind, topic, why)
        raise OutboxFullError(self.path, f"no room for a {kind} message on {topic}: {why}")

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

    def failed(self, seq: int, reason: str) -> bool:
        """The broker rejected ``seq``. Returns True when this attempt set it aside."""
        with self._lock:
            counters = dict(self._counters)
            with self._transaction("record failure", full_sync=True):
                row = self._db.execute(
                    "UPDATE messages SET attempts = attempts + 1, last_error = ? WHERE seq = ? "
                    "RETURNING attempts, length(payload), topic",
                    (reason, seq),
                ).fetchone()
                if row is None:
                    return False
                attempts, size, topic = int(row[0]), int(row[1]), str(row[2])
                if attempts < self.max_attempts:
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
        """Up to ``limit`` undelivered messages with ``seq > after_seq``, oldest first."""
        with self._lock, self._sql("read pending"):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [_message(row) for row in rows]

    def pending_status(self) -> list[OutboxMessage]:
        """The undelivered status messages (at most one per topic), sent before the backlog."""
        with self._lock, self._sql("read pending status"):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE kind = ? ORDER BY seq",
                (MessageClass.STATUS.value,),
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
                row = self._db.execute(
                    "SELECT created FROM messages ORDER BY seq LIMIT 1"
                ).fetchone()
            counters = dict(self._counters)
        oldest_age = None if row is None else max(0.0, self._clock() - float(row[0]))
        return OutboxStats(
            depth=counters["depth"],
            bytes=counters["bytes"],
            oldest_age_s=oldest_age,
            evicted={kind: counters[_evicted_key(kind)] for kind in MessageClass},
            set_aside=counters["set_aside"],
            next_seq=counters["next_seq"],
            max_messages=self.max_messages,
            max_bytes=self.max_bytes,
        )

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as exc:  # closing must not hide the shutdown path
                log.warning("outbox close failed path=%s error=%s", self.path, exc)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _write_counters(self, counters: Mapping[str, int]) -> None:
        changed = [(k, v) for k, v in counters.items() if self._counters.get(k) != v]
        self._db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            changed,
        )

    @contextmanager
    def _sql(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"{action} failed: {_explain(exc)}") from exc

    @contextmanager
    def _transaction(
        self, action: str, *, full_sync: bool, nested_ok: bool = False
    ) -> Iterator[None]:
        """One IMMEDIATE transaction; rolled back and turned into OutboxError on any failure."""
        if nested_ok and self._db.in_transaction:
            # Counting a refusal inside a put that is being abandoned: roll the put back first.
            self._db.execute("ROLLBACK")
        with self._sql(action):
            if self._sync_full is not full_sync:
                self._db.execute(f"PRAGMA synchronous={'FULL' if full_sync else 'NORMAL'}")
                self._sync_full = full_sync
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            with self._sql(action):
                self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.error("outbox rollback failed path=%s error=%s", self.path, exc)
            raise


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


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    lowered = text.lower()
    if "disk is full" in lowered or "disk i/o" in lowered:
        return f"{text} (storage full?)"
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return f"{text} (read-only or missing storage directory?)"
    return text
