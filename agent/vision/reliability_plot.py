"""A reliability diagram as a PNG, drawn with OpenCV (matplotlib is not a dependency).

Bars show the accuracy of each confidence bin, the diagonal is perfect calibration, the gap
between a bar's top and the diagonal is that bin's calibration error; the caption gives the ECE
and the image count. The model card shows the one for the shipped model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from agent.vision.calibration import ReliabilityBins

_WHITE = (255, 255, 255)
_GREY = (200, 200, 200)
_DARK = (40, 40, 40)
_BAR = (200, 120, 40)
_GAP = (60, 60, 220)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_reliability_diagram(
    diagrams: Sequence[tuple[str, ReliabilityBins]], *, size: int = 360
) -> np.ndarray:
    """One panel per ``(title, bins)`` side by side, as a BGR image."""
    margin_left, margin_bottom, margin_top, margin_right = 52, 46, 40, 16
    width = margin_left + size + margin_right
    height = margin_top + size + margin_bottom
    panels = [
        _panel(title, bins, size, (margin_left, margin_top, width, height))
        for title, bins in diagrams
    ]
    return np.concatenate(panels, axis=1) if panels else np.full((height, width, 3), 255, np.uint8)


def _panel(
    title: str, bins: ReliabilityBins, size: int, frame: tuple[int, int, int, int]
) -> np.ndarray:
    left, top, width, height = frame
    image = np.full((height, width, 3), 255, np.uint8)

    def point(x: float, y: float) -> tuple[int, int]:
        return left + round(x * size), top + size - round(y * size)

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        cv2.line(image, point(0, tick), point(1, tick), _GREY, 1)
        cv2.putText(image, f"{tick:.2f}", (4, point(0, tick)[1] + 4), _FONT, 0.35, _DARK, 1)
        cv2.putText(
            image, f"{tick:.2f}", (point(tick, 0)[0] - 12, top + size + 16), _FONT, 0.35, _DARK, 1
        )
    for low, high, accuracy, confidence, count in zip(
        bins.edges[:-1], bins.edges[1:], bins.accuracy, bins.confidence, bins.counts, strict=True
    ):
        if not count or math.isnan(accuracy):
            continue
        cv2.rectangle(image, point(low, accuracy), point(high, 0), _BAR, cv2.FILLED)
        cv2.rectangle(image, point(low, accuracy), point(high, 0), _WHITE, 1)
        cv2.line(
            image, point((low + high) / 2, accuracy), point((low + high) / 2, confidence), _GAP, 2
        )
    cv2.line(image, point(0, 0), point(1, 1), _DARK, 1, cv2.LINE_AA)
    cv2.rectangle(image, point(0, 1), point(1, 0), _DARK, 1)
    cv2.putText(image, title, (left, 16), _FONT, 0.45, _DARK, 1, cv2.LINE_AA)
    caption = f"ECE {bins.ece:.3f}, {sum(bins.counts)} images"
    cv2.putText(image, caption, (left, 32), _FONT, 0.4, _DARK, 1, cv2.LINE_AA)
    cv2.putText(
        image, "confidence", (left + size // 2 - 30, height - 8), _FONT, 0.4, _DARK, 1, cv2.LINE_AA
    )
    return image


def write_reliability_diagram(
    path: Path, diagrams: Sequence[tuple[str, ReliabilityBins]], *, size: int = 360
) -> Path:
    """Render and write the PNG; OSError when it cannot be written."""
    if not cv2.imwrite(str(path), render_reliability_diagram(diagrams, size=size)):
        raise OSError(f"cannot write {path}")
    return path
