"""One snapshot of one camera: capture, check, store, classify."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import RemotairError
from agent.fault_record import FaultRecord
from agent.heap import release_freed_memory
from agent.vision import Classifier, CloudError, Verdict, rounded
from drivers.camera import Camera, frame_digest, frame_problem, save_snapshot
from drivers.errors import CameraError

log = logging.getLogger(__name__)


@dataclass
class CameraState(FaultRecord):
    """What the agent knows of one camera, for the health report and the technician."""

    name: str
    last_file: str | None = None
    last_captured_at: float | None = None
    last_verdict: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    camera: str
    ts: float
    file: Path | None
    verdict: Verdict | None
    error: str | None
    """A camera fault (no frame, black, frozen); None when the frame was good."""

    def verdict_body(self) -> dict[str, object]:
        """The ``vision/<camera>`` message body (see docs/wire-format.md)."""
        assert self.verdict is not None
        v = self.verdict
        body: dict[str, object] = {
            "camera": self.camera,
            "label": v.label,
            "confidence": round(v.confidence, 4),
            "dirty_probability": rounded(v.dirty_probability),
            "backend": v.backend,
            "model": v.model_id,
            "latency_ms": round(v.latency_ms, 1),
            "decided_by": v.decided_by or v.backend,
            "pending": v.pending,
            "snapshot": self.file.name if self.file else None,
        }
        if v.reason:
            body["reason"] = v.reason
        if v.opinions:
            body["opinions"] = [o.to_dict() for o in v.opinions]
        return body


class SnapshotTaker:
    """Takes, stores and classifies snapshots of one camera, keeping the newest ``keep`` files."""

    def __init__(
        self,
        name: str,
        camera: Camera,
        classifier: Classifier | None,
        directory: Path,
        *,
        keep: int = 500,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.camera = camera
        self.classifier = classifier
        self.directory = directory
        self.keep = keep
        self.state = CameraState(name)
        self._previous: bytes | None = None
        """The :func:`frame_digest` of the last frame (a frozen camera repeats it)."""
        self._wall_clock = wall_clock
        self._lock = threading.Lock()

    def take(self) -> SnapshotResult:
        with self._lock:
            try:
                return self._take()
            finally:
                release_freed_memory()

    def _take(self) -> SnapshotResult:
        now = self._wall_clock()
        try:
            frame = self.camera.capture()
        except CameraError as exc:
            return self._fault(now, exc.detail)
        problem = frame_problem(frame.image, self._previous)
        self._previous = frame_digest(frame.image)
        path: Path | None = None
        try:
            path = save_snapshot(frame, self.directory)
            self._prune()
        except (OSError, CameraError) as exc:
            # The verdict still goes out; only the picture for the data team is missing.
            log.error(
                "snapshot not stored camera=%s dir=%s error=%s", self.name, self.directory, exc
            )
        if problem is not None:
            return self._fault(now, problem, path)
        verdict: Verdict | None = None
        if self.classifier is not None:
            try:
                verdict = self.classifier.classify(frame.image)
                queued = verdict.extra.get("queued_as")
                if queued:
                    tag_queued_snapshot(Path(str(queued)), self.name)
            except CloudError as exc:
                log.error("cloud classification failed camera=%s error=%s", self.name, exc)
                self.state.last_error = f"classification: {exc}"
                if exc.queued_as is not None:
                    tag_queued_snapshot(exc.queued_as, self.name)
            except RemotairError as exc:
                log.error("classification failed camera=%s error=%s", self.name, exc)
                self.state.last_error = f"classification: {exc}"
        state = self.state
        state.succeeded()
        state.last_file = str(path) if path else None
        state.last_captured_at = now
        result = SnapshotResult(self.name, now, path, verdict, None)
        if verdict is not None:
            state.last_verdict = result.verdict_body()
        return result

    def _fault(self, now: float, error: str, path: Path | None = None) -> SnapshotResult:
        self.state.failed(error)
        log.warning("camera fault camera=%s error=%s", self.name, error)
        return SnapshotResult(self.name, now, path, None, error)

    def _prune(self) -> None:
        files = sorted(self.directory.glob(f"{self.name}-*.jpg"))
        for old in files[: max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)


def tag_queued_snapshot(queued: Path, camera: str) -> None:
    """Note in a cloud-retry entry's sidecar which camera took it, for the later verdict."""
    sidecar = queued.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        meta["camera"] = camera
        sidecar.write_text(json.dumps(meta))
    except (OSError, ValueError) as exc:
        log.warning("cannot tag queued snapshot path=%s error=%s", queued, exc)


def queued_cameras(paths: list[Path]) -> dict[Path, str]:
    """The camera of each queued snapshot (read before a retry removes the entries)."""
    cameras: dict[Path, str] = {}
    for path in paths:
        try:
            camera = json.loads(path.with_suffix(".json").read_text()).get("camera")
        except (OSError, ValueError):
            continue
        if isinstance(camera, str):
            cameras[path] = camera
    return cameras
