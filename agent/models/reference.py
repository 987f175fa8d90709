"""Reference images: a model proves on the board that it behaves as it did where it was signed.

A release carries a few small JPEGs with the dirty probability the model gave each when the release
was signed. Before a board switches to a new model it runs them and compares: a model that loads
but computes something else here (a broken runtime build, an operator the board's ONNX Runtime
executes differently, a file damaged in a way the hash cannot see because it was signed so) is
refused while the old model still runs. The images ride inside the manifest, so the signature
covers them too. The same runs measure the latency against the board's budget.
"""

from __future__ import annotations

import base64
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.models import CheckFailed
from agent.vision import Classifier, Verdict

REFERENCE = "reference"
DEFAULT_TOLERANCE = 0.05
"""Absolute dirty-probability difference allowed: int8 kernels differ a little between CPUs."""
JPEG_QUALITY = 80


class ReferenceCheckError(CheckFailed):
    """The candidate model failed its reference images or its latency budget."""


@dataclass(frozen=True, slots=True)
class ReferenceReport:
    images: int
    max_difference: float
    median_latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "max_difference": round(self.max_difference, 4),
            "median_latency_ms": round(self.median_latency_ms, 1),
        }


def embed_image(path: Path, size: tuple[int, int]) -> bytes:
    """``path`` re-encoded as a JPEG at the model's input ``size`` (height, width): a few KB."""
    import cv2  # ~37 MB and 0.4 s: only when a manifest's reference images are made or checked

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ReferenceCheckError("reference images", f"{path} is not a readable image")
    resized = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ReferenceCheckError("reference images", f"{path} could not be encoded")
    return bytes(encoded.tobytes())


def reference_block(
    classifier: Classifier,
    images: Sequence[tuple[str, bytes]],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """The manifest's ``reference`` entry: each image with what ``classifier`` says of it."""
    entries = []
    for name, jpeg in images:
        p_dirty = _dirty_probability(name, classifier.classify(_decode(name, jpeg)))
        entries.append(
            {
                "name": name,
                "jpeg": base64.b64encode(jpeg).decode("ascii"),
                "dirty_probability": round(p_dirty, 6),
            }
        )
    return {"tolerance": tolerance, "images": entries}


def embedded_images(manifest: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The (name, JPEG bytes) pairs already in a manifest (to re-sign without the files)."""
    block = manifest.get(REFERENCE) or {}
    try:
        return [(str(e["name"]), base64.b64decode(e["jpeg"])) for e in block.get("images", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceCheckError("reference images", f"malformed reference entry: {exc}") from exc


def check_reference(
    classifier: Classifier, manifest: Mapping[str, Any], *, latency_budget_ms: float
) -> ReferenceReport:
    """Run the manifest's reference images; :class:`ReferenceCheckError` on the first mismatch.

    Without reference images the model still runs once on a grey frame, so that a model that
    loads but cannot infer, or is far too slow, is refused all the same.
    """
    block = manifest.get(REFERENCE) or {}
    tolerance = float(block.get("tolerance", DEFAULT_TOLERANCE))
    expected = {str(e.get("name")): e.get("dirty_probability") for e in block.get("images", [])}
    images = embedded_images(manifest) or [("grey frame", b"")]
    latencies: list[float] = []
    worst = 0.0
    for name, jpeg in images:
        image = _decode(name, jpeg) if jpeg else np.full((240, 320, 3), 128, np.uint8)
        try:
            verdict = classifier.classify(image)
        except Exception as exc:
            raise ReferenceCheckError(
                "reference images", f"{name}: the model failed ({type(exc).__name__}: {exc})"
            ) from exc
        latencies.append(verdict.latency_ms)
        p_dirty = _dirty_probability(name, verdict)
        want = expected.get(name)
        if want is None:
            continue
        difference = abs(p_dirty - float(want))
        worst = max(worst, difference)
        if difference > tolerance:
            raise ReferenceCheckError(
                "reference images",
                f"{name}: dirty probability {p_dirty:.3f}, expected"
                f" {float(want):.3f} ± {tolerance:g}",
            )
    median = statistics.median(latencies)
    if median > latency_budget_ms:
        raise ReferenceCheckError(
            "too slow", f"median inference {median:.0f} ms, the budget is {latency_budget_ms:g} ms"
        )
    return ReferenceReport(len(images), worst, median)


def _dirty_probability(name: str, verdict: Verdict) -> float:
    if verdict.dirty_probability is None:
        raise ReferenceCheckError(
            "reference images",
            f"{name}: no dirty probability ({verdict.label}: {verdict.reason or 'no reason'})",
        )
    return verdict.dirty_probability


def _decode(name: str, jpeg: bytes) -> Any:
    import cv2

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ReferenceCheckError("reference images", f"{name} is not a decodable JPEG")
    return image
