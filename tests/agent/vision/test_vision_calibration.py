"""Temperature scaling, ECE, the uncertain band and the OOD score (numpy only, synthetic data
whose right answers are known by construction)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision.calibration import (
    Calibration,
    CalibrationError,
    decode_array,
    encode_array,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    fit_uncertain_band,
    nll,
    reliability_bins,
    softmax,
    uncertainty_report,
)
from agent.vision.ood import (
    OOD_METHODS,
    OodDetector,
    fit_ood,
    fit_ood_statistics,
    signed_sqrt,
)
from agent.vision.reliability_plot import write_reliability_diagram


def overconfident_logits(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), logits reported as scale * z: the best temperature is scale."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0.0, 2.0, n)
    z = np.stack([-margin / 2, margin / 2], axis=1)
    labels = (rng.random(n) < softmax(z)[:, 1]).astype(np.int64)
    return z * scale, labels


def test_fit_temperature_recovers_the_overconfidence() -> None:
    logits, labels = overconfident_logits(20_000, 3.0)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    assert nll(logits, labels, temperature) < nll(logits, labels, 1.0)
    assert nll(logits, labels, temperature) <= nll(logits, labels, temperature * 1.05)
    assert nll(logits, labels, temperature) <= nll(logits, labels, temperature / 1.05)


def test_calibration_lowers_the_ece() -> None:
    logits, labels = overconfident_logits(5000, 4.0, seed=1)
    calibration = fit_calibration(logits, labels)
    assert calibration.ece_before > 0.05
    assert calibration.ece_after < calibration.ece_before / 3
    recomputed = expected_calibration_error(softmax(logits, calibration.temperature), labels)
    assert recomputed == pytest.approx(calibration.ece_after)


def test_ece_of_a_perfectly_calibrated_bin_is_zero_and_of_a_liar_is_its_gap() -> None:
    # 10 images at confidence 0.8 of which 8 are right: calibrated
    p = np.array([[0.2, 0.8]] * 10)
    labels = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(p, labels) == pytest.approx(0.0, abs=1e-12)
    # the same confidence, all wrong: the gap is 0.8
    assert expected_calibration_error(p, np.zeros(10, dtype=int)) == pytest.approx(0.8)


def test_reliability_bins_count_every_image_once() -> None:
    logits, labels = overconfident_logits(1000, 2.0, seed=2)
    bins = reliability_bins(softmax(logits), labels, bins=10)
    assert sum(bins.counts) == 1000
    assert len(bins.edges) == 11
    # two classes: the top-label confidence is never below 0.5
    assert all(n == 0 for n in bins.counts[:5])
    data = bins.to_dict()
    assert data["counts"] == list(bins.counts)
    assert data["accuracy"][0] is None
    json.dumps(data)


def test_band_flags_at_most_the_allowed_share_of_correct_verdicts() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(1000)
    labels = (rng.random(1000) < p).astype(np.int64)
    for budget in (0.0, 0.05, 0.1, 0.3):
        low, high = fit_uncertain_band(p, labels, max_correct_flagged=budget)
        assert low <= 0.5 <= high
        report = uncertainty_report(p, labels, band=(low, high))
        assert report["correct_flagged"] <= budget
        # widening the band a little would exceed the budget (the band is the widest allowed)
        wider = uncertainty_report(p, labels, band=(low - 0.002, high + 0.002))
        assert wider["correct_flagged"] > budget or (low, high) == (0.0, 1.0)


def test_band_catches_the_errors_near_the_threshold() -> None:
    logits, labels = overconfident_logits(4000, 1.0, seed=4)
    calibration = fit_calibration(logits, labels, max_correct_flagged=0.1)
    p = calibration.p_dirty(logits)
    report = uncertainty_report(p, labels, band=calibration.uncertain_band)
    # errors concentrate near 0.5, so a band flagging 10 % of the correct catches far more errors
    assert report["errors_flagged"] > 0.3
    assert report["accuracy_decided"] > report["accuracy"]


def test_calibration_round_trips_through_json() -> None:
    logits, labels = overconfident_logits(500, 2.0, seed=5)
    calibration = fit_calibration(logits, labels)
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again.temperature == pytest.approx(calibration.temperature, rel=1e-5)
    assert again.uncertain_band == calibration.uncertain_band
    assert again.in_band(0.5)


def test_calibration_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="temperature"):
        Calibration(temperature=0.0, uncertain_band=(0.4, 0.6), ece_before=0, ece_after=0, images=1)
    with pytest.raises(ValueError, match="uncertain_band"):
        Calibration(temperature=1.0, uncertain_band=(0.7, 0.6), ece_before=0, ece_after=0, images=1)
    with pytest.raises(CalibrationError):
        fit_temperature(np.zeros((3, 2)), [0, 1])
    with pytest.raises(CalibrationError):
        fit_temperature(np.zeros((2, 2)), [0, 2])


def test_arrays_round_trip_exactly_as_float32() -> None:
    array = np.random.default_rng(6).normal(size=(3, 5))
    encoded = json.loads(json.dumps(encode_array(array)))
    decoded = decode_array(encoded)
    assert decoded.shape == (3, 5)
    assert np.array_equal(decoded, array.astype(np.float32).astype(np.float64))
    with pytest.raises(ValueError, match="needs 16 values"):
        decode_array(encoded | {"shape": [4, 4]})


def feature_clusters(
    n: int, dims: int, seed: int, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of features in a low-rank subspace plus small noise; ``shift`` moves every
    image off that subspace (what an unseen kind of image does to the backbone's features)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(4, dims))
    labels = rng.integers(0, 2, n)
    latent = rng.normal(size=(n, 4)) + labels[:, None] * 3.0
    features = latent @ basis + rng.normal(0.0, 0.1, (n, dims))
    if shift:
        features += shift * np.random.default_rng(7).normal(size=dims)
    return features, labels


def test_ood_threshold_keeps_the_quantile_of_in_distribution_images() -> None:
    train, train_labels = feature_clusters(600, 64, seed=10)
    val, _ = feature_clusters(400, 64, seed=11)
    # Gaussian clusters: the plain distance is the model they fit (the square root is for
    # pooled ReLU features, tested on the shipped model in test_vision_outcomes.py)
    detector = fit_ood(train, train_labels, val, dims=8, quantile=0.95, method="ppca-mahalanobis")
    fresh, _ = feature_clusters(2000, 64, seed=12)
    flagged = detector.is_out(fresh).mean()
    assert 0.02 < flagged < 0.09
    shifted, _ = feature_clusters(500, 64, seed=13, shift=0.5)
    assert detector.is_out(shifted).mean() > 0.95


def test_ood_detector_round_trips_and_scores_identically() -> None:
    train, labels = feature_clusters(300, 32, seed=20)
    detector = fit_ood(train, labels, train, dims=6)
    again = OodDetector.from_dict(json.loads(json.dumps(detector.to_dict())))
    probe, _ = feature_clusters(50, 32, seed=21, shift=0.2)
    assert np.allclose(again.score(probe), detector.score(probe), rtol=1e-4)
    assert again.threshold == pytest.approx(detector.threshold, rel=1e-6)
    with pytest.raises(ValueError, match="expects 32"):
        again.score(np.zeros((1, 31)))
    broken = detector.to_dict() | {"eigenvalues": encode_array(np.ones(3))}
    with pytest.raises(ValueError, match="do not fit"):
        OodDetector.from_dict(broken)


def test_sqrt_method_is_the_plain_distance_on_square_rooted_features() -> None:
    train, labels = feature_clusters(300, 32, seed=22)
    probe, _ = feature_clusters(40, 32, seed=23, shift=0.3)
    rooted = fit_ood_statistics(train, labels, dims=6, method="ppca-mahalanobis-sqrt")
    plain = fit_ood_statistics(signed_sqrt(train), labels, dims=6, method="ppca-mahalanobis")
    assert np.allclose(rooted.score(probe), plain.score(signed_sqrt(probe)))
    assert not np.allclose(rooted.score(probe), plain.score(probe))
    assert signed_sqrt(np.array([-4.0, 0.0, 9.0])).tolist() == [-2.0, 0.0, 3.0]


def test_manifest_ood_method_is_kept_and_an_unknown_one_refused_by_name() -> None:
    train, labels = feature_clusters(200, 16, seed=24)
    for method in OOD_METHODS:
        detector = fit_ood(train, labels, train, dims=4, method=method)
        again = OodDetector.from_dict(json.loads(json.dumps(detector.to_dict())))
        assert again.method == method
        assert np.allclose(again.score(train[:5]), detector.score(train[:5]), rtol=1e-4)
    future = detector.to_dict() | {"method": "ppca-mahalanobis-cuberoot"}
    with pytest.raises(ValueError, match=r"unknown OOD method 'ppca-mahalanobis-cuberoot'.*update"):
        OodDetector.from_dict(future)


def test_ood_needs_both_classes() -> None:
    with pytest.raises(CalibrationError, match="both classes"):
        fit_ood(np.ones((5, 4)), np.zeros(5), np.ones((5, 4)))


def test_uncertainty_report_counts_ood_flags_separately() -> None:
    p = np.array([0.9, 0.1, 0.55, 0.2])
    labels = np.array([1, 1, 0, 0])
    report = uncertainty_report(
        p, labels, band=(0.4, 0.6), out_of_distribution=[False, True, False, False]
    )
    assert report["errors"] == 2
    assert report["errors_flagged"] == 1.0
    assert report["correct_flagged"] == 0.0
    assert report["flagged_by_band"] == 1
    assert report["flagged_by_ood"] == 1
    assert report["accuracy_decided"] == 1.0


def test_reliability_diagram_png(tmp_path: Path) -> None:
    logits, labels = overconfident_logits(800, 3.0, seed=8)
    calibration = fit_calibration(logits, labels)
    path = write_reliability_diagram(
        tmp_path / "reliability.png",
        [
            ("before", reliability_bins(softmax(logits), labels)),
            ("after", reliability_bins(softmax(logits, calibration.temperature), labels)),
        ],
    )
    image = cv2.imread(str(path))
    assert image is not None
    assert image.shape[1] > 2 * image.shape[0] * 0.9  # two panels side by side
    assert not math.isclose(float(image.std()), 0.0)
