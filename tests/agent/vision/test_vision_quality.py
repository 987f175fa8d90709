"""The image-quality gate: rendered ducts pass, the same ducts made to fail each way are
unusable with the right reason, and an unusable picture never reaches a backend."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision import BgrImage, Verdict
from agent.vision.quality import QualityGatedClassifier, QualityLimits, assess
from models.dataset import FRESH_SEED_BASE, render_sample

SEEDS = range(FRESH_SEED_BASE + 200, FRESH_SEED_BASE + 212)


@pytest.fixture(scope="module")
def ducts() -> list[np.ndarray]:
    return [render_sample(seed, width=640, height=480)[2] for seed in SEEDS]


def darkened(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * 0.1).astype(np.uint8)


def over_exposed(image: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float32) * 4 + 60, 0, 255).astype(np.uint8)


def blurred(image: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), 3), np.uint8)


def fogged(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * 0.15 + 0.85 * 200).astype(np.uint8)


def covered(image: np.ndarray) -> np.ndarray:
    """A dust pad on the lens: a dim, even grey-brown with a ghost of the lit scene behind it."""
    ghost = cv2.GaussianBlur(image, (0, 0), 25).astype(np.float32) * 0.15
    return (ghost + np.array([60, 70, 80], np.float32)).astype(np.uint8)


def sensor_noise(image: np.ndarray) -> np.ndarray:
    """A failing sensor or cable: every pixel 90 % independent noise over a ghost of the scene."""
    noise = np.random.default_rng(int(image.sum()) % 1000).integers(0, 256, image.shape)
    return (0.9 * noise + 0.1 * image).astype(np.uint8)


def grainy(image: np.ndarray) -> np.ndarray:
    """High-gain grain (sd 40 grey levels): noisy, but still a picture of the duct."""
    grain = np.random.default_rng(5).normal(0.0, 40.0, image.shape)
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def test_rendered_ducts_are_usable(ducts: list[np.ndarray]) -> None:
    for image in ducts:
        report = assess(image)
        assert report.usable, report
        assert assess(grainy(image)).usable
    big = render_sample(FRESH_SEED_BASE + 250, width=1600, height=1200)[2]
    assert assess(big).usable


@pytest.mark.parametrize(
    ("degrade", "reason"),
    [
        (darkened, "too dark"),
        (over_exposed, "over-exposed"),
        (blurred, "out of focus"),
        (fogged, "lens covered or fogged"),
        (covered, "lens covered or fogged"),
        (sensor_noise, "pixel noise"),
    ],
)
def test_degraded_ducts_are_unusable_with_the_reason(
    ducts: list[np.ndarray], degrade: object, reason: str
) -> None:
    for image in ducts:
        report = assess(degrade(image))  # type: ignore[operator]
        assert not report.usable
        assert report.problem is not None and report.problem.startswith(reason), report


def test_limits_are_what_decides(ducts: list[np.ndarray]) -> None:
    image = blurred(ducts[0])
    assert assess(image, QualityLimits(min_sharpness=0.5)).usable
    assert not assess(ducts[0], QualityLimits(min_contrast=500)).usable


class Recording:
    """A backend that answers dirty and remembers how often it was asked."""

    calls = 0

    @property
    def name(self) -> str:
        return "onnx"

    @property
    def model_id(self) -> str:
        return "test-model@1"

    def classify(self, image: BgrImage) -> Verdict:
        self.calls += 1
        return Verdict("dirty", 0.9, "onnx", "test-model@1", 1.0, 0.9)

    def classify_file(self, path: Path) -> Verdict:
        self.calls += 1
        return Verdict("dirty", 0.9, "onnx", "test-model@1", 1.0, 0.9)

    def close(self) -> None:
        pass


def test_gate_stops_unusable_pictures_before_the_backend(
    ducts: list[np.ndarray], tmp_path: Path
) -> None:
    inner = Recording()
    gate = QualityGatedClassifier(inner)
    verdict = gate.classify(darkened(ducts[0]))
    assert (verdict.label, verdict.decided_by, verdict.model_id) == (
        "unusable",
        "quality-gate",
        "test-model@1",
    )
    assert verdict.reason.startswith("too dark")
    assert verdict.to_dict()["dirty_probability"] is None
    assert verdict.to_dict()["extra"]["quality"]["mean"] < 28
    assert inner.calls == 0
    path = tmp_path / "fogged.jpg"
    cv2.imwrite(str(path), fogged(ducts[1]))
    assert gate.classify_file(path).label == "unusable"
    assert inner.calls == 0
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), ducts[2])
    assert gate.classify_file(good).label == "dirty"
    assert gate.classify(ducts[2]).label == "dirty"
    assert inner.calls == 2


def test_gate_can_be_switched_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """[vision] quality_gate = false / classify --no-quality-gate: the model answers anyway."""
    from agent.cli import main as remotair
    from agent.vision.factory import VisionConfig, build_classifier
    from agent.vision.onnx_backend import OnnxClassifier

    off = VisionConfig(backend="onnx", threads=1, quality_gate=False)
    assert isinstance(build_classifier(off), OnnxClassifier)
    flat = tmp_path / "flat.jpg"
    cv2.imwrite(str(flat), np.full((240, 320, 3), 120, np.uint8))
    assert remotair(["classify", str(flat), "--json", "--no-quality-gate"]) == 0
    assert json.loads(capsys.readouterr().out)["verdicts"][0]["label"] != "unusable"
    assert remotair(["classify", str(flat), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)["verdicts"][0]
    assert (verdict["label"], verdict["decided_by"]) == ("unusable", "quality-gate")
