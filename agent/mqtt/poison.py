"""Recognising a message the broker refuses by closing the connection (MQTT 3.1.1).

MQTT 3.1.1 has no negative PUBACK: AWS IoT Core answers a publish its policy denies by closing
the connection. The link reconnects and replays the outbox from the oldest message, so the same
message is refused again, forever, and everything behind it waits.

:class:`DropWatch` keeps the messages that were unacknowledged each time a connection dropped.
When the same message was in flight at two drops in a row, the link turns careful (one message
in flight at a time), so that the next drop names exactly one suspect; after ``drops_to_give_up``
drops in a row with the same message in flight (and alone), it is set aside with the count and
the reason. An acknowledgement of a suspect clears the suspicion: an ordinary network drop with
messages in flight never sets anything aside once the next connection delivers them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

__all__ = ["DropWatch"]


class DropWatch:
    """Suspects across connection drops. Thread-safe (drops: the network thread; acks: paho's)."""

    def __init__(self, drops_to_give_up: int) -> None:
        if drops_to_give_up < 2:
            raise ValueError("drops_to_give_up must be at least 2")
        self.drops_to_give_up = drops_to_give_up
        self._lock = threading.Lock()
        self._suspects: set[int] = set()
        self._drops = 0

    @property
    def careful(self) -> bool:
        """Publish one message at a time: a message was in flight at two drops in a row."""
        with self._lock:
            return self._drops >= 2

    def dropped(self, unacknowledged: Collection[int]) -> tuple[int, int] | None:
        """A connection that had been up dropped with ``unacknowledged`` messages in flight.

        Returns ``(seq, drops)`` when ``seq`` is to be set aside: it alone was in flight at the
        last ``drops`` drops in a row."""
        with self._lock:
            if not unacknowledged:
                return None  # nothing in flight: not our message's doing
            common = self._suspects & set(unacknowledged)
            if common:
                self._suspects, self._drops = common, self._drops + 1
            else:
                self._suspects, self._drops = set(unacknowledged), 1
            if self._drops >= self.drops_to_give_up and len(self._suspects) == 1:
                (seq,) = self._suspects
                result = (seq, self._drops)
                self._suspects, self._drops = set(), 0
                return result
            return None

    def acknowledged(self, seq: int) -> None:
        """The broker took ``seq``: it is not the one."""
        with self._lock:
            if seq in self._suspects:
                self._suspects.discard(seq)
                if not self._suspects:
                    self._drops = 0

    def forget(self, seq: int) -> None:
        """``seq`` left the outbox another way (set aside for a refusal code)."""
        self.acknowledged(seq)
