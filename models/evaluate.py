"""Measure an ONNX model on a folder-per-label split, through the runtime's own code path.

The model is loaded by :class:`agent.vision.onnx_backend.OnnxClassifier` (manifest and hash
checks included) and every image goes through ``classify_file``, so the figures are those of the
board, pre-processing and reduced-scale JPEG decoding included.

``python -m models.evaluate MODEL.onnx DATA_DIR --split test [--compare OTHER.onnx] [--write]``
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision import DIRTY, LABELS
from agent.vision.manifest import load_manifest, manifest_path_for, write_manifest
from agent.vision.onnx_backend import OnnxClassifier
from models.cli import run
from models.folders import SPLITS, Sample, scan

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Predictions of one model on one list of samples."""

    labels: tuple[int, ...]
    predictions: tuple[int, ...]
    dirty_probabilities: tuple[float, ...]

    @property
    def confusion(self) -> list[list[int]]:
        """``confusion[true][predicted]`` in :data:`LABELS` order."""
        matrix = [[0] * len(LABELS) for _ in LABELS]
        for truth, predicted in zip(self.labels, self.predictions, strict=True):
            matrix[truth][predicted] += 1
        return matrix

    def metrics(self) -> dict[str, Any]:
        matrix = self.confusion
        dirty = LABELS.index(DIRTY)
        tp = matrix[dirty][dirty]
        predicted_dirty = sum(row[dirty] for row in matrix)
        actual_dirty = sum(matrix[dirty])
        total = len(self.labels)
        return {
            "images": total,
            "accuracy": round(sum(matrix[i][i] for i in range(len(LABELS))) / total, 4)
            if total
            else 0.0,
            "dirty_precision": round(tp / predicted_dirty, 4) if predicted_dirty else 0.0,
            "dirty_recall": round(tp / actual_dirty, 4) if actual_dirty else 0.0,
            "confusion_matrix": matrix,
            "confusion_matrix_axes": "rows = true label, columns = predicted, order "
            + "/".join(LABELS),
        }


def evaluate(model: Path, samples: Sequence[Sample], *, threads: int = 2) -> Evaluation:
    classifier = OnnxClassifier(model, threads=threads)
    try:
        predictions, probabilities = [], []
        for sample in samples:
            verdict = classifier.classify_file(sample.path)
            # the clean/dirty side even of an "uncertain" verdict: this measures the model
            p_dirty = verdict.dirty_probability
            if p_dirty is None:
                raise ValueError(f"{sample.path}: the model gave no dirty probability")
            predictions.append(int(p_dirty >= classifier.manifest.decision_threshold))
            probabilities.append(p_dirty)
    finally:
        classifier.close()
    return Evaluation(tuple(s.label for s in samples), tuple(predictions), tuple(probabilities))


def agreement(a: Evaluation, b: Evaluation) -> dict[str, float]:
    """How closely two models (fp32 and int8) agree on the same samples."""
    same = sum(1 for x, y in zip(a.predictions, b.predictions, strict=True) if x == y)
    diff = np.abs(np.asarray(a.dirty_probabilities) - np.asarray(b.dirty_probabilities))
    return {
        "label_agreement": round(same / max(1, len(a.predictions)), 4),
        "mean_abs_dirty_probability_diff": round(float(diff.mean()) if diff.size else 0.0, 5),
        "max_abs_dirty_probability_diff": round(float(diff.max()) if diff.size else 0.0, 5),
    }


def record_metrics(model: Path, key: str, metrics: dict[str, Any]) -> None:
    """Store ``metrics`` under ``manifest.metrics[key]`` (the hash covers the model, not this)."""
    path = manifest_path_for(model)
    manifest = load_manifest(path)
    updated = dict(manifest.metrics)
    updated[key] = metrics
    write_manifest(replace(manifest, metrics=updated), path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--compare", type=Path, help="a second model (e.g. fp32) to agree with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--write", action="store_true", help="record the metrics in the model's manifest"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(lambda: _main(args), parser.prog)


def _main(args: argparse.Namespace) -> int:
    samples = scan(args.data_dir).split(args.split)
    result = evaluate(args.model, samples, threads=args.threads)
    report: dict[str, Any] = {"model": str(args.model), "split": args.split, **result.metrics()}
    if args.compare:
        other = evaluate(args.compare, samples, threads=args.threads)
        report["compare"] = {"model": str(args.compare), **other.metrics()}
        report["agreement"] = agreement(result, other)
    if args.write:
        record_metrics(args.model, args.split, result.metrics())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
