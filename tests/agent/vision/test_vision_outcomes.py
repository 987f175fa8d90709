"""The shipped model's four outcomes: clean and dirty, uncertain (calibrated band or out of
distribution, with the reason), and the old-style fallback (no calibration, one output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.vision import LABELS, ModelError
from agent.vision.calibration import FEATURES_OUTPUT, softmax
from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.preprocess import to_model_input
from models import foreign
from models.dataset import FRESH_SEED_BASE, render_sample
from tests.support.vision_models import edit_manifest


def test_shipped_manifest_carries_calibration_and_ood(shipped: OnnxClassifier) -> None:
    manifest = shipped.manifest
    assert manifest.calibration is not None and manifest.ood is not None
    low, high = manifest.calibration.uncertain_band
    assert low < manifest.decision_threshold < high
    uncertainty = manifest.metrics["uncertainty"]
    # The temperature minimises the validation NLL, not the binned ECE, which it may move a
    # little either way (version 6, T = 0.90: 0.0091 -> 0.0113 on the test split; version 4,
    # T = 0.94: 0.0159 -> 0.0204). What must hold is that the calibrated probabilities match the
    # observed frequencies on the 1000 test images.
    assert uncertainty["ece_calibrated"] <= 0.03
    # issue 9 asks for >= 60 % of the errors flagged and <= 10 % of the right verdicts; version 8
    # flags 85.7 % and 8.7 % on its test split (version 5: 48.9 % and 7.8 %). The shipped model
    # must keep meeting the target on its own test split.
    assert uncertainty["correct_flagged"] <= 0.1
    assert uncertainty["errors_flagged"] >= 0.6


def test_images_unlike_any_duct_are_uncertain_out_of_distribution(
    shipped: OnnxClassifier,
) -> None:
    # Version 8 scores these 3.5x, 4.0x and 1.75x its threshold (`python -m models.foreign`); a
    # hue-turned duct can sit within 1 % of it (seed + 31: 0.99x), too close to pin here when
    # int8 kernels differ between CPUs.
    hue_turned = foreign.hue_turned(foreign.duct(71))
    for image in (foreign.checkerboard(40), foreign.stripes(), hue_turned):
        verdict = shipped.classify(image)
        assert verdict.label == "uncertain"
        assert "out of distribution: feature distance" in verdict.reason  # maybe the band too
        assert verdict.extra["ood_score"] > shipped.manifest.ood.threshold  # type: ignore[union-attr]
        assert verdict.extra["leaning"] in LABELS


def test_ordinary_duct_is_decided_with_its_ood_score(shipped: OnnxClassifier) -> None:
    label, _dirt, image = render_sample(FRESH_SEED_BASE + 2, width=640, height=480)
    verdict = shipped.classify(image)
    assert verdict.label == label
    assert verdict.reason == ""
    assert verdict.extra["ood_score"] <= shipped.manifest.ood.threshold  # type: ignore[union-attr]


def test_probability_inside_the_band_is_uncertain(model_copy: Path) -> None:
    data = json.loads(manifest_path_for(model_copy).read_text())
    edit_manifest(model_copy, calibration=data["calibration"] | {"uncertain_band": [0.0, 1.0]})
    verdict = OnnxClassifier(model_copy, threads=1).classify(foreign.duct(31))
    assert verdict.label == "uncertain"
    assert "inside the uncertain band [0.000, 1.000]" in verdict.reason


def test_calibrated_probability_is_the_tempered_softmax(shipped: OnnxClassifier) -> None:
    image = foreign.duct(31)
    manifest = shipped.manifest
    tensor = to_model_input(image, manifest.input_size, manifest.mean, manifest.std)
    logits, features = shipped.outputs(tensor)
    assert features is not None and features.shape == (1, manifest.ood.dims)  # type: ignore[union-attr]
    expected = softmax(logits, manifest.calibration.temperature)[0, 1]  # type: ignore[union-attr]
    assert shipped.classify(image).dirty_probability == pytest.approx(expected, rel=1e-6)


def test_old_style_manifest_decides_clean_or_dirty_on_the_raw_softmax(model_copy: Path) -> None:
    edit_manifest(model_copy, calibration=None, ood=None)
    classifier = OnnxClassifier(model_copy, threads=1)
    for image in (foreign.duct(31), foreign.checkerboard(40)):
        verdict = classifier.classify(image)
        assert verdict.label in LABELS and verdict.reason == ""
        m = classifier.manifest
        logits = classifier.run(to_model_input(image, m.input_size, m.mean, m.std))
        assert verdict.dirty_probability == pytest.approx(softmax(logits)[0, 1], rel=1e-5)


def strip_features_output(model: Path) -> None:
    """Make ``model`` an old-style one-output model, as exported before features existed."""
    import onnx

    proto = onnx.load(str(model))
    kept = [o for o in proto.graph.output if o.name != FEATURES_OUTPUT]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    onnx.save(proto, str(model))
    edit_manifest(model, sha256=sha256_file(model))


def test_one_output_model_still_works_without_calibration(model_copy: Path) -> None:
    strip_features_output(model_copy)
    with pytest.raises(ModelError, match="no 'features' output"):
        OnnxClassifier(model_copy, threads=1)
    edit_manifest(model_copy, ood=None)
    verdict = OnnxClassifier(model_copy, threads=1).classify(foreign.duct(31))
    assert verdict.label in (*LABELS, "uncertain")  # calibration still applies to the logits
    edit_manifest(model_copy, calibration=None)
    assert OnnxClassifier(model_copy, threads=1).classify(foreign.duct(31)).label in LABELS


def test_broken_ood_part_is_refused_naming_it(model_copy: Path) -> None:
    data = json.loads(manifest_path_for(model_copy).read_text())
    edit_manifest(model_copy, ood=data["ood"] | {"method": "astrology"})
    with pytest.raises(ModelError, match="ood: ValueError: unknown OOD method 'astrology'"):
        load_manifest(manifest_path_for(model_copy))
