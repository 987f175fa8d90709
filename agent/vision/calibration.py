"""Confidence that means something: temperature scaling, an uncertain band, an OOD score.

numpy only, so that the training pipeline (``models/``) fills a manifest with these functions and
the board refits them (``remotair model adapt``) without torch.

A model that knows when it is unsure has two ONNX outputs, ``logits`` [N, 2] (clean, dirty) and
``features`` [N, D] (the penultimate activations after global average pooling), and a manifest
with these optional fields (a manifest without them is an old-style model: the agent decides
clean/dirty on the raw softmax and ``decision_threshold`` as before):

``"calibration"`` (:class:`Calibration`, fitted on the validation split)::

    {"temperature": 1.83,              # p = softmax(logits / temperature)
     "uncertain_band": [0.2, 0.8],     # calibrated p(dirty) inside it -> verdict "uncertain"
     "ece_before": 0.041, "ece_after": 0.012,   # expected calibration error, 15 equal bins
     "bins": 15, "images": 400, "split": "val"}

``"ood"`` (:class:`agent.vision.ood.OodDetector`): a class-conditional Mahalanobis distance on
the signed square root of ``features`` with a covariance shared by the classes and approximated by
probabilistic PCA (its top ``k`` directions, an isotropic noise variance for the rest), so it stays
a few tens of kB in the manifest. A score above ``threshold`` (the ``quantile`` of the scores on
in-distribution validation images) makes the verdict "uncertain" (out of distribution)::

    {"method": "ppca-mahalanobis-sqrt", "threshold": 812.4, "quantile": 0.99, "images": 800,
     "noise_variance": 0.0031,
     "class_means": ARRAY, "components": ARRAY, "eigenvalues": ARRAY}

Arrays are :func:`encode_array` objects ``{"dtype": "<f4", "shape": [...], "base64": "..."}``:
compact, exact, and still plain JSON that the manifest's signature covers.

An error caught by the uncertain band or the OOD score is a verdict that goes to Rekognition in
cascade mode instead of raising a wrong alarm; :func:`uncertainty_report` measures the two rates
that matter (share of the errors flagged, share of the correct verdicts flagged).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

LOGITS_OUTPUT = "logits"
FEATURES_OUTPUT = "features"
DIRTY_INDEX = 1
DEFAULT_BINS = 15
OOD_METHOD = "ppca-mahalanobis-sqrt"
"""The OOD method new fits use (feature maps: :data:`agent.vision.ood.OOD_METHODS`)."""
DEFAULT_OOD_DIMS = 16
DEFAULT_OOD_QUANTILE = 0.99
"""Where the OOD threshold sits among the validation images' scores. The OOD score is a net for
foreign pictures, not for the model's errors: on versions 5 and 6 the images between its 95th and
99th percentile held no error the band had not already flagged. On the square-rooted features the
99th percentile still leaves checkerboards, stripes and printed text several times above it, so
almost all of the 10 % budget goes to the band. Model card, Outcomes."""
DEFAULT_CORRECT_FLAGGED = 0.08
"""Share of correct validation verdicts the uncertain band may flag; the OOD threshold at the
99th percentile takes about 1 % more, which keeps the total under the 10 % target with room for a
harder field set (version 6 flagged 10.0 % of the right verdicts of the family sets, 8.0 % of
validation's)."""

_T_RANGE = (0.05, 50.0)


class CalibrationError(ValueError):
    """Inputs that cannot be calibrated (empty, one class only, mismatched lengths)."""


# --- arrays in JSON ------------------------------------------------------------------------------


def encode_array(array: npt.ArrayLike) -> dict[str, Any]:
    """A float array as JSON: little-endian float32 bytes in base64, with the shape."""
    data = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    return {
        "dtype": "<f4",
        "shape": list(data.shape),
        "base64": base64.b64encode(data.tobytes()).decode("ascii"),
    }


def decode_array(value: Mapping[str, Any]) -> Floats:
    """Inverse of :func:`encode_array`; ValueError on a malformed object."""
    if value.get("dtype") != "<f4":
        raise ValueError(f"array dtype must be '<f4', got {value.get('dtype')!r}")
    shape = tuple(int(v) for v in value["shape"])
    raw = base64.b64decode(str(value["base64"]), validate=True)
    flat = np.frombuffer(raw, dtype="<f4")
    if flat.size != math.prod(shape):
        raise ValueError(f"array of shape {list(shape)} needs {math.prod(shape)} values")
    return flat.reshape(shape).astype(np.float64)


# --- probabilities -------------------------------------------------------------------------------


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> Floats:
    """Row-wise softmax of ``logits / temperature`` (numerically stable)."""
    z = np.atleast_2d(np.asarray(logits, dtype=np.float64)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    result: Floats = e / e.sum(axis=1, keepdims=True)
    return result


def _check(logits: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[Floats, Ints]:
    x = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise CalibrationError(f"need as many labels as logit rows, got {y.shape[0]} and {len(x)}")
    if not np.all(np.isfinite(x)):
        raise CalibrationError("logits must be finite")
    if y.min() < 0 or y.max() >= x.shape[1]:
        raise CalibrationError(f"labels must be class indices 0..{x.shape[1] - 1}")
    return x, y


def nll(logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under ``softmax(logits / temperature)``."""
    x, y = _check(logits, labels)
    z = x / temperature
    m = z.max(axis=1, keepdims=True)
    log_norm = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The temperature minimising the validation NLL (Guo et al. 2017), by golden-section search.

    NLL is unimodal in log T for fixed logits, so a bracketing search on ``[0.05, 50]`` finds it
    without gradients; 60 steps shrink the bracket below 1e-9 relative.
    """
    x, y = _check(logits, labels)
    lo, hi = math.log(_T_RANGE[0]), math.log(_T_RANGE[1])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(x, y, math.exp(a)), nll(x, y, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(x, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(x, y, math.exp(b))
    return float(math.exp((lo + hi) / 2.0))


# --- calibration error ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReliabilityBins:
    """Top-label confidence histogram: the data of a reliability diagram and of the ECE."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    confidence: tuple[float, ...]
    """Mean confidence of the images in each bin (NaN for an empty bin)."""
    accuracy: tuple[float, ...]
    """Share of correct verdicts in each bin (NaN for an empty bin)."""

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence|."""
        total = sum(self.counts)
        return float(
            sum(
                n * abs(a - c)
                for n, a, c in zip(self.counts, self.accuracy, self.confidence, strict=True)
                if n
            )
            / total
        )

    def to_dict(self) -> dict[str, Any]:
        def clean(values: tuple[float, ...]) -> list[float | None]:
            return [None if math.isnan(v) else round(v, 4) for v in values]

        return {
            "edges": [round(e, 4) for e in self.edges],
            "counts": list(self.counts),
            "confidence": clean(self.confidence),
            "accuracy": clean(self.accuracy),
            "ece": round(self.ece, 4),
        }


def reliability_bins(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, bins: int = DEFAULT_BINS
) -> ReliabilityBins:
    """Bin the images by the confidence of their predicted class (probability rows [N, C])."""
    p = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if p.shape[0] != y.shape[0] or p.shape[0] == 0:
        raise CalibrationError(f"need as many labels as rows, got {y.shape[0]} and {len(p)}")
    predicted = p.argmax(axis=1)
    confidence = p.max(axis=1)
    correct = (predicted == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    counts, conf, acc = [], [], []
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        counts.append(n)
        conf.append(float(confidence[members].mean()) if n else math.nan)
        acc.append(float(correct[members].mean()) if n else math.nan)
    return ReliabilityBins(tuple(float(e) for e in edges), tuple(counts), tuple(conf), tuple(acc))


def expected_calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, bins: int = DEFAULT_BINS
) -> float:
    return reliability_bins(probabilities, labels, bins=bins).ece


# --- the uncertain band --------------------------------------------------------------------------


def fit_uncertain_band(
    p_dirty: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    max_correct_flagged: float = DEFAULT_CORRECT_FLAGGED,
) -> tuple[float, float]:
    """The widest band ``[threshold - w, threshold + w]`` flagging at most that share of correct
    verdicts on these (validation) images; calibrated ``p_dirty`` and true labels (1 = dirty)."""
    p = np.asarray(p_dirty, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise CalibrationError("need one label per probability")
    correct = (p >= threshold).astype(np.int64) == y
    distance = np.sort(np.abs(p[correct] - threshold))
    allowed = math.floor(max_correct_flagged * distance.size)
    limit = min(threshold, 1.0 - threshold)
    # |p - t| <= w flags exactly the correct verdicts closer than distance[allowed]
    width = limit if allowed >= distance.size else float(np.nextafter(distance[allowed], 0.0))
    width = math.floor(min(width, limit) * 1e6) / 1e6
    return (round(threshold - width, 6), round(threshold + width, 6))


@dataclass(frozen=True, slots=True)
class Calibration:
    """Temperature and uncertain band of one model (the manifest's ``calibration``)."""

    temperature: float
    uncertain_band: tuple[float, float]
    ece_before: float
    ece_after: float
    images: int
    bins: int = DEFAULT_BINS
    split: str = "val"

    def __post_init__(self) -> None:
        low, high = self.uncertain_band
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"uncertain_band must satisfy 0 <= low <= high <= 1, got {low}, {high}"
            )

    def p_dirty(self, logits: npt.ArrayLike) -> Floats:
        """Calibrated p(dirty) of each logit row."""
        result: Floats = softmax(logits, self.temperature)[:, DIRTY_INDEX]
        return result

    def in_band(self, p_dirty: float) -> bool:
        return self.uncertain_band[0] <= p_dirty <= self.uncertain_band[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": round(self.temperature, 6),
            "uncertain_band": [round(v, 6) for v in self.uncertain_band],
            "ece_before": round(self.ece_before, 5),
            "ece_after": round(self.ece_after, 5),
            "bins": self.bins,
            "images": self.images,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        band = [float(v) for v in data["uncertain_band"]]
        if len(band) != 2:
            raise ValueError("uncertain_band needs two values")
        return cls(
            temperature=float(data["temperature"]),
            uncertain_band=(band[0], band[1]),
            ece_before=float(data.get("ece_before", math.nan)),
            ece_after=float(data.get("ece_after", math.nan)),
            images=int(data.get("images", 0)),
            bins=int(data.get("bins", DEFAULT_BINS)),
            split=str(data.get("split", "val")),
        )


def fit_calibration(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    max_correct_flagged: float = DEFAULT_CORRECT_FLAGGED,
    bins: int = DEFAULT_BINS,
    split: str = "val",
) -> Calibration:
    """Temperature, band and ECE before/after from validation logits [N, 2] and labels."""
    x, y = _check(logits, labels)
    temperature = fit_temperature(x, y)
    calibrated = softmax(x, temperature)
    band = fit_uncertain_band(
        calibrated[:, DIRTY_INDEX], y, threshold=threshold, max_correct_flagged=max_correct_flagged
    )
    return Calibration(
        temperature=temperature,
        uncertain_band=band,
        ece_before=expected_calibration_error(softmax(x), y, bins=bins),
        ece_after=expected_calibration_error(calibrated, y, bins=bins),
        images=int(y.size),
        bins=bins,
        split=split,
    )


# --- measuring ------------------------------------------------------------------------------------


def uncertainty_report(
    p_dirty: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    band: tuple[float, float],
    out_of_distribution: npt.ArrayLike | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """How well "uncertain" separates errors from correct verdicts on labelled images.

    ``errors_flagged`` is the share of wrong clean/dirty decisions turned uncertain (target >= 0.6),
    ``correct_flagged`` the share of right ones (target <= 0.1); ``accuracy_decided`` the accuracy
    on the images left clean/dirty.
    """
    p = np.asarray(p_dirty, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    in_band = (p >= band[0]) & (p <= band[1])
    ood = (
        np.zeros_like(in_band)
        if out_of_distribution is None
        else np.asarray(out_of_distribution, dtype=bool).reshape(-1)
    )
    flagged = in_band | ood
    correct = (p >= threshold).astype(np.int64) == y
    errors = ~correct
    decided = ~flagged

    def share(mask: npt.NDArray[np.bool_], of: npt.NDArray[np.bool_]) -> float | None:
        n = int(of.sum())
        return round(float((mask & of).sum()) / n, 4) if n else None

    return {
        "images": int(y.size),
        "errors": int(errors.sum()),
        "errors_flagged": share(flagged, errors),
        "correct_flagged": share(flagged, correct),
        "flagged_by_band": int(in_band.sum()),
        "flagged_by_ood": int((ood & ~in_band).sum()),
        "accuracy": round(float(correct.mean()), 4) if y.size else None,
        "accuracy_decided": share(correct, decided),
        "decided": int(decided.sum()),
    }
