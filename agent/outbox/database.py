"""The outbox's SQLite file: schema, opening in WAL mode, transactions, and plain-language errors.

A put commits with ``synchronous=FULL``; deleting delivered messages with ``synchronous=NORMAL``
(a lost delete only means a duplicate). Every SQLite error leaves as :class:`OutboxError` naming
the file and, where it can tell, the likely cause (storage full, read-only).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.outbox import gaps
from agent.outbox.records import OutboxError

__all__ = ["SCHEMA_VERSION", "OutboxDatabase"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

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


class OutboxDatabase:
    """One SQLite connection to the outbox file. Not locked: :class:`Outbox` serialises use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._sync_full: bool | None = None
        self.connection = self._open()

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
            db.executescript(_SCHEMA + gaps.SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            db.close()
            raise OutboxError(self.path, f"cannot open: {_explain(exc)}") from exc
        except OutboxError:
            db.close()
            raise
        self._sync_full = True
        return db

    def read_counters(self) -> dict[str, int]:
        with self.sql("read counters"):
            rows = self.connection.execute("SELECT name, value FROM counters").fetchall()
        return {str(name): int(value) for name, value in rows}

    def write_counters(self, changed: Iterable[tuple[str, int]]) -> None:
        self.connection.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            list(changed),
        )

    @contextmanager
    def sql(self, action: str) -> Iterator[None]:
        """Turn any SQLite error inside into :class:`OutboxError` saying what was being done."""
        try:
            yield
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"{action} failed: {_explain(exc)}") from exc

    @contextmanager
    def transaction(self, action: str, *, full_sync: bool) -> Iterator[None]:
        """One IMMEDIATE transaction; rolled back on any failure (SQLite's as OutboxError)."""
        db = self.connection
        with self.sql(action):
            if self._sync_full is not full_sync:
                db.execute(f"PRAGMA synchronous={'FULL' if full_sync else 'NORMAL'}")
                self._sync_full = full_sync
            db.execute("BEGIN IMMEDIATE")
        try:
            yield
            with self.sql(action):
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.error("outbox rollback failed path=%s error=%s", self.path, exc)
            raise

    def close(self) -> None:
        try:
            self.connection.close()
        except sqlite3.Error as exc:  # closing must not hide the shutdown path
            log.warning("outbox close failed path=%s error=%s", self.path, exc)


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    lowered = text.lower()
    if "disk is full" in lowered or "disk i/o" in lowered:
        return f"{text} (storage full?)"
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return f"{text} (read-only or missing storage directory?)"
    return text
