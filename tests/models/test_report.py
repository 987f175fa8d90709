"""The figures of the shipped manifest come back when their data is rendered again."""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.models.signing import (
    TrustedKeys,
    dev_public_key_path,
    read_manifest_json,
    verify_release,
)
from agent.vision.factory import shipped_model_path
from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file
from models.dataset import SPLIT_SEED_BASE
from models.evaluate import evaluate
from models.folders import list_samples
from models.report import CARD_BEGIN, CARD_END, main, regenerate

pytestmark = pytest.mark.slow

DEV_PRIVATE_KEY = shipped_model_path().parent / "DEV-ONLY-signing.key"

CELL_TOLERANCE = 2
"""Images a confusion cell of the slice may differ by: another libjpeg or OpenCV build may round
a pixel differently, and an image on the decision boundary may then flip (same build: 0)."""


def accuracy_tolerance(accuracy: float, images: int) -> float:
    """How far a slice's accuracy may sit from the whole split's: three binomial standard
    deviations of an ``images``-image sample at that accuracy (0.06 for 64 images at 97 %)."""
    return 3 * math.sqrt(max(accuracy * (1 - accuracy), 0.01) / images)


def test_shipped_manifest_metrics_reproduce_on_a_regenerated_slice(tmp_path: Path) -> None:
    manifest = load_manifest(manifest_path_for(shipped_model_path()))
    record = manifest.metrics["reproduce"]["slice"]
    first, end = record["seeds"]
    regenerate(manifest.extra, "test", tmp_path, first, end - first)
    result = evaluate(shipped_model_path(), list_samples(tmp_path / "test"), threads=2)
    measured = result.metrics()
    assert measured["images"] == record["images"]
    for row, expected_row in zip(
        measured["confusion_matrix"], record["confusion_matrix"], strict=True
    ):
        for cell, expected in zip(row, expected_row, strict=True):
            assert abs(cell - expected) <= CELL_TOLERANCE
    full = manifest.metrics["int8"]["accuracy"]
    assert abs(measured["accuracy"] - full) <= accuracy_tolerance(full, measured["images"])


def test_report_writes_metrics_manifest_and_card_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model" / shipped_model_path().name
    model.parent.mkdir()
    shutil.copyfile(shipped_model_path(), model)
    shutil.copyfile(manifest_path_for(shipped_model_path()), manifest_path_for(model))
    card = tmp_path / "CARD.md"
    card.write_text(f"# Card\n\n{CARD_BEGIN}\nold figures\n{CARD_END}\n\nrest\n")
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--out",
        str(out),
        "--images",
        "6",
        "--write",
        "--card",
        str(card),
    ]
    assert main(argv) == 0
    assert "signature is now stale: remotair model sign" in capsys.readouterr().err
    raw = read_manifest_json(manifest_path_for(model))
    shipped = read_manifest_json(manifest_path_for(shipped_model_path()))
    assert {k: v for k, v in raw.items() if k != "metrics"} == {
        k: v for k, v in shipped.items() if k != "metrics"
    }  # release, reference images, calibration... all kept

    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]
    assert metrics["seeds"] == [SPLIT_SEED_BASE["test"], SPLIT_SEED_BASE["test"] + 6]
    assert metrics["int8"]["images"] == metrics["fp32"]["images"] == 6
    assert sum(map(sum, metrics["int8"]["confusion_matrix"])) == 6
    assert 0.0 <= metrics["int8"]["expected_calibration_error"] <= 0.5
    assert report["environment"]["packages"]["onnxruntime"]
    assert report["command"].startswith("python -m models.report --model")

    written = load_manifest(manifest_path_for(model))
    assert written.metrics["int8"] == metrics["int8"]
    assert written.metrics["reproduce"]["slice"]["images"] == 6
    assert written.sha256 == load_manifest(manifest_path_for(shipped_model_path())).sha256

    assert main([*argv, "--sign-key", str(DEV_PRIVATE_KEY)]) == 0
    verify_release(
        read_manifest_json(manifest_path_for(model)),
        TrustedKeys.load([dev_public_key_path()]),
        now=datetime.now(UTC),
        file_sha256=sha256_file(model),
    )

    text = card.read_text()
    assert "old figures" not in text and text.endswith(f"{CARD_END}\n\nrest\n")
    assert (
        f"| accuracy | {metrics['fp32']['accuracy']} | **{metrics['int8']['accuracy']}** |" in text
    )
    assert (out / "model_card_metrics.md").read_text() in text


def test_report_without_a_manifest_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "lost.onnx"
    model.write_bytes(b"")
    assert main(["--model", str(model), "--out", str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "manifest not found" in err


def test_a_dataset_record_chooses_what_is_rendered_and_is_stored(tmp_path: Path) -> None:
    model = tmp_path / "model" / shipped_model_path().name
    model.parent.mkdir()
    shutil.copyfile(shipped_model_path(), model)
    shutil.copyfile(manifest_path_for(shipped_model_path()), manifest_path_for(model))
    record = {
        "domain": "all but rust",
        "seed_ranges": {"test": [300_500, 300_504]},
        "render_size": [64, 48],
        "stored_size": [64, 48],
        "jpeg_quality": 85,
        "max_scenes": 2,
    }
    (tmp_path / "dataset.json").write_text(json.dumps(record))
    out = tmp_path / "report"
    argv = ["--model", str(model), "--out", str(out), "--dataset", str(tmp_path / "dataset.json")]
    assert main([*argv, "--write"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["seeds"] == [300_500, 300_504]
    assert sorted(p.name for p in (out / "data" / "test").rglob("*.jpg"))[0] == "s0300500.jpg"
    rendered = json.loads((out / "data" / "dataset.json").read_text())
    assert rendered["domain"] == "all but rust" and rendered["stored_size"] == [64, 48]
    assert rendered["max_scenes"] == 2
    assert load_manifest(manifest_path_for(model)).extra["dataset"] == record


def test_a_set_recorded_before_scene_replacement_is_rendered_with_one_scene(tmp_path: Path) -> None:
    """Records without ``max_scenes`` predate the rule: their dirty seeds keep their own scene."""
    record = {"domain": "all", "render_size": [64, 48], "stored_size": [64, 48]}
    regenerate({"dataset": record}, "test", tmp_path, 300_001, 2)
    assert json.loads((tmp_path / "dataset.json").read_text())["max_scenes"] == 1
