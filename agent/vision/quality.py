"""The image-quality gate: a picture no one could judge gets ``unusable``, never clean or dirty.

A model asked about a black, blown-out, blurred or fogged picture, or a frame of pixel noise from a
failing sensor, still answers, and confidently (its training never showed it one: version 7 calls
uniform noise dirty at p 0.95-0.99), so a lens covered in dust or a loose camera cable could raise
or clear a dirty-duct alarm. The gate runs before any backend (also before Rekognition, which would
bill for the same non-answer) and names what is wrong, so the technician knows to clean the lens or
fix the light.

Every measure is taken on a grey copy scaled to :data:`GATE_WIDTH` pixels wide, so the thresholds do
not depend on the camera's resolution. The checks, in order (the first that fails is the reason):

==================  =====================================================================
too dark            mean brightness < ``dark_mean`` and 95th percentile < ``dark_p95``
over-exposed        share of pixels at >= 250 above ``clipped_share``, or mean > ``bright_mean``
pixel noise         coherence (the lower of the correlations between horizontally and between
                    vertically neighbouring pixels) < ``min_coherence``
lens covered/fogged contrast (grey standard deviation) < ``min_contrast``, or texture (mean
                    gradient magnitude, grey levels per pixel) < ``min_texture``
out of focus        variance of the Laplacian < ``min_sharpness``
==================  =====================================================================

The defaults sit about halfway (on a log scale) between the renderer's whole nuisance range and the
same images degraded: on 600 renders (blur nuisance included) the minima were contrast 22, texture
1.2, Laplacian variance 7.6; blurred with sigma 3 px the Laplacian variance stays below 2.4, fogged
(15 % of the image over grey) the contrast below 12.1, covered (heavily blurred and dimmed) the
texture below 0.36. Coherence: 0.945 at the least on 600 renders (seeds ``FRESH_SEED_BASE + 5000``
on), 0.67 with Gaussian grain of sd 80 grey levels over a render, 0.38 for a page of small print
(fine detail decorrelates neighbours too; the OOD score deals with it), 0.08-0.36 when 80 % of every
pixel is uniform noise, 0.02-0.10 at 90 %, 0.00 for pure noise: ``min_coherence`` 0.2 catches a
frame that is mostly noise and leaves the page of print to the model. A fogged or covered lens also
blurs, which is why contrast and texture are checked before focus: a picture with its contrast
intact but no fine detail is out of focus, one without contrast is behind something.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from agent.vision import UNUSABLE, BgrImage, Classifier, Verdict
from agent.vision.preprocess import load_image

GATE_WIDTH = 320
"""Width of the grey copy every measure is taken on."""
GATE_MIN_SHORT_SIDE = 240
"""Smallest short side a JPEG is decoded at for the gate (libjpeg reduced-scale decode)."""
BACKEND = "quality-gate"


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Where a picture stops being usable (brightness on 0..255)."""

    dark_mean: float = 28.0
    dark_p95: float = 70.0
    bright_mean: float = 235.0
    clipped_share: float = 0.4
    min_contrast: float = 15.0
    min_texture: float = 0.5
    min_sharpness: float = 4.0
    min_coherence: float = 0.2


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The measures of one picture and, when it is unusable, why."""

    mean: float
    p95: float
    clipped: float
    contrast: float
    texture: float
    sharpness: float
    coherence: float
    problem: str | None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": round(self.mean, 1),
            "p95": round(self.p95, 1),
            "clipped": round(self.clipped, 4),
            "contrast": round(self.contrast, 2),
            "texture": round(self.texture, 2),
            "sharpness": round(self.sharpness, 2),
            "coherence": round(self.coherence, 3),
        }


def _grey(image: BgrImage) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    height, width = grey.shape[:2]
    if width != GATE_WIDTH:
        size = (GATE_WIDTH, max(1, round(height * GATE_WIDTH / width)))
        interpolation = cv2.INTER_AREA if width > GATE_WIDTH else cv2.INTER_LINEAR
        grey = cv2.resize(grey, size, interpolation=interpolation)
    return cast(np.ndarray, grey)


def coherence(grey: np.ndarray) -> float:
    """The lower of the correlations of horizontally and of vertically neighbouring pixels.

    Near 1 for any picture of a scene (neighbours see nearly the same surface), near 0 for a frame
    of independent pixel noise; 1 for a flat picture, which the contrast check rejects. Both
    members of a pair are centred on the picture's mean (not each on its own): the same to 1e-4
    on a 320-px copy, and a sixth of the time.
    """
    values = grey.astype(np.float32)
    values -= values.mean()
    result = 1.0
    for a, b in ((values[:, :-1], values[:, 1:]), (values[:-1, :], values[1:, :])):
        x, y = a.ravel(), b.ravel()
        spread = math.sqrt(float(x @ x) * float(y @ y))
        if spread > 0:
            result = min(result, float(x @ y) / spread)
    return result


def assess(image: BgrImage, limits: QualityLimits | None = None) -> QualityReport:
    """Measure ``image`` (BGR or grey uint8) and decide whether it is usable."""
    limits = limits or QualityLimits()
    grey = _grey(image)
    values = grey.astype(np.float32)
    mean = float(values.mean())
    p95 = float(np.percentile(values, 95))
    clipped = float((grey >= 250).mean())
    contrast = float(values.std())
    gx = cv2.Sobel(values, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(values, cv2.CV_32F, 0, 1, ksize=3)
    texture = float(np.mean(np.sqrt(gx * gx + gy * gy))) / 8.0  # Sobel gain 8: grey levels/pixel
    sharpness = float(cv2.Laplacian(values, cv2.CV_32F, ksize=1).var())
    neighbours = coherence(grey)
    problem: str | None = None
    if mean < limits.dark_mean and p95 < limits.dark_p95:
        problem = f"too dark (mean brightness {mean:.0f}, 95th percentile {p95:.0f} of 255)"
    elif clipped > limits.clipped_share or mean > limits.bright_mean:
        problem = f"over-exposed ({clipped:.0%} of pixels clipped, mean brightness {mean:.0f})"
    elif neighbours < limits.min_coherence:
        problem = (
            f"pixel noise, no picture (neighbouring pixels correlate {neighbours:.2f}"
            f" < {limits.min_coherence:g}): check the camera cable and sensor"
        )
    elif contrast < limits.min_contrast or texture < limits.min_texture:
        problem = (
            f"lens covered or fogged (contrast {contrast:.1f} < {limits.min_contrast:g}"
            f" or texture {texture:.2f} < {limits.min_texture:g})"
        )
    elif sharpness < limits.min_sharpness:
        problem = f"out of focus (Laplacian variance {sharpness:.1f} < {limits.min_sharpness:g})"
    return QualityReport(mean, p95, clipped, contrast, texture, sharpness, neighbours, problem)


class QualityGatedClassifier:
    """Any :class:`~agent.vision.Classifier` behind the gate: unusable pictures never reach it."""

    def __init__(self, inner: Classifier, limits: QualityLimits | None = None) -> None:
        self.inner = inner
        self.limits = limits or QualityLimits()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model_id(self) -> str | None:
        """The wrapped backend's model, if it has one (a cascade has two and names neither)."""
        value = getattr(self.inner, "model_id", None)
        return None if value is None else str(value)

    def classify(self, image: BgrImage) -> Verdict:
        started = time.perf_counter()
        report = assess(image, self.limits)
        if report.usable:
            return self.inner.classify(image)
        return self._unusable(report, started)

    def classify_file(self, path: Path) -> Verdict:
        started = time.perf_counter()
        report = assess(load_image(path, min_short_side=GATE_MIN_SHORT_SIDE), self.limits)
        if report.usable:
            return self.inner.classify_file(path)
        return self._unusable(report, started)

    def _unusable(self, report: QualityReport, started: float) -> Verdict:
        return Verdict(
            label=UNUSABLE,
            confidence=1.0,
            backend=self.inner.name,
            model_id=self.model_id or self.inner.name,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            dirty_probability=None,
            decided_by=BACKEND,
            reason=report.problem or "",
            extra={"quality": report.to_dict()},
        )

    def close(self) -> None:
        self.inner.close()
