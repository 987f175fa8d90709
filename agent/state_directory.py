"""What a stopped agent left in its state directory, read without changing anything.

When ``remotair status``, ``alarms`` or ``outbox`` find no agent on the control socket, they
still show what is on disk: the outbox depth and oldest message (the SQLite file opened
read-only), the active alarms (``alarms.json``) and the newest snapshot of each camera.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.active_alarms import AlarmStateFile
from agent.errors import ExitCode, RemotairError
from agent.outbox import OutboxMessage, SetAsideMessage
from agent.reports import alarms_report, outbox_report
from agent.wire import MessageClass

OUTBOX_FILE = "outbox.sqlite"
ALARMS_FILE = "alarms.json"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


class StateDirError(RemotairError):
    """A file of the state directory exists but cannot be read."""

    exit_code = ExitCode.FAILURE


@dataclass(frozen=True, slots=True)
class StateDir:
    """The agent's ``[storage] dir``."""

    path: Path

    @property
    def outbox_path(self) -> Path:
        return self.path / OUTBOX_FILE

    def alarms(self) -> dict[str, Any]:
        """Active alarms from ``alarms.json`` (recent events live only in the agent's memory)."""
        store = AlarmStateFile(self.path / ALARMS_FILE)
        active = store.load()
        report = alarms_report(active, None, source="state directory")
        report["file"] = str(self.path / ALARMS_FILE)
        return report

    def outbox(self, peek: int = 0, set_aside: int = 20) -> dict[str, Any] | None:
        """Depth, oldest, peek and set-aside messages; None when there is no outbox file."""
        if not self.outbox_path.exists():
            return None
        try:
            with _read_only(self.outbox_path) as db:
                counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
                oldest = db.execute("SELECT created FROM messages ORDER BY seq LIMIT 1").fetchone()
                pending = db.execute(
                    "SELECT seq, kind, topic, payload, retain, created, attempts FROM messages"
                    " ORDER BY seq LIMIT ?",
                    (peek,),
                ).fetchall()
                aside = db.execute(
                    "SELECT seq, kind, topic, payload, attempts, reason, set_aside_at"
                    " FROM set_aside ORDER BY seq LIMIT ?",
                    (set_aside,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StateDirError(f"cannot read outbox {self.outbox_path}: {exc}") from exc
        summary = {
            "depth": int(counters.get("depth", 0)),
            "bytes": int(counters.get("bytes", 0)),
            "oldest_age_s": None if oldest is None else round(time.time() - float(oldest[0]), 1),
            "evicted": {k.value: int(counters.get(f"evicted.{k.value}", 0)) for k in MessageClass},
            "set_aside": int(counters.get("set_aside", 0)),
            "next_seq": int(counters.get("next_seq", 0)),
        }
        report = outbox_report(
            summary,
            [
                OutboxMessage(int(s), MessageClass(k), str(t), bytes(p), bool(r), float(c), int(a))
                for s, k, t, p, r, c, a in pending
            ],
            [
                SetAsideMessage(
                    int(s), MessageClass(k), str(t), bytes(p), int(a), str(r), float(at)
                )
                for s, k, t, p, a, r, at in aside
            ],
            source="state directory",
        )
        report["file"] = str(self.outbox_path)
        return report

    def last_snapshots(self) -> dict[str, dict[str, Any]]:
        """The newest snapshot file per camera (names are ``<camera>-<UTC time>.jpg``)."""
        folder = self.path / SNAPSHOT_DIR
        newest: dict[str, Path] = {}
        try:
            files = [p for p in folder.iterdir() if p.suffix.lower() in SNAPSHOT_SUFFIXES]
        except OSError:
            return {}
        for file in sorted(files, key=lambda p: p.name):
            camera = file.stem.rsplit("-", 1)[0]
            newest[camera] = file
        now = time.time()
        result: dict[str, dict[str, Any]] = {}
        for camera, file in newest.items():
            try:
                age = round(now - file.stat().st_mtime, 1)
            except OSError:
                age = None
            result[camera] = {"last_snapshot": str(file), "age_s": age}
        return result


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """Open the outbox without creating or changing any file next to it.

    A cleanly stopped agent leaves a checkpointed database and no WAL: it is opened
    ``immutable``. A crashed one leaves a WAL holding committed messages: the database and WAL
    are copied to a temporary directory and the copy is opened, so SQLite's recovery happens on
    the copy (``mode=ro`` would still create ``-shm``/``-wal`` files owned by whoever runs the
    CLI, which the agent's user may then be unable to open).
    """
    wal = path.with_name(path.name + "-wal")
    if not wal.exists():
        db = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, timeout=2.0)
        try:
            yield db
        finally:
            db.close()
        return
    with tempfile.TemporaryDirectory(prefix="remotair-outbox-") as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        db = sqlite3.connect(copy, timeout=2.0)
        try:
            yield db
        finally:
            db.close()
