"""``remotair model adapt``: logistic-regression head, the appended ONNX head, cross-validation,
and the refusals (not better, too few images), on rendered images and the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.cli import main as remotair
from agent.vision.adapt import (
    ADAPTED_OUTPUT,
    AdaptError,
    AdaptRefused,
    adapt,
    backbone_bytes,
    binary_metrics,
    stratified_folds,
)
from agent.vision.factory import shipped_model_path
from agent.vision.head import fit_logistic_regression
from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file
from agent.vision.onnx_append import linear_head_suffix
from agent.vision.onnx_backend import OnnxClassifier
from hil.render import render_duct
from models.dataset import FRESH_SEED_BASE

SEED = FRESH_SEED_BASE + 4000


def tinted(image: np.ndarray) -> np.ndarray:
    """The same clean duct upside down under a cold blue cast: a site convention the shipped
    model cannot know (it calls these clean), yet its features set them apart."""
    cast = np.array([170, 90, 40], np.float32)
    return np.ascontiguousarray((image.astype(np.float32) * 0.6 + cast * 0.4)[::-1]).astype(
        np.uint8
    )


def field_set(root: Path, per_label: int) -> Path:
    """``root/clean`` renders of clean ducts; ``root/dirty`` tinted clean ducts (a label the
    shipped model cannot know)."""
    (root / "clean").mkdir(parents=True, exist_ok=True)
    (root / "dirty" / "nested").mkdir(parents=True, exist_ok=True)
    for i in range(per_label):
        clean = render_duct(SEED + i, 0.05, 320, 240)
        cv2.imwrite(str(root / "clean" / f"c{i}.jpg"), clean)
        dirty = tinted(render_duct(SEED + 500 + i, 0.05, 320, 240))
        cv2.imwrite(str(root / "dirty" / "nested" / f"d{i}.JPG"), dirty)
    return root


def test_logistic_regression_is_class_balanced_and_folds_exactly() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 180 + [1] * 20)
    features = rng.normal(size=(200, 30)) + labels[:, None] * 1.2
    head = fit_logistic_regression(features, labels)
    predicted = head.logits(features).argmax(axis=1)
    metrics = binary_metrics(labels, predicted)
    assert metrics["balanced_accuracy"] > 0.9
    assert metrics["confusion_matrix"][1][1] >= 18  # the rare label is not sacrificed
    weights, bias = head.folded()
    assert np.allclose(features @ weights + bias, head.logits(features), atol=1e-9)
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic_regression(features, np.zeros(200))


def test_stratified_folds_split_each_label_evenly() -> None:
    labels = np.array([0] * 23 + [1] * 11)
    folds = stratified_folds(labels, 5)
    for fold in range(5):
        assert 4 <= int(((folds == fold) & (labels == 0)).sum()) <= 5
        assert 2 <= int(((folds == fold) & (labels == 1)).sum()) <= 3


def test_appended_head_is_a_valid_onnx_graph_computing_the_head(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    source = shipped_model_path().read_bytes()
    rng = np.random.default_rng(1)
    weights, bias = rng.normal(size=(512, 2)), np.array([0.25, -0.5])
    path = tmp_path / "with_head.onnx"
    suffix = linear_head_suffix(
        features="features", output=ADAPTED_OUTPUT, weights=weights, bias=bias
    )
    path.write_bytes(source + suffix)
    assert len(suffix) < 5000
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(1, 3, 144, 192)).astype(np.float32)
    features, adapted = session.run(["features", ADAPTED_OUTPUT], {"input": x})
    assert np.allclose(adapted, features @ weights + bias, atol=1e-3)


def test_adapt_learns_what_the_shipped_model_cannot_and_writes_a_usable_model(
    tmp_path: Path,
) -> None:
    data = field_set(tmp_path / "field", 12)
    (data / "clean" / "notes.txt").write_text("not an image")
    (data / "clean" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (data / "clean" / "copy.jpg").write_bytes((data / "clean" / "c0.jpg").read_bytes())
    out = tmp_path / "adapted.onnx"
    report = adapt(shipped_model_path(), data, out, folds=4, threads=1)

    assert report.baseline["balanced_accuracy"] <= 0.75
    assert report.cross_validated["balanced_accuracy"] >= 0.9
    assert {p.name for p, _why in report.skipped} == {"broken.jpg", "copy.jpg", "notes.txt"}
    manifest = load_manifest(manifest_path_for(out))
    assert manifest.sha256 == sha256_file(out)
    assert manifest.logits_output == ADAPTED_OUTPUT
    assert manifest.calibration is not None and manifest.ood is not None
    origin = manifest.extra["adapted_from"]
    assert origin["sha256"] == sha256_file(shipped_model_path())
    assert out.read_bytes()[: origin["bytes"]] == shipped_model_path().read_bytes()
    assert manifest.metrics["cross_validated"]["images"] == 24

    adapted = OnnxClassifier(out, threads=1)
    fresh = tinted(render_duct(SEED + 900, 0.05, 320, 240))
    assert adapted.classify(fresh).extra.get("leaning", adapted.classify(fresh).label) == "dirty"
    assert adapted.classify(render_duct(SEED + 901, 0.05, 320, 240)).dirty_probability < 0.5

    # adapting the adapted model again starts from the same backbone: one head, never two
    assert backbone_bytes(out, manifest) == shipped_model_path().read_bytes()
    # ... and on the same images it is already as good as a new head can be
    with pytest.raises(AdaptRefused, match=r"current model 1\.000"):
        adapt(out, data, tmp_path / "again.onnx", folds=4, threads=1)
    damaged = bytearray(out.read_bytes())
    damaged[100] ^= 0xFF
    out.write_bytes(bytes(damaged))
    with pytest.raises(AdaptError, match="cannot find the backbone"):
        backbone_bytes(out, manifest)


def known_set(root: Path, per_label: int) -> Path:
    """Clean and plainly dirty ducts that the shipped model already calls right, every one:
    no head can beat it on them (the shipped model misses about 2 % of classic renders, so
    the renders are checked rather than assumed)."""
    classifier = OnnxClassifier(shipped_model_path(), threads=1)
    threshold = classifier.manifest.decision_threshold
    try:
        for label, dirt, offset in (("clean", 0.05, 0), ("dirty", 0.9, 500)):
            (root / label).mkdir(parents=True, exist_ok=True)
            kept, seed = 0, SEED + offset
            while kept < per_label:
                path = root / label / f"k{seed}.jpg"
                cv2.imwrite(str(path), render_duct(seed, dirt, 320, 240))
                seed += 1
                p_dirty = classifier.classify_file(path).dirty_probability
                assert p_dirty is not None
                if (p_dirty >= threshold) == (label == "dirty"):
                    kept += 1
                else:
                    path.unlink()
    finally:
        classifier.close()
    return root


def test_refuses_when_the_new_head_is_not_better(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = known_set(tmp_path / "field", 10)
    out = tmp_path / "adapted.onnx"
    with pytest.raises(AdaptRefused, match=r"not better than visual_clean_resnet18_int8@"):
        adapt(shipped_model_path(), data, out, threads=1)
    assert not out.exists() and not manifest_path_for(out).exists()
    assert remotair(["model", "adapt", str(data), "--out", str(out), "--threads", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("remotair model: error: not adapting:")


def test_too_few_images_is_one_line_saying_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = field_set(tmp_path / "field", 4)
    with pytest.raises(AdaptError, match=r"at least 10 of each label are needed \(add 6 more"):
        adapt(shipped_model_path(), data, tmp_path / "x.onnx", threads=1)
    assert remotair(["model", "adapt", str(tmp_path / "nowhere"), "--out", "x.onnx"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = field_set(tmp_path / "field", 10)
    out = tmp_path / "a.onnx"
    argv = ["model", "adapt", str(data), "--out", str(out), "--folds", "3", "--json"]
    assert remotair([*argv, "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 20
    assert report["cross_validated"]["folds"] == 3
    assert report["model_id"] == load_manifest(manifest_path_for(out)).model_id
