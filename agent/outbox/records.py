"""What the outbox hands out: stored messages, set-aside ones, its statistics, put outcomes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ExitCode, RemotairError
from agent.outbox.gaps import Gap
from agent.wire import MessageClass

__all__ = [
    "OutboxError",
    "OutboxMessage",
    "OutboxStats",
    "PutOutcome",
    "PutResult",
    "SetAsideMessage",
]


class OutboxError(RemotairError):
    """The outbox database cannot be opened or written (read-only, disk full, corrupt).

    The only exception :meth:`Outbox.put` raises for a well-formed message: worth retrying once
    the storage recovers. A policy refusal is an outcome (:attr:`PutOutcome.REFUSED_BY_POLICY`),
    not an error.
    """

    exit_code = ExitCode.FAILURE

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"outbox {path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One undelivered message, ready to publish as is."""

    seq: int
    """The message's key in the outbox: its wire ``seq`` for a stream message (telemetry,
    vision, alarm, result); negative for a latest-value message (status, discovery), which has
    its own key space and carries no ``seq`` on the wire (see :attr:`wire_seq`)."""
    kind: MessageClass
    topic: str
    payload: bytes
    retain: bool
    created: float
    """Wall-clock time of the put (seconds since the epoch)."""
    attempts: int
    correlation_data: bytes | None = None
    """MQTT 5 CorrelationData to send with a command result that asked for a ResponseTopic."""

    @property
    def wire_seq(self) -> int | None:
        """The ``seq`` in the envelope: None for latest-value messages."""
        return self.seq if self.seq > 0 else None


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
    """The stream's next ``seq``: every smaller one was issued (delivered, pending, or a gap)."""
    max_messages: int
    max_bytes: int
    gaps: tuple[Gap, ...] = ()
    """The newest seq ranges given up by policy (evicted, set aside), oldest first."""

    @property
    def fill_fraction(self) -> float:
        """How full the outbox is, by whichever bound is closer (for the near-full alarm)."""
        return max(self.depth / self.max_messages, self.bytes / self.max_bytes)

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted.values())


class PutOutcome(enum.StrEnum):
    """What became of a put."""

    STORED = "stored"
    STORED_AFTER_EVICTING = "stored_after_evicting"
    """Stored, and older telemetry or verdicts were evicted to make room (see ``evicted``)."""
    REFUSED_BY_POLICY = "refused_by_policy"
    """A telemetry or verdict message found no room even after every eviction policy allows
    (the outbox is full of alarms, results and status, or the message alone exceeds
    ``max_bytes``). Counted as evicted; retrying will not help until the outbox drains."""


@dataclass(frozen=True, slots=True)
class PutResult:
    outcome: PutOutcome
    messages: tuple[OutboxMessage, ...] = ()
    """What was stored, with its ``seq`` (several for ``put_many``); empty when refused."""
    evicted: Mapping[MessageClass, int] = field(default_factory=dict)
    reason: str | None = None
    """Why it was refused."""

    @property
    def stored(self) -> bool:
        return self.outcome is not PutOutcome.REFUSED_BY_POLICY

    @property
    def message(self) -> OutboxMessage | None:
        """The stored message (the last one for ``put_many``); None when refused."""
        return self.messages[-1] if self.messages else None
