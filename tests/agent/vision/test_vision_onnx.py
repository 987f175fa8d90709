"""The ONNX backend with the shipped model: quality on images it never saw, and the refusals
(hash, input shape, corrupt file) that protect the board from a wrong model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.cli import classify as classify_command
from agent.vision import LABELS, ModelError
from agent.vision.factory import VisionConfig, build_classifier, shipped_model_path
from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.quality import QualityGatedClassifier
from models.dataset import FRESH_SEED_BASE, render_sample
from tests.support.vision_models import edit_manifest

FRESH_IMAGES = 60


def test_shipped_manifest_matches_the_shipped_file() -> None:
    model = shipped_model_path()
    manifest = load_manifest(manifest_path_for(model))
    assert manifest.sha256 == sha256_file(model)
    assert manifest.labels == LABELS
    assert manifest.opset >= 17
    # On its own test split (the randomised renderer, every family): issue 9 asks for 0.97, the
    # shipped model reaches 0.913 (MODEL_CARD.md lists the target as missed); this guards it.
    assert manifest.metrics["int8"]["accuracy"] >= 0.9
    assert manifest.metrics["fp32"]["accuracy"] - manifest.metrics["int8"]["accuracy"] <= 0.01


def test_accuracy_on_freshly_rendered_images(shipped: OnnxClassifier) -> None:
    """Seeds from FRESH_SEED_BASE on were never rendered for training, validation or test.

    These are the classic galvanised renders the previous model was trained on. The calibrated
    model may call an image uncertain (it then names the side it leans to); it must be right on
    at least 80 % of all images and wrong on at most 5 % of them (measured: 56 right, 2 wrong).
    """
    correct = wrong = 0
    for seed in range(FRESH_SEED_BASE, FRESH_SEED_BASE + FRESH_IMAGES):
        label, _dirt, image = render_sample(seed, width=640, height=480)
        verdict = shipped.classify(image)
        correct += verdict.label == label
        wrong += verdict.label not in (label, "uncertain")
        assert verdict.backend == "onnx"
        assert 0.5 <= verdict.confidence <= 1.0
        if verdict.label == "uncertain":
            assert verdict.reason and verdict.extra["leaning"] in LABELS
    assert correct / FRESH_IMAGES >= 0.8
    assert wrong / FRESH_IMAGES <= 0.05


def test_file_path_with_a_two_megapixel_jpeg(shipped: OnnxClassifier, tmp_path: Path) -> None:
    hits = 0
    for seed in range(FRESH_SEED_BASE + 500, FRESH_SEED_BASE + 510):
        label, _dirt, image = render_sample(seed, width=1600, height=1200)
        path = tmp_path / f"{seed}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        verdict = shipped.classify_file(path)
        hits += verdict.label == label
        assert verdict.label in (label, "uncertain")  # never confidently wrong
        assert verdict.model_id == shipped.manifest.model_id
    assert hits >= 7


def test_hash_mismatch_is_refused(model_copy: Path) -> None:
    data = bytearray(model_copy.read_bytes())
    data[-1] ^= 0xFF
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch") as info:
        OnnxClassifier(model_copy)
    assert str(model_copy) in str(info.value)


def test_input_shape_mismatch_is_refused(model_copy: Path) -> None:
    edit_manifest(model_copy, input_shape=[1, 3, 96, 96])
    with pytest.raises(ModelError, match=r"input mismatch.*\[1, 3, 96, 96\]"):
        OnnxClassifier(model_copy)


def test_corrupt_model_file_is_refused_with_its_name(model_copy: Path) -> None:
    model_copy.write_bytes(model_copy.read_bytes()[:5000])
    edit_manifest(model_copy, sha256=sha256_file(model_copy))  # hash passes, parsing must not
    with pytest.raises(ModelError, match="not a loadable ONNX model") as info:
        OnnxClassifier(model_copy)
    assert model_copy.name in str(info.value)


def test_missing_manifest_and_bad_threads(model_copy: Path) -> None:
    manifest_path_for(model_copy).unlink()
    with pytest.raises(ModelError, match="manifest not found"):
        OnnxClassifier(model_copy)
    with pytest.raises(ValueError, match="threads"):
        OnnxClassifier(shipped_model_path(), threads=0)


def test_classify_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label, _dirt, image = render_sample(FRESH_SEED_BASE + 900, width=640, height=480)
    good = tmp_path / "snap.jpg"
    cv2.imwrite(str(good), image)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    parser = argparse.ArgumentParser(prog="remotair")
    classify_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["classify", str(good), str(bad), "--json", "--threads", "1"])
    assert args.func(args) == 1  # one image failed
    verdicts = json.loads(capsys.readouterr().out)["verdicts"]
    assert verdicts[0]["label"] in (label, "uncertain")
    assert (verdicts[0]["label"] == "uncertain") == ("reason" in verdicts[0])
    assert verdicts[0]["backend"] == "onnx"
    assert "broken.jpg" in verdicts[1]["error"]


def test_factory_builds_the_shipped_model_behind_the_quality_gate() -> None:
    classifier = build_classifier(VisionConfig(backend="onnx", threads=1))
    assert isinstance(classifier, QualityGatedClassifier)
    assert isinstance(classifier.inner, OnnxClassifier)
    assert classifier.model_id == classifier.inner.model_id
    flat = classifier.classify(np.full((240, 320, 3), 120, np.uint8))
    assert (flat.label, flat.decided_by, flat.dirty_probability) == (
        "unusable",
        "quality-gate",
        None,
    )
    label, _dirt, image = render_sample(FRESH_SEED_BASE + 77, width=640, height=480)
    verdict = classifier.classify(image)
    assert verdict.label in (label, "uncertain")
    assert verdict.to_dict()["decided_by"] == "onnx"
