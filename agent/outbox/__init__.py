"""The durable outbox: every message leaves the board through here, and leaves it only on PUBACK.

SQLite in WAL mode (:mod:`agent.outbox.database`). A ``put`` commits with ``synchronous=FULL``
before it returns, so a power cut loses nothing that ``put`` returned for. Deleting a delivered
message commits with ``synchronous=NORMAL``: losing such a delete to a power cut only means one
duplicate, which the consumer drops by ``seq``.

Two numberings. The stream (telemetry, vision, alarm, result: the messages that must all
arrive) takes ``seq`` 1, 2, 3...: per device, strictly increasing and kept in a counter row
written in the same transaction as the message, so it is never reused (not after a delete, an
eviction, a set-aside or a restart) and a put rolled back by a crash leaves no hole. The only
holes are losses and the ranges the outbox gave up by policy, recorded in the same transaction
(:mod:`agent.outbox.gaps`) and reported in :meth:`Outbox.stats`. Latest-value messages (status,
discovery) are keyed on a separate negative counter and carry ``"seq": null``: superseding one
leaves no hole in the stream.

Depth, bytes, eviction and set-aside counts live in counter rows too, so opening a large outbox
and calling :meth:`Outbox.stats` every second read a handful of rows, never the whole table.

Per-class policy when the outbox is full (``max_messages`` or ``max_bytes`` reached):

* ``alarm``: never evicted. An alarm is stored even if that takes the outbox over its bounds.
* ``telemetry``: evicted first, oldest first.
* ``verdict``: evicted next, oldest first, if evicting every telemetry message was not enough.
* ``status``, ``model`` and ``discovery``: "latest per topic": a new one replaces the undelivered
  older one of the same topic (that is not counted as an eviction: the newer state supersedes it).
  Never evicted for room.
* ``result``: never evicted (few, and someone is waiting for them).

A telemetry or verdict message that cannot get room even after the evictions (the outbox is full
of alarms, results and status) is refused: ``put`` returns :attr:`PutOutcome.REFUSED_BY_POLICY`
and the refusal is counted as an eviction. Every eviction is counted per class, persisted,
logged, and reported by :meth:`Outbox.stats`. ``put`` raises :class:`OutboxError` only when the
storage fails (full, read-only, corrupt): policy and a broken disk never look alike.

Delivery order: :meth:`Outbox.pending` returns messages oldest first by ``seq``. The MQTT link
sends the pending latest-value messages (:meth:`Outbox.pending_latest`, at most one per topic)
before the backlog on every connect, so a dashboard sees the board online without waiting for a
long backlog to drain; everything else goes out in ``seq`` order.

A message the broker keeps rejecting is :meth:`Outbox.failed` up to ``max_attempts`` times, then
moved to the ``set_aside`` table: kept for inspection (:meth:`Outbox.set_aside_messages`),
counted, and never blocking the messages behind it.

Modules: :mod:`~agent.outbox.store` (the :class:`Outbox` and its policies),
:mod:`~agent.outbox.database` (the SQLite file), :mod:`~agent.outbox.records` (what it hands out).
"""

from agent.outbox.records import (
    OutboxError,
    OutboxMessage,
    OutboxStats,
    PutOutcome,
    PutResult,
    SetAsideMessage,
)
from agent.outbox.store import Outbox
from agent.wire import MessageClass

__all__ = [
    "MessageClass",
    "Outbox",
    "OutboxError",
    "OutboxMessage",
    "OutboxStats",
    "PutOutcome",
    "PutResult",
    "SetAsideMessage",
]
