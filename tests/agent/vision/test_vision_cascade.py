"""Cascade: local first, the cloud only inside the uncertainty band, both opinions recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from agent.vision import BgrImage, CloudUnreachableError, Verdict, VisionError
from agent.vision.cascade import CascadeClassifier
from agent.vision.factory import build_classifier
from agent.vision.rekognition import RekognitionClassifier
from agent.vision.settings import RekognitionSettings, VisionConfig

ARN = "arn:aws:rekognition:eu-west-1:123456789012:project/ducts/version/ducts.v1/1"


class Fixed:
    """A classifier that answers a fixed dirty probability (or raises) and counts its calls."""

    def __init__(
        self, name: str, p_dirty: float, error: Exception | None = None, label: str = ""
    ) -> None:
        self._name = name
        self.label = label
        self.p_dirty = p_dirty
        self.error = error
        self.calls = 0
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    def classify(self, image: BgrImage) -> Verdict:
        self.calls += 1
        if self.error is not None:
            raise self.error
        dirty = self.p_dirty >= 0.5
        return Verdict(
            label=self.label or ("dirty" if dirty else "clean"),
            confidence=self.p_dirty if dirty else 1 - self.p_dirty,
            backend=self._name,
            model_id=f"{self._name}-model",
            latency_ms=1.0,
            dirty_probability=self.p_dirty,
            reason="out of distribution" if self.label == "uncertain" else "",
        )

    def classify_file(self, path: Path) -> Verdict:
        return self.classify(np.zeros((2, 2, 3), np.uint8))

    def close(self) -> None:
        self.closed = True


IMAGE = np.zeros((8, 8, 3), np.uint8)


def test_confident_local_verdict_never_reaches_the_cloud() -> None:
    local, cloud = Fixed("onnx", 0.97), Fixed("rekognition", 0.1)
    verdict = CascadeClassifier(local, cloud, uncertain_low=0.2, uncertain_high=0.8).classify(IMAGE)
    assert cloud.calls == 0
    assert (verdict.label, verdict.decided_by, verdict.backend) == ("dirty", "onnx", "cascade")
    assert [o.backend for o in verdict.opinions] == ["onnx"]


@pytest.mark.parametrize("p_local", [0.2, 0.55, 0.8])  # band edges are inside
def test_uncertain_image_is_decided_by_the_cloud(p_local: float) -> None:
    local, cloud = Fixed("onnx", p_local), Fixed("rekognition", 0.05)
    cascade = CascadeClassifier(local, cloud, uncertain_low=0.2, uncertain_high=0.8)
    verdict = cascade.classify(IMAGE)
    assert cloud.calls == 1
    assert (verdict.label, verdict.decided_by) == ("clean", "rekognition")
    assert verdict.dirty_probability == pytest.approx(0.05)
    assert [o.dirty_probability for o in verdict.opinions] == [p_local, 0.05]
    assert verdict.model_id == "rekognition-model"
    assert verdict.to_dict()["opinions"][0]["backend"] == "onnx"


def test_unreachable_cloud_leaves_the_local_verdict_pending(tmp_path: Path) -> None:
    queued = tmp_path / "q.jpg"
    cloud = Fixed("rekognition", 0.0, CloudUnreachableError("no network", queued_as=queued))
    cascade = CascadeClassifier(Fixed("onnx", 0.6), cloud, uncertain_low=0.3, uncertain_high=0.7)
    verdict = cascade.classify_file(tmp_path / "x.jpg")
    assert (verdict.label, verdict.decided_by, verdict.pending) == ("dirty", "onnx", True)
    assert verdict.extra == {"cloud_error": "no network", "queued_as": str(queued)}


def test_local_uncertain_verdict_outside_the_band_goes_to_the_cloud() -> None:
    """A calibrated model's own "uncertain" (here: out of distribution at p 0.02) asks the cloud
    even though the configured band would not."""
    local = Fixed("onnx", 0.02, label="uncertain")
    cloud = Fixed("rekognition", 0.9)
    verdict = CascadeClassifier(local, cloud, uncertain_low=0.3, uncertain_high=0.7).classify(IMAGE)
    assert cloud.calls == 1
    assert (verdict.label, verdict.decided_by) == ("dirty", "rekognition")
    assert verdict.reason == "local uncertain (out of distribution), cloud decided"
    assert [o.label for o in verdict.opinions] == ["uncertain", "dirty"]


def test_uncertain_verdict_stays_uncertain_when_the_cloud_cannot_answer(tmp_path: Path) -> None:
    queued = tmp_path / "q.jpg"
    cloud = Fixed("rekognition", 0.0, CloudUnreachableError("no network", queued_as=queued))
    local = Fixed("onnx", 0.1, label="uncertain")
    verdict = CascadeClassifier(local, cloud, uncertain_low=0.3, uncertain_high=0.7).classify(IMAGE)
    assert (verdict.label, verdict.pending, verdict.reason) == (
        "uncertain",
        True,
        "out of distribution",
    )


def test_unusable_picture_is_not_sent_to_the_cloud() -> None:
    local, cloud = Fixed("onnx", 0.5, label="unusable"), Fixed("rekognition", 0.9)
    verdict = CascadeClassifier(local, cloud, uncertain_low=0.3, uncertain_high=0.7).classify(IMAGE)
    assert cloud.calls == 0
    assert verdict.label == "unusable"


def test_band_is_validated_and_close_reaches_both() -> None:
    with pytest.raises(ValueError, match="uncertain_low"):
        CascadeClassifier(Fixed("a", 0), Fixed("b", 0), uncertain_low=0.8, uncertain_high=0.2)
    local, cloud = Fixed("onnx", 0.5), Fixed("rekognition", 0.5)
    CascadeClassifier(local, cloud, uncertain_low=0.4, uncertain_high=0.6).close()
    assert local.closed and cloud.closed


def test_factory_rejects_unknown_backend_and_missing_cloud_settings() -> None:
    assert build_classifier(VisionConfig(backend="off")) is None
    with pytest.raises(ValidationError, match="backend"):
        VisionConfig(backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"needs \[vision.rekognition\] project_version_arn"):
        VisionConfig(backend="rekognition")
    with pytest.raises(ValidationError, match="arn"):
        RekognitionSettings(project_version_arn=ARN, arn="y")  # type: ignore[call-arg]
    with pytest.raises(VisionError, match=r"\[vision.rekognition\] project_version_arn"):
        RekognitionClassifier(RekognitionSettings(), client=object())
