"""A newly switched model is on probation until its first verdicts show it works on this board.

Mender calls this the health commit: after an update the device runs the new version, and only
when it proves healthy is the switch made final; otherwise it goes back by itself. Here a run of
failed classifications, or the agent dying while the model is on probation (a crash inside the
runtime takes the whole process with it, so the verdict never comes), rolls back to the previous
model. The state lives in a small file beside the store's pointers, so a crash cannot erase it.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.models.config import DEFAULT_PROBATION_FAILURES, DEFAULT_PROBATION_VERDICTS
from agent.models.store import write_json_durably

log = logging.getLogger(__name__)

PROBATION = "probation.json"


@dataclass(frozen=True, slots=True)
class ProbationPolicy:
    verdicts_to_commit: int = DEFAULT_PROBATION_VERDICTS
    """Successful classifications after which the switch is final."""
    failures_to_rollback: int = DEFAULT_PROBATION_FAILURES
    """Classifications failing in a row that send the board back to the previous model."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the probation decided after a classification (``None`` from :meth:`record`: wait)."""

    rollback: bool
    reason: str
    request_id: str
    sha256: str


class Probation:
    """The probation of the active model, if any, persisted in ``<store>/probation.json``."""

    def __init__(self, root: Path, policy: ProbationPolicy) -> None:
        self.path = root / PROBATION
        self.policy = policy
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = self._read()
        self._failures = 0

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("probation state unreadable path=%s error=%s; ignoring it", self.path, exc)
            return None
        return data if isinstance(data, dict) else None

    @property
    def active(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._state) if self._state else None

    def begin(self, sha256: str, request_id: str) -> None:
        with self._lock:
            self._state = {"sha256": sha256, "id": request_id, "ok": 0, "clean_exit": False}
            self._failures = 0
            write_json_durably(self.path, self._state)

    def end(self) -> None:
        with self._lock:
            self._state = None
            self.path.unlink(missing_ok=True)

    def after_start(self, active_sha: str | None) -> Decision | None:
        """At agent start: did the last run die while ``active_sha`` was on probation?"""
        with self._lock:
            state = self._state
            if state is None:
                return None
            if state.get("sha256") != active_sha:
                self._state = None
                self.path.unlink(missing_ok=True)
                return None
            if not state.get("clean_exit"):
                return Decision(
                    True,
                    f"the agent stopped unexpectedly while model {active_sha and active_sha[:12]}"
                    f" was on probation ({state.get('ok', 0)} good verdicts): crash?",
                    str(state.get("id", "")),
                    str(active_sha),
                )
            state["clean_exit"] = False
            write_json_durably(self.path, state)
            return None

    def note_clean_exit(self) -> None:
        with self._lock:
            if self._state is not None:
                self._state["clean_exit"] = True
                write_json_durably(self.path, self._state)

    def record(self, ok: bool, error: str = "") -> Decision | None:
        """Count one classification of the model on probation; a decision when there is one."""
        with self._lock:
            state = self._state
            if state is None:
                return None
            sha, request_id = str(state["sha256"]), str(state.get("id", ""))
            if ok:
                self._failures = 0
                state["ok"] = int(state.get("ok", 0)) + 1
                if state["ok"] >= self.policy.verdicts_to_commit:
                    self._state = None
                    self.path.unlink(missing_ok=True)
                    return Decision(False, f"{state['ok']} good verdicts", request_id, sha)
                write_json_durably(self.path, state)
                return None
            self._failures += 1
            if self._failures >= self.policy.failures_to_rollback:
                self._state = None
                self.path.unlink(missing_ok=True)
                return Decision(
                    True,
                    f"{self._failures} classifications failed in a row after switching"
                    f" (last: {error})",
                    request_id,
                    sha,
                )
            return None
