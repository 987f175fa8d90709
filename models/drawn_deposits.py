"""Drawn deposits: does the model see dirt that neither the renderer nor the trainer draws?

Issue 9's first measurement was an independently written renderer whose dirty ducts (specks,
blotches, fibres on the wall) the shipped model called clean, with confidence. No such set is
public, so this tool makes a small stand-in that shares no code with what the model was trained
on: clean ducts from the randomised renderer, each shown twice, once as it is and once with
deposits of one kind drawn by plain OpenCV primitives (:func:`draw_deposits`; the kinds in
turn): specks (small dots in a cluster), blotches (filled ellipses and polygons, partly
transparent) and fibres (random-walk strokes). The renderer's deposit families draw none of
these, and the training-time painter (:mod:`models.synthetic_dirt`) cuts smooth random fields,
not primitives. Each drawn duct changes at least 1.5 % of its pixels, more than the data set
generator's 1 % rule for a dirty duct.

Pairs keep the comparison fair: the clean half says what the model makes of the wall, the
drawn half whether a deposit on that same wall turns the verdict. The report gives accuracy
on each half and the uncertain verdict's rates, through the runtime with the model's manifest.

``python -m models.drawn_deposits models/visual_clean_resnet18_int8.onnx [--ducts 200] [--json]``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.vision import CLEAN, DIRTY, LABELS, ModelError
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.preprocess import to_model_input
from models.calibrate import manifest_verdicts
from models.cli import run

SEED_BASE = 3_000_000
"""Scene seeds of the clean ducts: far from every split, held-out and foreign set."""
WIDTH, HEIGHT = 320, 240
MIN_CHANGED = 0.015
"""Share of pixels the drawn deposits change, at least."""
KINDS = ("specks", "blotches", "fibres")

BgrImage = np.ndarray


def _ink(wall: BgrImage, rng: np.random.Generator) -> tuple[int, int, int]:
    """A deposit colour: mostly darker or lighter greys and browns, sometimes any hue."""
    mean = float(wall.mean())
    roll = rng.random()
    if roll < 0.5:
        level = mean * rng.uniform(0.1, 0.55)
        tint = rng.uniform(0.8, 1.1, 3) * [0.8, 0.95, 1.1]  # a brownish grey (BGR)
    elif roll < 0.8:
        level = mean + (255 - mean) * rng.uniform(0.4, 0.95)
        tint = rng.uniform(0.92, 1.05, 3)
    else:
        level, tint = 1.0, rng.uniform(30, 230, 3)
    b, g, r = (int(np.clip(v, 0, 255)) for v in level * np.asarray(tint))
    return (b, g, r)


def _specks(canvas: BgrImage, wall: BgrImage, rng: np.random.Generator) -> None:
    centre = rng.uniform([0.1, 0.3], [0.9, 0.95]) * [WIDTH, HEIGHT]
    spread = rng.uniform(15, 90)
    colour = _ink(wall, rng)
    for _ in range(int(rng.integers(40, 260))):
        x, y = (centre + rng.normal(0, spread, 2)).astype(int)
        cv2.circle(canvas, (int(x), int(y)), int(rng.integers(1, 4)), colour, -1, cv2.LINE_AA)


def _blotches(canvas: BgrImage, wall: BgrImage, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(2, 7))):
        centre = (int(rng.integers(0, WIDTH)), int(rng.integers(HEIGHT // 4, HEIGHT)))
        layer = canvas.copy()
        if rng.random() < 0.5:
            axes = (int(rng.integers(5, 30)), int(rng.integers(4, 22)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(layer, centre, axes, angle, 0, 360, _ink(wall, rng), -1, cv2.LINE_AA)
        else:
            points = np.asarray(centre) + rng.normal(0, rng.uniform(6, 22), (7, 2))
            hull = cv2.convexHull(points.astype(np.int32))
            cv2.fillPoly(layer, [hull], _ink(wall, rng), cv2.LINE_AA)
        opacity = float(rng.uniform(0.6, 1.0))
        cv2.addWeighted(layer, opacity, canvas, 1.0 - opacity, 0.0, dst=canvas)


def _fibres(canvas: BgrImage, wall: BgrImage, rng: np.random.Generator) -> None:
    colour = _ink(wall, rng)
    for _ in range(int(rng.integers(6, 30))):
        point = rng.uniform([0, HEIGHT * 0.2], [WIDTH, HEIGHT])
        heading = rng.uniform(0, 2 * np.pi)
        path = [point.copy()]
        for _ in range(int(rng.integers(8, 30))):
            heading += rng.normal(0, 0.5)
            point = point + 3.0 * np.array([np.cos(heading), np.sin(heading)])
            path.append(point.copy())
        line = np.asarray(path, np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [line], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA)


DRAW = {"specks": _specks, "blotches": _blotches, "fibres": _fibres}


def draw_deposits(wall: BgrImage, kind: str, rng: np.random.Generator) -> BgrImage:
    """``wall`` with deposits of one ``kind`` of :data:`KINDS`, drawn again and again until
    they change at least :data:`MIN_CHANGED` of the pixels."""
    canvas = wall.copy()
    while True:
        DRAW[kind](canvas, wall, rng)
        changed = np.abs(canvas.astype(np.int16) - wall.astype(np.int16)).max(axis=2) > 12
        if changed.mean() >= MIN_CHANGED:
            return canvas


def clean_duct(index: int) -> BgrImage:
    """Clean duct ``index`` of the randomised renderer (every family, camera nuisances on)."""
    from hil.render import render_duct
    from hil.render_domain import Domain

    return render_duct(SEED_BASE + index, 0.0, WIDTH, HEIGHT, nuisance=True, domain=Domain())


def as_camera_jpeg(image: BgrImage, quality: int = 90) -> BgrImage:
    """The image as a camera would deliver it: JPEG-encoded and decoded, as every set's file."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    return image if decoded is None else np.asarray(decoded)


