"""The shapes of the ``alarms`` and ``outbox`` reports.

Shared by the running agent's commands (:mod:`agent.agent_commands`) and
:mod:`agent.state_directory`, so ``remotair alarms --json`` looks the same whether the agent
answered or the state directory was read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from agent.active_alarms import ActiveAlarm
from agent.alarms import AlarmEvent
from agent.outbox import OutboxMessage, OutboxStats, SetAsideMessage

PAYLOAD_PREVIEW_CHARS = 400


def alarms_report(
    active: Iterable[ActiveAlarm], recent: Iterable[AlarmEvent] | None, *, source: str
) -> dict[str, Any]:
    """Active alarms and (when known) the recent raised/cleared events, oldest first."""
    return {
        "source": source,
        "active": [a.to_dict() for a in active],
        "recent": None if recent is None else [asdict(e) for e in recent],
    }


def outbox_report(
    stats: OutboxStats | Mapping[str, Any],
    peek: Sequence[OutboxMessage],
    set_aside: Sequence[SetAsideMessage],
    *,
    source: str,
) -> dict[str, Any]:
    """Depth, oldest message age, evictions, the first ``peek`` messages and the set-aside ones."""
    if isinstance(stats, OutboxStats):
        summary: dict[str, Any] = {
            "depth": stats.depth,
            "bytes": stats.bytes,
            "oldest_age_s": None if stats.oldest_age_s is None else round(stats.oldest_age_s, 1),
            "evicted": {k.value: v for k, v in stats.evicted.items()},
            "set_aside": stats.set_aside,
            "next_seq": stats.next_seq,
            "max_messages": stats.max_messages,
            "max_bytes": stats.max_bytes,
        }
    else:
        summary = dict(stats)
    now = time.time()
    return {
        "source": source,
        **summary,
        "peek": [
            {
                "seq": m.seq,
                "kind": m.kind.value,
                "topic": m.topic,
                "age_s": round(now - m.created, 1),
                "attempts": m.attempts,
                "retain": m.retain,
                "bytes": len(m.payload),
                "payload": _preview(m.payload),
            }
            for m in peek
        ],
        "set_aside_messages": [
            {
                "seq": m.seq,
                "kind": m.kind.value,
                "topic": m.topic,
                "attempts": m.attempts,
                "reason": m.reason,
                "set_aside_at": m.set_aside_at,
                "bytes": len(m.payload),
                "payload": _preview(m.payload),
            }
            for m in set_aside
        ],
    }


def _preview(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace")
    if len(text) <= PAYLOAD_PREVIEW_CHARS:
        return text
    return text[:PAYLOAD_PREVIEW_CHARS] + f"... ({len(payload)} bytes)"
