"""The sender thread: drains the outbox into the current session, deletes what was acknowledged.

Pending latest-value messages (``status``, discovery) go first, then the backlog in ``seq``
order, never more than the session's window unacknowledged. A message is deleted from the
outbox only after its PUBACK; deletions are batched (one SQLite transaction each; a crash in
between only means a duplicate). Each new connection starts a fresh :class:`SendQueue` that
replays the outbox from its oldest message: duplicates are possible, gaps are not.

Locks: ``SendQueue.lock`` guards one connection's cursor; ``OutboxDrain._acked_lock`` the
acknowledged seqs not yet deleted; ``OutboxDrain._wake_cond`` wakes the sender thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from agent.mqtt.pacing import RateCap
from agent.mqtt.poison import DropWatch
from agent.mqtt.session import Session
from agent.outbox import Outbox, OutboxError, OutboxMessage
from agent.outbox.store import LATEST_PER_TOPIC

__all__ = ["DELETE_BATCH", "OutboxDrain", "SendQueue"]

log = logging.getLogger(__name__)

DELETE_BATCH = 128
_PREFETCH = 256
_IDLE_POLL_S = 1.0
_DELETE_EVERY_S = 0.2


class SendQueue:
    """What to send next on one connection: retries, then pending status, then the backlog."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.lock = threading.Lock()
        self.retries: deque[int] = deque()
        self.backlog: deque[OutboxMessage] = deque()
        self.cursor = 0
        self.status_dirty = True
        self.sent_status: set[int] = set()

    def retry(self, seq: int) -> None:
        with self.lock:
            self.retries.append(seq)

    def note_put(self, message: OutboxMessage) -> None:
        if message.kind in LATEST_PER_TOPIC:
            with self.lock:
                self.status_dirty = True

    def next_batch(self, room: int) -> list[OutboxMessage]:
        """Retries of rejected messages, then pending latest-value messages (status, discovery),
        then the backlog in seq order."""
        outbox = self.outbox
        batch: list[OutboxMessage] = []
        with self.lock:
            retries = [self.retries.popleft() for _ in range(min(room, len(self.retries)))]
            status_dirty, self.status_dirty = self.status_dirty, False
        for seq in retries:
            message = outbox.get(seq)
            if message is not None:
                batch.append(message)
        if status_dirty:
            for message in outbox.pending_latest():
                if message.seq not in self.sent_status and len(batch) < room:
                    self.sent_status.add(message.seq)
                    batch.append(message)
        while len(batch) < room:
            if not self.backlog:
                self.backlog.extend(outbox.pending(max(_PREFETCH, room), after_seq=self.cursor))
                if not self.backlog:
                    break
                self.cursor = self.backlog[-1].seq
            message = self.backlog.popleft()
            if message.kind in LATEST_PER_TOPIC:  # written by an older version: positive keys
                if message.seq in self.sent_status:
                    continue
                self.sent_status.add(message.seq)
            batch.append(message)
        return batch


