"""The single way messages leave the agent's logic: into the outbox, or a memory backlog if not.

The outbox is durable; when its storage fails (disk full, read-only file system) a message must
still not be lost while the process lives, so it waits in a bounded in-memory backlog and is
moved into the outbox as soon as a put succeeds again. The failure is logged once per episode and
reported in the health status.

A message that can never be stored is set aside, counted and logged, and never left at the head
of the backlog where it would hold back the messages behind it (an alarm among them): one the
outbox refuses by policy (full of alarms, a telemetry message larger than the whole outbox) and
one that cannot be sent at all (a topic that is not topic-safe, a payload over the wire limit).
Only a storage failure keeps a message waiting.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from agent import wire
from agent.outbox import MessageClass, Outbox, OutboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: MessageClass
    name: str
    body: Mapping[str, object]
    retain: bool
    ts: float | None


class Dispatcher:
    """Puts messages into the outbox, holding them in memory while the outbox cannot take them."""

    def __init__(self, outbox: Outbox, *, backlog_limit: int = 10_000) -> None:
        self.outbox = outbox
        self._backlog: deque[_Pending] = deque()
        self._limit = backlog_limit
        self._lock = threading.Lock()
        self.dropped = 0
        """Dropped from memory while the outbox could not take anything and memory was full."""
        self.set_aside = 0
        """Never stored: refused by the outbox's policy or impossible to send."""
        self.last_set_aside: str | None = None
        self.last_error: str | None = None

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def send(
        self,
        kind: MessageClass,
        name: str,
        body: Mapping[str, object],
        *,
        retain: bool = False,
        ts: float | None = None,
    ) -> None:
        """Queue a message (``name`` as in :meth:`Outbox.put`); ``ts`` (epoch s) is when it was
        measured, kept if it must wait."""
        with self._lock:
            self._backlog.append(_Pending(kind, name, body, retain, ts))
            self._flush_locked()

    def flush(self) -> None:
        """Retry the backlog (called every main-loop tick)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        while self._backlog:
            item = self._backlog[0]
            try:
                result = self.outbox.put(
                    item.kind, item.name, item.body, retain=item.retain, ts=item.ts
                )
            except wire.WireError as exc:
                self._set_aside(item, f"cannot be sent: {exc}")
                continue
            except OutboxError as exc:
                if self.last_error is None:
                    log.error("outbox unavailable, holding messages in memory error=%s", exc)
                self.last_error = str(exc)
                while len(self._backlog) > self._limit:
                    self._drop_one()
                return
            if not result.stored:
                self._set_aside(item, f"refused by the outbox: {result.reason}")
                continue
            self._backlog.popleft()
            if self.last_error is not None:
                log.warning("outbox available again, backlog moved in")
                self.last_error = None

    def _set_aside(self, item: _Pending, why: str) -> None:
        self._backlog.popleft()
        self.set_aside += 1
        self.last_set_aside = why
        log.warning(
            "message set aside class=%s name=%s total=%d: %s",
            item.kind,
            item.name,
            self.set_aside,
            why,
        )

    def _drop_one(self) -> None:
        # Only reached when memory is full too: drop the oldest telemetry, never an alarm.
        for i, item in enumerate(self._backlog):
            if item.kind is not MessageClass.ALARM:
                del self._backlog[i]
                self.dropped += 1
                return
        self._backlog.popleft()
        self.dropped += 1
