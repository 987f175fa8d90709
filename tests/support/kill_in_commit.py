"""Run ``remotair`` and SIGKILL it in the middle of an outbox commit: a power cut mid-commit.

``python -m tests.support.kill_in_commit N run --config FILE`` runs the agent as ``remotair``
would, except that the process kills itself (SIGKILL, nothing flushed, no handler runs) when the
N-th durable outbox transaction (a put, ``synchronous=FULL``) starts its ``COMMIT``: the
transaction's rows are written but not committed, which is what a power cut at that instant
leaves behind. SQLite's trace callback fires as the statement starts running.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys

from agent.cli import main
from agent.outbox import database


def _arm(commits_before_kill: int) -> None:
    real_open = database.OutboxDatabase._open
    seen = 0

    def traced_open(self: database.OutboxDatabase) -> sqlite3.Connection:
        connection = real_open(self)

        def trace(statement: str) -> None:
            nonlocal seen
            if statement == "COMMIT" and self._sync_full:
                seen += 1
                if seen >= commits_before_kill:
                    os.kill(os.getpid(), signal.SIGKILL)

        connection.set_trace_callback(trace)
        return connection

    database.OutboxDatabase._open = traced_open  # type: ignore[method-assign]


if __name__ == "__main__":
    _arm(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