class OutboxDrain:
    """Runs the sender thread for whichever session is current."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        record_error: Callable[[str], None],
        max_publish_rate: float = 0.0,
        drops_to_give_up: int = 3,
    ) -> None:
        self.outbox = outbox
        self._record_error = record_error
        self.rate = RateCap(max_publish_rate)
        self.drops = DropWatch(drops_to_give_up)
        self._wake_cond = threading.Condition()
        self._events = 0
        self._acked_lock = threading.Lock()
        self._acked: list[int] = []
        self._last_delete = 0.0
        self._current: tuple[Session, SendQueue] | None = None

    def attach(self, session: Session) -> None:
        """A new connection attempt: its queue replays the outbox from the oldest message."""
        self._current = (session, SendQueue(self.outbox))

    def connected_session(self) -> Session | None:
        current = self._current
        return current[0] if current is not None and current[0].ready else None

    # -- events (paho's thread, the outbox's writers) -------------------------------------

    def message_put(self, message: OutboxMessage) -> None:
        """Outbox listener: a message was stored."""
        current = self._current
        if current is not None:
            current[1].note_put(message)
        self.wake()

    def acknowledged(self, seq: int, *, wake: bool) -> None:
        """PUBACK for ``seq``: the sender thread deletes it, in batches."""
        self.drops.acknowledged(seq)
        with self._acked_lock:
            self._acked.append(seq)
            wake = wake or len(self._acked) >= DELETE_BATCH
        if wake:
            self.wake()

    def rejected(self, session: Session, seq: int, reason: str) -> None:
        """The broker refused ``seq``: the outbox counts the failure and may give up on it."""
        try:
            if self.outbox.failed(seq, reason):
                self.drops.forget(seq)
            else:
                current = self._current
                if current is not None and current[0] is session:
                    current[1].retry(seq)
        except OutboxError as exc:
            self._record_error(str(exc))
            log.error("mqtt cannot update outbox seq=%d error=%s", seq, exc)
        self.wake()

    def connection_dropped(self, session: Session) -> None:
        """A connection that had been up ended (not by us): was one message refused by it?"""
        verdict = self.drops.dropped(session.unacknowledged_seqs())
        if verdict is None:
            return
        seq, drops = verdict
        reason = (
            f"the broker closed the connection {drops} times in a row while this message was in"
            " flight (a publish refused by policy? AWS IoT Core closes MQTT 3.1.1 connections"
            " that way)"
        )
        try:
            self.outbox.failed(seq, reason, give_up=True)
        except OutboxError as exc:
            self._record_error(str(exc))
            log.error("mqtt cannot set aside seq=%d error=%s", seq, exc)

    def wake(self) -> None:
        with self._wake_cond:
            self._events += 1
            self._wake_cond.notify_all()

    def wait(self, done: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``done()`` (re-checked on every wake-up) or the monotonic ``deadline``."""
        while True:
            try:
                if done():
                    return True
            except OutboxError as exc:
                self._record_error(str(exc))
                log.error("mqtt stop cannot read the outbox: %s", exc)
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._wake_cond:
                self._wake_cond.wait(min(remaining, 0.05))

    # -- the sender thread ----------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        """The sender thread's body, until ``stopping`` is set."""
        while not stopping.is_set():
            with self._wake_cond:
                seen = self._events
            current = self._current
            sent = 0
            paced = 0.0
            try:
                idle = True
                if current is not None and current[0].ready:
                    sent, idle = self._send_some(*current)
                    paced = self.rate.wait_s()
                deleted = self.delete_acknowledged(force=idle)
            except OutboxError as exc:
                deleted = 0
                self._record_error(str(exc))
                log.error("mqtt cannot update the outbox error=%s", exc)
                stopping.wait(_IDLE_POLL_S)
            if paced > 0:  # over the publish-rate cap: the next token, whatever wakes us
                stopping.wait(paced)
            elif sent == 0 and deleted == 0:
                with self._wake_cond:
                    if self._events == seen:
                        self._wake_cond.wait(_IDLE_POLL_S if not self._acked else _DELETE_EVERY_S)

    def delete_acknowledged(self, *, force: bool = True) -> int:
        """Delete acknowledged messages: always when forced, else once a batch has gathered or
        a short while has passed (one transaction per batch, not per message)."""
        with self._acked_lock:
            if not self._acked:
                return 0
            due = time.monotonic() - self._last_delete >= _DELETE_EVERY_S
            if not (force or due or len(self._acked) >= DELETE_BATCH):
                return 0
            seqs, self._acked = self._acked, []
            self._last_delete = time.monotonic()
        try:
            self.outbox.delivered_many(seqs)
        except OutboxError:
            with self._acked_lock:
                self._acked[:0] = seqs  # retried; a crash meanwhile only means duplicates
            raise
        return len(seqs)

    def _send_some(self, session: Session, queue: SendQueue) -> tuple[int, bool]:
        """Hand paho what the window allows; returns (sent, whether the outbox ran dry)."""
        room = min(session.room(), self.rate.available())
        if self.drops.careful:  # find the message the broker refuses: one in flight at a time
            room = min(room, 1 - session.unacknowledged())
        if room <= 0:
            return 0, False
        batch = queue.next_batch(room)
        sent = 0
        for message in batch:
            if not session.publish(message):
                break
            sent += 1
        self.rate.spend(sent)
        return sent, not batch
