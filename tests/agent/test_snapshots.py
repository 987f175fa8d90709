"""Snapshots: store, classify, detect camera faults, keep the newest N files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agent.snapshots import SnapshotTaker
from agent.vision import OUTCOMES, Verdict
from agent.vision.factory import VisionConfig, build_classifier
from hil.board import SimBoard


class FixedClassifier:
    name = "fixed"
    model_id = "fixed-1"

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def classify(self, image: np.ndarray) -> Verdict:
        self.seen.append(image.shape)
        return Verdict("dirty", 0.9, "fixed", "fixed-1", 1.0, 0.9)

    def classify_file(self, path: Path) -> Verdict:  # pragma: no cover - unused here
        raise NotImplementedError


def test_snapshot_is_stored_and_classified(sim_board: SimBoard, tmp_path: Path) -> None:
    clf = FixedClassifier()
    taker = SnapshotTaker("upstream", sim_board.cameras["upstream"], clf, tmp_path)
    result = taker.take()
    assert result.error is None and result.file is not None and result.file.exists()
    assert result.file.with_suffix(".json").exists()
    assert clf.seen == [(240, 320, 3)]
    body = result.verdict_body()
    assert body["label"] == "dirty" and body["snapshot"] == result.file.name
    assert taker.state.ok and taker.state.last_verdict == body


def test_verdict_body_carries_the_outcome_and_reason(sim_board: SimBoard, tmp_path: Path) -> None:
    class Unsure(FixedClassifier):
        def classify(self, image: np.ndarray) -> Verdict:
            return Verdict("uncertain", 0.8, "onnx", "m-1", 1.0, 0.2, reason="out of distribution")

    taker = SnapshotTaker("upstream", sim_board.cameras["upstream"], Unsure(), tmp_path)
    body = taker.take().verdict_body()
    assert (body["label"], body["reason"], body["dirty_probability"]) == (
        "uncertain",
        "out of distribution",
        0.2,
    )
    gate = build_classifier(VisionConfig(backend="onnx", threads=1))
    assert gate is not None
    sim_board.cameras["upstream"].faults.clear()
    body = (
        SnapshotTaker("upstream", sim_board.cameras["upstream"], gate, tmp_path)
        .take()
        .verdict_body()
    )
    assert body["label"] in OUTCOMES
    assert ("reason" in body) == (body["label"] not in ("clean", "dirty"))
    json.dumps(body, allow_nan=False)


def test_dead_black_and_frozen_cameras_are_faults(sim_board: SimBoard, tmp_path: Path) -> None:
    cam = sim_board.cameras["downstream"]
    taker = SnapshotTaker("downstream", cam, FixedClassifier(), tmp_path)
    assert taker.take().error is None
    cam.faults.frozen = True
    frozen = taker.take()
    assert frozen.error is not None and "frozen" in frozen.error and frozen.verdict is None
    cam.faults.clear()
    cam.faults.black = True
    assert "black" in (taker.take().error or "")
    cam.faults.clear()
    cam.faults.dead = True
    dead = taker.take()
    assert dead.error is not None and dead.file is None
    assert taker.state.consecutive_failures == 3 and not taker.state.ok
    cam.faults.clear()
    assert taker.take().error is None and taker.state.ok


def test_only_the_newest_files_are_kept(sim_board: SimBoard, tmp_path: Path) -> None:
    taker = SnapshotTaker("upstream", sim_board.cameras["upstream"], None, tmp_path, keep=2)
    files = []
    for _ in range(4):
        sim_board.clock.sleep(1.0)  # distinct timestamps in the file names
        files.append(taker.take().file)
    assert sorted(tmp_path.glob("upstream-*.jpg")) == sorted(files[-2:])  # type: ignore[type-var]
    assert len(list(tmp_path.glob("upstream-*.json"))) == 2


def test_unwritable_storage_still_classifies(sim_board: SimBoard, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the snapshot directory should be")
    clf = FixedClassifier()
    result = SnapshotTaker("upstream", sim_board.cameras["upstream"], clf, blocker).take()
    assert result.file is None and result.verdict is not None and result.error is None


class OfflineCloud:
    """A Rekognition stand-in that is unreachable: it keeps each image in a real RetryQueue."""

    name = "rekognition"

    def __init__(self, queue_dir: Path) -> None:
        from agent.vision.rekognition import RetryQueue

        self.retry_queue = RetryQueue(queue_dir)
        self.online = False

    def classify(self, image: np.ndarray) -> Verdict:
        from agent.vision import CloudUnreachableError

        queued = self.retry_queue.put(b"jpeg bytes " + image.tobytes()[:16], reason="no network")
        raise CloudUnreachableError("no network", queued_as=queued)

    def retry_pending(self, *, limit: int = 20) -> list[tuple[Path, Verdict]]:
        done = []
        for path in self.retry_queue.items()[:limit]:
            done.append((path, Verdict("dirty", 0.8, "rekognition", "arn:v1", 5.0, 0.8)))
            self.retry_queue.remove(path)
        return done

    def classify_file(self, path: Path) -> Verdict:  # pragma: no cover - unused here
        raise NotImplementedError


def test_a_snapshot_queued_for_the_cloud_is_published_later_under_its_camera(
    sim_board: SimBoard, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from agent.daemon import Agent
    from agent.snapshots import queued_cameras

    cloud = OfflineCloud(tmp_path / "retry")
    taker = SnapshotTaker("downstream", sim_board.cameras["downstream"], cloud, tmp_path / "snaps")
    result = taker.take()
    assert result.verdict is None and "snapshot kept for retry" in (taker.state.last_error or "")
    [queued] = cloud.retry_queue.items()
    assert queued_cameras([queued]) == {queued: "downstream"}

    sent: list[tuple[str, dict[str, object]]] = []
    agent = SimpleNamespace(
        classifier=cloud,
        dispatch=SimpleNamespace(send=lambda kind, name, body, **kw: sent.append((name, body))),
    )
    assert Agent.retry_cloud(agent) == 1  # type: ignore[arg-type]
    [(camera, body)] = sent
    assert camera == "downstream"
    assert body["camera"] == "downstream" and body["label"] == "dirty"
    assert body["retried"] == queued.name
    assert cloud.retry_queue.items() == []
