"""Foreign pictures: does the model still say "uncertain" to what is not a duct at all?

The out-of-distribution score (:mod:`agent.vision.ood`) is the net for pictures no camera in a
duct should send: a test card held up to the lens, a label, a colour-broken frame. This tool
draws a fixed, seeded set of such pictures and runs each through the board's own path (the
image-quality gate, then the classifier with its manifest), so a retrained or recalibrated model
can be checked for the net before it ships. Per picture: the outcome, the OOD score's ratio to
the manifest's threshold and the calibrated p(dirty). The model looks at a picture the gate stops
too (the board would not ask it), so the table shows what it would have said.

Three groups: ``pattern`` (checkerboards, stripes, printed text, coloured blobs, a plant-room
scene of rectangles, a colour gradient, uniform noise), ``recoloured`` (rendered ducts with the
hue turned, inverted, or under a green cast: a duct, but in colours no duct has) and ``duct``
(the same rendered ducts untouched: the control, which should be decided).

``python -m models.foreign models/visual_clean_resnet18_int8.onnx [--json]``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from agent.vision import UNCERTAIN, UNUSABLE
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.quality import assess
from models.cli import run
from models.dataset import FRESH_SEED_BASE, render_sample

HEIGHT, WIDTH = 480, 640
DUCT_SEEDS = (31, 40, 55, 71)
"""Offsets from :data:`models.dataset.FRESH_SEED_BASE`: scenes no split of a default set holds."""

BgrImage = np.ndarray


def checkerboard(period: int, low: int = 30, high: int = 230) -> BgrImage:
    squares = (np.indices((HEIGHT, WIDTH)).sum(axis=0) // period) % 2
    return grey_to_bgr((squares * (high - low) + low).astype(np.uint8))


def stripes(period: int = 20) -> BgrImage:
    row = ((np.arange(WIDTH) // period) % 2 * 200 + 20).astype(np.uint8)
    return grey_to_bgr(np.repeat(row[None, :], HEIGHT, axis=0))


def printed_text() -> BgrImage:
    page = np.full((HEIGHT, WIDTH, 3), 235, np.uint8)
    for line in range(20):
        cv2.putText(
            page, "REMOTAIR duct hygiene " * 2, (5, 20 + 23 * line),
            cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1,
        )  # fmt: skip
    return page


def blobs(seed: int) -> BgrImage:
    rng = np.random.default_rng(seed)
    image = np.full((HEIGHT, WIDTH, 3), _colour(rng), np.uint8)
    for _ in range(60):
        centre = (int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)))
        cv2.circle(image, centre, int(rng.integers(5, 60)), _colour(rng), -1)
    return image


def plant_room(seed: int = 0) -> BgrImage:
    rng = np.random.default_rng(seed)
    image = np.full((HEIGHT, WIDTH, 3), (180, 175, 170), np.uint8)
    for _ in range(25):
        x, y = int(rng.integers(0, WIDTH - 40)), int(rng.integers(0, HEIGHT - 40))
        corner = (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200)))
        cv2.rectangle(image, (x, y), corner, _colour(rng), -1)
    return image


def colour_gradient() -> BgrImage:
    ramp = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))
    return np.dstack([ramp, ramp[:, ::-1], np.full((HEIGHT, WIDTH), 128, np.uint8)])


def noise(seed: int) -> BgrImage:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def duct(offset: int) -> BgrImage:
    return render_sample(FRESH_SEED_BASE + offset, width=WIDTH, height=HEIGHT)[2]


def hue_turned(image: BgrImage) -> BgrImage:
    """Hue turned by 120 degrees and saturation raised: a duct in colours no duct has."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    return cv2.cvtColor(hsv + np.array([60, 120, 0], np.uint8), cv2.COLOR_HSV2BGR)


def inverted(image: BgrImage) -> BgrImage:
    return 255 - image