def pairs(ducts: int) -> tuple[list[BgrImage], np.ndarray, list[str]]:
    """Each clean duct and the same duct with drawn deposits of one kind (the kinds in turn):
    images, labels, and the kind drawn ("" for a clean image)."""
    rng = np.random.default_rng(SEED_BASE)
    images: list[BgrImage] = []
    labels: list[int] = []
    kinds: list[str] = []
    for index in range(ducts):
        wall = clean_duct(index)
        kind = KINDS[index % len(KINDS)]
        images += [wall, draw_deposits(wall, kind, rng)]
        labels += [LABELS.index(CLEAN), LABELS.index(DIRTY)]
        kinds += ["", kind]
    return images, np.asarray(labels), kinds


def measure(model: Path, ducts: int, threads: int = 2) -> dict[str, Any]:
    """The model (through the runtime, with its manifest's calibration and OOD score) on
    ``ducts`` clean ducts and the same ducts with drawn deposits."""
    images, labels, kinds = pairs(ducts)
    classifier = OnnxClassifier(model, threads=threads)
    manifest = classifier.manifest
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        for image in images:
            tensor = to_model_input(
                as_camera_jpeg(image), manifest.input_size, manifest.mean, manifest.std
            )
            row_logits, row_features = classifier.outputs(tensor)
            if row_features is None:
                raise ModelError("the model has no features output to score", path=model)
            rows.append((row_logits.reshape(-1), row_features.reshape(-1)))
    finally:
        classifier.close()
    logits = np.stack([r[0] for r in rows]).astype(np.float64)
    features = np.stack([r[1] for r in rows]).astype(np.float64)
    p_dirty, report = manifest_verdicts(manifest, logits, features, labels)
    called_dirty = p_dirty >= manifest.decision_threshold
    dirty = labels == LABELS.index(DIRTY)
    drawn_kinds = np.asarray(kinds)
    per_kind = {  # None for a kind no duct got (fewer than three ducts)
        kind: round(float(called_dirty[drawn_kinds == kind].mean()), 4)
        if bool((drawn_kinds == kind).any())
        else None
        for kind in KINDS
    }
    return {
        "model": manifest.model_id,
        "ducts": ducts,
        "clean_called_clean": round(float((~called_dirty[~dirty]).mean()), 4),
        "drawn_called_dirty": round(float(called_dirty[dirty].mean()), 4),
        "drawn_called_dirty_by_kind": per_kind,
        "median_p_dirty_of_missed": round(float(np.median(p_dirty[dirty & ~called_dirty])), 4)
        if bool((dirty & ~called_dirty).any())
        else None,
        **report,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.drawn_deposits", description=__doc__)
    parser.add_argument("model", type=Path, help="an ONNX model with its manifest beside it")
    parser.add_argument("--ducts", type=int, default=200, help="clean ducts (each also drawn on)")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    args = parser.parse_args(argv)
    if args.ducts < 1:
        parser.error("--ducts must be at least 1")

    def go() -> int:
        result = measure(args.model, args.ducts)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        for key, value in result.items():
            print(f"{key}: {value}")
        return 0

    return run(go, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())
