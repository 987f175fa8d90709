"""What the control socket answers: ``status``, ``alarms``, ``outbox`` and, on a simulated board,
``sim`` (unplug or re-plug a simulated part so a newcomer can watch the agent name the fault).

The handlers only call the agent's existing methods. The report shapes (:func:`alarms_report`,
:func:`outbox_report`) are shared with :mod:`agent.offline_state`, so ``remotair alarms --json``
looks the same whether the agent answered or the state directory was read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from agent.alarm_state import ActiveAlarm
from agent.alarms import AlarmEvent
from agent.control import Handler, RequestError
from agent.outbox import OutboxMessage, OutboxStats, SetAsideMessage

if TYPE_CHECKING:
    from agent.daemon import Agent

MAX_LIMIT = 1000
PAYLOAD_PREVIEW_CHARS = 400


def agent_handlers(agent: Agent) -> dict[str, Handler]:
    """The request table of a started agent."""

    def status(_: dict[str, Any]) -> dict[str, Any]:
        doc = agent.status_document()
        return {
            "device": agent.device_id,
            "pid": os.getpid(),
            "storage_dir": str(agent.config.storage.dir),
            **doc,
        }

    def alarms(request: dict[str, Any]) -> dict[str, Any]:
        limit = _limit(request, "limit", 20)
        return alarms_report(agent.alarms.active(), agent.alarms.recent(limit), source="agent")

    def outbox(request: dict[str, Any]) -> dict[str, Any]:
        peek = _limit(request, "peek", 0)
        set_aside = _limit(request, "set_aside", 20)
        return outbox_report(
            agent.outbox.stats(),
            agent.outbox.pending(peek) if peek else [],
            agent.outbox.set_aside_messages(set_aside) if set_aside else [],
            source="agent",
        )

    def sim(request: dict[str, Any]) -> dict[str, Any]:
        board = agent.board.sim
        if board is None:
            raise RequestError("not a simulated board: 'sim' only breaks simulated parts")
        name = request.get("name")
        broken = request.get("broken")
        if not isinstance(name, str) or not isinstance(broken, bool):
            raise RequestError('sim needs "name" (a sensor or camera) and "broken" (true/false)')
        if name in board.chips:
            board.faults(name).absent = broken
            return {"name": name, "kind": "sensor", "broken": broken}
        if name in board.cameras:
            board.cameras[name].faults.dead = broken
            return {"name": name, "kind": "camera", "broken": broken}
        known = ", ".join([*board.chips, *board.cameras])
        raise RequestError(f"no simulated sensor or camera {name!r}; known: {known}")

    return {"status": status, "alarms": alarms, "outbox": outbox, "sim": sim}


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


def _limit(request: Mapping[str, Any], key: str, default: int) -> int:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise RequestError(f"{key} must be an integer 0..{MAX_LIMIT}, got {value!r}")
    return value