def green_cast(image: BgrImage) -> BgrImage:
    return np.dstack([image[..., 0] // 3, image[..., 1], image[..., 2] // 3]).astype(np.uint8)


def grey_to_bgr(grey: np.ndarray) -> BgrImage:
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in rng.integers(0, 255, 3))
    return (b, g, r)


def pictures() -> dict[str, tuple[str, Callable[[], BgrImage]]]:
    """Name -> (group, drawing function) of every picture, in a fixed order."""
    table: dict[str, tuple[str, Callable[[], BgrImage]]] = {}
    for period in (15, 40, 80):
        table[f"checkerboard-{period}px"] = ("pattern", partial(checkerboard, period))
    table["stripes-20px"] = ("pattern", stripes)
    table["printed-text"] = ("pattern", printed_text)
    table["colour-gradient"] = ("pattern", colour_gradient)
    table["plant-room"] = ("pattern", plant_room)
    for seed in range(3):
        table[f"blobs-{seed}"] = ("pattern", partial(blobs, seed))
        table[f"noise-{seed}"] = ("pattern", partial(noise, seed))
    for offset in DUCT_SEEDS:
        for name, change in (
            ("hue-turned", hue_turned),
            ("inverted", inverted),
            ("green-cast", green_cast),
        ):
            table[f"{name}-duct+{offset}"] = ("recoloured", partial(_changed_duct, change, offset))
    for offset in DUCT_SEEDS:
        table[f"duct+{offset}"] = ("duct", partial(duct, offset))
    return table


def _changed_duct(change: Callable[[BgrImage], BgrImage], offset: int) -> BgrImage:
    return change(duct(offset))


@dataclass(frozen=True, slots=True)
class ForeignResult:
    """What the board would make of one picture."""

    name: str
    group: str
    outcome: str
    """``unusable`` (quality gate), ``uncertain``, ``clean`` or ``dirty``."""
    out_of_distribution: bool
    ood_ratio: float | None
    """OOD score over the manifest's threshold (None for a model without an OOD score)."""
    p_dirty: float | None
    reason: str


def check(classifier: OnnxClassifier, names: Sequence[str] | None = None) -> list[ForeignResult]:
    """Every picture (or those named) through the quality gate and the classifier."""
    table = pictures()
    ood = classifier.manifest.ood
    results = []
    for name in names or list(table):
        group, draw = table[name]
        image = draw()
        quality = assess(image)
        verdict = classifier.classify(image)
        score = verdict.extra.get("ood_score")
        ratio = float(score) / ood.threshold if ood is not None and score is not None else None
        results.append(
            ForeignResult(
                name=name,
                group=group,
                outcome=verdict.label if quality.usable else UNUSABLE,
                out_of_distribution=ratio is not None and ratio > 1.0,
                ood_ratio=None if ratio is None else round(ratio, 3),
                p_dirty=verdict.dirty_probability,
                reason=quality.problem or verdict.reason,
            )
        )
    return results


def summary(results: Sequence[ForeignResult]) -> dict[str, dict[str, int]]:
    """Per group: pictures, how many the board would not decide, how many flagged OOD."""
    groups: dict[str, dict[str, int]] = {}
    for r in results:
        g = groups.setdefault(r.group, {"pictures": 0, "not_decided": 0, "out_of_distribution": 0})
        g["pictures"] += 1
        g["not_decided"] += r.outcome in (UNCERTAIN, UNUSABLE)
        g["out_of_distribution"] += r.out_of_distribution
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.foreign", description=__doc__)
    parser.add_argument("model", type=Path, help="an ONNX model with its manifest beside it")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    args = parser.parse_args(argv)

    def go() -> int:
        classifier = OnnxClassifier(args.model, threads=2)
        try:
            results = check(classifier)
        finally:
            classifier.close()
        if args.json:
            document = {"results": [asdict(r) for r in results], "summary": summary(results)}
            print(json.dumps(document, indent=2))
            return 0
        print(f"{'picture':28s} {'group':11s} {'outcome':10s} {'ood/thr':>7s} {'p(dirty)':>8s}")
        for r in results:
            ratio = "-" if r.ood_ratio is None else f"{r.ood_ratio:.2f}"
            p = "-" if r.p_dirty is None else f"{r.p_dirty:.3f}"
            print(f"{r.name:28s} {r.group:11s} {r.outcome:10s} {ratio:>7s} {p:>8s}")
        for group, counts in summary(results).items():
            print(
                f"{group}: {counts['not_decided']} of {counts['pictures']} not decided,"
                f" {counts['out_of_distribution']} out of distribution"
            )
        return 0

    return run(go, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())
