"""The model runtime: what runs at start, hot swap on install, probation, automatic rollback."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.models.install import InstallPolicy, InstallRequest, InstallState
from agent.models.probation import ProbationPolicy
from agent.models.reference import reference_block
from agent.models.runtime import ActiveModel, ModelRuntime, ModelSettings
from agent.models.signing import (
    TrustedKeys,
    dev_public_key_path,
    load_public_key,
    sign_manifest,
)
from agent.vision import Classifier
from agent.vision.factory import shipped_model_path
from agent.vision.manifest import manifest_path_for
from agent.vision.onnx_backend import OnnxClassifier
from tests.agent.models.conftest import shipped_manifest
from tests.agent.models.tiny_onnx import write_tiny_model
from tests.support.vision_models import shipped_model_version

SHIPPED_VERSION = shipped_model_version()

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DUCT = np.full((240, 320, 3), 90, np.uint8)
"""As dark as a duct snapshot: the ``nan_on_dark`` model fails on it."""


def white_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((144, 192, 3), 255, np.uint8))
    assert ok
    return bytes(data.tobytes())


class Board:
    """A runtime over a store in ``tmp_path``, the shipped model as the configured one."""

    def __init__(self, root: Path, key: Ed25519PrivateKey, *, keys: bool = True) -> None:
        self.root = root
        self.key = key
        self.reports: list[dict[str, Any]] = []
        dev = load_public_key(dev_public_key_path())  # signed the shipped model
        trusted = TrustedKeys.of([key.public_key(), dev] if keys else [])
        self.settings = ModelSettings(
            store_dir=root / "store",
            fallback_model=shipped_model_path(),
            install=InstallPolicy(trusted=trusted),
            probation=ProbationPolicy(verdicts_to_commit=3, failures_to_rollback=2),
        )

    def runtime(self) -> ModelRuntime:
        return ModelRuntime(
            self.settings,
            lambda model: OnnxClassifier(model, threads=1),
            report=self.reports.append,
            now=lambda: NOW,
            agent_version="0.1.0",
        )

    def release(self, mode: str, version: int) -> tuple[dict[str, Any], str]:
        """A signed tiny model (reference: a white image) and its file:// URL."""
        directory = self.root / f"release-{mode}-{version}"
        directory.mkdir()
        model = write_tiny_model(directory / f"tiny_{mode}.onnx", mode)
        manifest = {
            **shipped_manifest(),
            "model_file": model.name,
            "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
            "size_bytes": model.stat().st_size,
            "model_version": version,
        }
        manifest_path_for(model).write_text(json.dumps(manifest))
        classifier = OnnxClassifier(model, threads=1)
        manifest["reference"] = reference_block(classifier, [("white", white_jpeg())])
        classifier.close()
        return sign_manifest(manifest, self.key), model.as_uri()


@pytest.fixture
def board(tmp_path: Path) -> Board:
    return Board(tmp_path, Ed25519PrivateKey.generate())


def _install(runtime: ModelRuntime, board: Board, mode: str, version: int, rid: str) -> str:
    manifest, url = board.release(mode, version)
    report = runtime.install(InstallRequest(rid, manifest, url))
    assert report.state is InstallState.ACTIVE, report
    return str(manifest["sha256"])


def _switch_to_a_failing_model(runtime: ModelRuntime, board: Board) -> tuple[ActiveModel, str, str]:
    """Start, install a good model and commit it (three verdicts), then install one whose every
    classification of a duct picture fails (it passes its white reference image). Returns the
    classifier and the two sha256s."""
    classifier = runtime.start()
    assert classifier is not None
    good = _install(runtime, board, "constant", SHIPPED_VERSION + 1, "r1")
    for _ in range(3):
        classifier.classify(DUCT)
    bad = _install(runtime, board, "nan_on_dark", SHIPPED_VERSION + 2, "r2")
    return classifier, good, bad


def test_the_configured_model_runs_while_the_store_is_empty(board: Board) -> None:
    runtime = board.runtime()
    classifier = runtime.start()
    assert classifier is not None and classifier.model_id.startswith("visual_clean_resnet18_int8@")
    status = runtime.status()
    assert status["from_store"] is False and status["model_version"] == SHIPPED_VERSION
    assert runtime.active_version() == SHIPPED_VERSION


