"""The seq ranges the board gave up on by policy, so a consumer can tell policy from loss.

Every ``seq`` of the stream (telemetry, vision, alarm, result) either reaches the broker or is
named here: evicted from a full outbox, or set aside after the broker kept refusing it. The rows
live in the outbox file (table ``gaps``), written in the same transaction as the eviction or the
set-aside, so a gap is never reported without having happened, nor happens unreported.

Consecutive seqs of one class and one cause are one range; the table keeps the newest
:data:`KEEP_RANGES` ranges (the status carries the newest :data:`REPORTED_RANGES`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agent.wire import MessageClass

__all__ = ["KEEP_RANGES", "REPORTED_RANGES", "Gap", "GapCause", "read_gaps", "record_gaps"]

KEEP_RANGES = 1000
REPORTED_RANGES = 32

GapCause = Literal["evicted", "set_aside"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS gaps (
    first INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    kind TEXT NOT NULL,
    cause TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Gap:
    """``first``..``last`` (inclusive) will never be published, because of ``cause``."""

    first: int
    last: int
    kind: str
    cause: str


def record_gaps(
    db: sqlite3.Connection,
    seqs: Iterable[int],
    kind: MessageClass,
    cause: GapCause,
    at: float,
) -> None:
    """Add ``seqs`` (inside the caller's transaction), merged with the newest range when they
    continue it."""
    ranges: list[list[int]] = []
    for seq in sorted(seqs):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    if not ranges:
        return
    newest = db.execute(
        "SELECT first, last, kind, cause FROM gaps ORDER BY first DESC LIMIT 1"
    ).fetchone()
    if newest is not None:
        first, last, newest_kind, newest_cause = newest
        if newest_kind == kind.value and newest_cause == cause and ranges[0][0] == last + 1:
            db.execute(
                "UPDATE gaps SET last = ?, at = ? WHERE first = ?", (ranges[0][1], at, first)
            )
            ranges.pop(0)
    db.executemany(
        "INSERT OR REPLACE INTO gaps (first, last, kind, cause, at) VALUES (?, ?, ?, ?, ?)",
        [(first, last, kind.value, cause, at) for first, last in ranges],
    )
    db.execute(
        "DELETE FROM gaps WHERE first NOT IN (SELECT first FROM gaps ORDER BY first DESC LIMIT ?)",
        (KEEP_RANGES,),
    )


def read_gaps(db: sqlite3.Connection, limit: int = REPORTED_RANGES) -> tuple[Gap, ...]:
    """The newest ``limit`` ranges, oldest first."""
    rows = db.execute(
        "SELECT first, last, kind, cause FROM gaps ORDER BY first DESC LIMIT ?", (limit,)
    ).fetchall()
    return tuple(Gap(int(f), int(la), str(k), str(c)) for f, la, k, c in reversed(rows))