def test_install_swaps_the_running_classifier(board: Board) -> None:
    runtime = board.runtime()
    classifier = runtime.start()
    assert classifier is not None
    sha = _install(runtime, board, "constant", SHIPPED_VERSION + 1, "r1")
    assert classifier.model_id == f"tiny_constant@{sha[:12]}"  # the same object, a new model
    assert classifier.classify(DUCT).dirty_probability == pytest.approx(0.018, abs=0.001)
    assert runtime.status()["probation"]["sha256"] == sha
    for _ in range(3):
        classifier.classify(DUCT)
    assert runtime.status()["probation"] is None  # committed
    assert [r["state"] for r in board.reports][-1] == "active"


def test_a_run_of_failures_after_switching_rolls_back_by_itself(board: Board) -> None:
    runtime = board.runtime()
    classifier, good, bad = _switch_to_a_failing_model(runtime, board)
    assert runtime.store.pointers().active == bad
    for _ in range(2):
        with pytest.raises(ValueError, match="finite logits"):
            classifier.classify(DUCT)
    assert runtime.store.pointers().active == good
    assert classifier.model_id == f"tiny_constant@{good[:12]}"
    classifier.classify(DUCT)  # the previous model answers again
    last = board.reports[-1]
    assert (last["state"], last["id"], last["sha256"], last["rolled_back"]) == (
        "rolled back",
        "r2",
        good,
        bad,
    )
    assert "2 classifications failed in a row" in last["reason"]
    assert runtime.status()["last_install"]["state"] == "rolled back"


def test_a_crash_during_probation_rolls_back_at_the_next_start(board: Board) -> None:
    _, good, bad = _switch_to_a_failing_model(board.runtime(), board)
    # The process dies here (a crash in the runtime): no note_clean_exit().
    again = board.runtime()
    assert again.start() is not None
    assert again.store.pointers().active == good
    last = board.reports[-1]
    assert (last["state"], last["id"], last["rolled_back"]) == ("rolled back", "r2", bad)
    assert "stopped unexpectedly" in last["reason"]


def test_a_clean_restart_during_probation_keeps_the_new_model(board: Board) -> None:
    first = board.runtime()
    first.start()
    sha = _install(first, board, "constant", SHIPPED_VERSION + 1, "r1")
    first.note_clean_exit()
    again = board.runtime()
    again.start()
    assert again.store.pointers().active == sha
    assert again.status()["probation"]["sha256"] == sha


def test_with_trusted_keys_an_unsigned_model_is_refused_at_start(
    board: Board, tmp_path: Path
) -> None:
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    model = unsigned / shipped_model_path().name
    shutil.copy(shipped_model_path(), model)
    manifest_path_for(model).write_text(json.dumps(shipped_manifest()))
    board.settings = ModelSettings(
        store_dir=board.settings.store_dir,
        fallback_model=model,
        install=board.settings.install,
    )
    runtime = board.runtime()
    assert runtime.start() is None
    assert runtime.refused is not None and "no signature" in runtime.refused
    assert runtime.status()["refused"] == runtime.refused


def test_without_trusted_keys_the_shipped_model_runs_unverified(tmp_path: Path) -> None:
    board = Board(tmp_path, Ed25519PrivateKey.generate(), keys=False)
    runtime = board.runtime()
    assert runtime.start() is not None
    assert runtime.status()["signature_required"] is False


def test_an_install_cut_short_by_a_restart_is_reported_failed(board: Board) -> None:
    runtime = board.runtime()
    runtime.start()
    runtime.store.root.mkdir(parents=True)
    (runtime.store.root / "last_install.json").write_text(
        json.dumps({"id": "r9", "state": "downloading", "percent": 40})
    )
    again = board.runtime()
    again.start()
    last = board.reports[-1]
    assert (last["id"], last["state"], last["check"]) == ("r9", "failed", "interrupted")


def test_the_classifier_type_is_a_classifier(board: Board) -> None:
    classifier = board.runtime().start()
    assert isinstance(classifier, Classifier)


def test_the_first_install_can_roll_back_to_the_configured_model(board: Board) -> None:
    runtime = board.runtime()
    classifier = runtime.start()
    assert classifier is not None
    _install(runtime, board, "nan_on_dark", SHIPPED_VERSION + 1, "r1")
    for _ in range(2):
        with pytest.raises(ValueError, match="finite logits"):
            classifier.classify(DUCT)
    assert classifier.model_id.startswith("visual_clean_resnet18_int8@")
    assert board.reports[-1]["state"] == "rolled back"
    assert runtime.status()["file"].endswith("visual_clean_resnet18_int8.onnx")
