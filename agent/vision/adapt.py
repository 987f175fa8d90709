"""Adapt the model to a field set on the board, without torch: a new head on the same backbone.

``remotair model adapt DIR --out OUT.onnx`` runs the current model's backbone (ONNX Runtime) on
every image of a folder-per-label set, fits a class-balanced logistic regression on the
``features`` (:mod:`agent.vision.head`), measures it by stratified k-fold cross-validation and
compares it with the current model's own verdicts on the same images. Only a head that is better
(cross-validated balanced accuracy above the current model's) is written; otherwise
:class:`AdaptRefused` says so in one line and nothing is written.

The new model file is the backbone's bytes followed by a few kB that add the head as a MatMul +
Add on ``features`` (:mod:`agent.vision.onnx_append`), so it is one self-contained ONNX file with
its own hash (the model store keys folders by it), and the backbone it came from is provably
unchanged (a byte prefix). Its manifest names the head's output (``logits_output``), the model it
was adapted from, how many images, the cross-validated metrics, and a calibration and OOD score
refitted on out-of-fold predictions (:mod:`agent.vision.calibration`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.atomic_file import write_atomic
from agent.errors import ExitCode
from agent.vision import LABELS, VisionError
from agent.vision.calibration import (
    DEFAULT_OOD_DIMS,
    DEFAULT_OOD_QUANTILE,
    FEATURES_OUTPUT,
    Floats,
    Ints,
    fit_calibration,
    softmax,
)
from agent.vision.features import model_outputs
from agent.vision.head import fit_logistic_regression
from agent.vision.manifest import ModelManifest, manifest_path_for, sha256_file, write_manifest
from agent.vision.onnx_append import linear_head_suffix
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.ood import fit_ood_statistics
from models.folders import MIN_IMAGES_PER_LABEL

logger = logging.getLogger(__name__)

ADAPTED_OUTPUT = "adapted_logits"
DEFAULT_FOLDS = 5
DEFAULT_L2 = 1.0
"""L2 penalty on the standardised head weights (the loss is a mean over images): strong,
because a field set has far fewer images than the backbone has features."""


class AdaptError(VisionError):
    """The set or the model cannot be adapted (too few images, no features output...)."""

    exit_code = ExitCode.FAILURE


class AdaptRefused(AdaptError):
    """The adapted head is not better than the current model on the same images."""


@dataclass(frozen=True, slots=True)
class FieldImages:
    """The labelled images of a set, each picture once; what could not be used, with why."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    skipped: tuple[tuple[Path, str], ...] = ()


def read_field_set(root: Path) -> FieldImages:
    """Every usable image of a folder-per-label set (split folders or not, nested folders too),
    each picture once (:func:`models.folders.scan`), so none sits in two cross-validation folds;
    what was left out, with why."""
    from models.folders import DatasetError, scan

    try:
        folder_set = scan(root)
    except DatasetError as exc:
        raise AdaptError(str(exc)) from exc
    unique = {s.path: s for split in folder_set.splits.values() for s in split}
    samples = sorted(unique.values(), key=lambda s: (s.label, str(s.path)))
    skipped = [
        *folder_set.skipped,
        *((copy, f"same picture as {kept}") for copy, kept in folder_set.duplicates),
        *((path, "the same picture is under both labels") for path in folder_set.conflicts),
    ]
    return FieldImages(
        tuple(s.path for s in samples), tuple(s.label for s in samples), tuple(skipped)
    )


def stratified_folds(labels: npt.ArrayLike, folds: int, *, seed: int = 0) -> Ints:
    """Fold index of each image: every fold holds about the same share of each label."""
    y = np.asarray(labels, dtype=np.int64)
    assignment = np.zeros(y.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        assignment[rng.permutation(members)] = np.arange(members.size) % folds
    return assignment


def binary_metrics(labels: npt.ArrayLike, predicted: npt.ArrayLike) -> dict[str, Any]:
    """Accuracy, balanced accuracy (mean per-label recall) and the confusion matrix."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    matrix = [[int(((y == t) & (p == q)).sum()) for q in range(len(LABELS))] for t in range(2)]
    recalls = [matrix[t][t] / sum(matrix[t]) for t in range(2) if sum(matrix[t])]
    return {
        "images": int(y.size),
        "accuracy": round(float((y == p).mean()), 4),
        "balanced_accuracy": round(float(np.mean(recalls)), 4),
        "confusion_matrix": matrix,
        "confusion_matrix_axes": "rows = true label, columns = predicted, order clean/dirty",
    }


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Out-of-fold logits and OOD scores: each image judged by a head that never saw it."""

    logits: Floats
    ood_scores: Floats
    metrics: dict[str, Any]


def cross_validate(
    features: Floats,
    labels: Ints,
    folds: Ints,
    *,
    l2: float = DEFAULT_L2,
    ood_dims: int = DEFAULT_OOD_DIMS,
) -> CrossValidation:
    logits = np.zeros((labels.size, 2))
    scores = np.zeros(labels.size)
    for fold in np.unique(folds):
        held_out = folds == fold
        head = fit_logistic_regression(features[~held_out], labels[~held_out], l2=l2)
        logits[held_out] = head.logits(features[held_out])
        ood = fit_ood_statistics(features[~held_out], labels[~held_out], dims=ood_dims)
        scores[held_out] = ood.score(features[held_out])
    metrics = binary_metrics(labels, logits.argmax(axis=1))
    metrics["folds"] = int(np.unique(folds).size)
    return CrossValidation(logits, scores, metrics)


@dataclass(frozen=True, slots=True)
class AdaptReport:
    """What ``adapt`` did: the files written, the figures, what it skipped."""

    model: Path
    manifest: ModelManifest
    baseline: dict[str, Any]
    cross_validated: dict[str, Any]
    skipped: tuple[tuple[Path, str], ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "model_id": self.manifest.model_id,
            "adapted_from": self.manifest.extra.get("adapted_from"),
            "images": self.cross_validated["images"],
            "current_model": self.baseline,
            "cross_validated": self.cross_validated,
            "skipped": [{"path": str(p), "why": why} for p, why in self.skipped],
            "seconds": round(self.seconds, 2),
        }


def backbone_bytes(model: Path, manifest: ModelManifest) -> bytes:
    """The model file without a head an earlier ``adapt`` appended (checked by its hash)."""
    data = model.read_bytes()
    origin = manifest.extra.get("adapted_from")
    if not manifest.logits_output or not isinstance(origin, dict):
        return data
    size = int(origin.get("bytes", -1))
    prefix = data[:size] if 0 < size <= len(data) else b""
    if hashlib.sha256(prefix).hexdigest() != origin.get("sha256"):
        raise AdaptError(f"{model}: cannot find the backbone it was adapted from inside it")
    return prefix


def adapt(
    model: Path,
    root: Path,
    out: Path,
    *,
    folds: int = DEFAULT_FOLDS,
    threads: int = 2,
    l2: float = DEFAULT_L2,
    progress: Callable[[int, int], None] | None = None,
) -> AdaptReport:
    """Fit, cross-validate, compare and (only if better) write ``out`` and its manifest."""
    started = time.monotonic()
    if out.suffix != ".onnx":
        raise AdaptError(f"--out {out}: the adapted model's name must end in .onnx")
    if out.resolve() == model.resolve():
        raise AdaptError(f"--out {out} is the model being adapted; choose another file name")
    field_set = read_field_set(root)
    classifier = OnnxClassifier(model, threads=threads)
    try:
        outputs = model_outputs(
            classifier, field_set.paths, skip_unreadable=True, progress=progress
        )
        base = classifier.manifest
    finally:
        classifier.close()
    labels = [field_set.labels[i] for i in outputs.used]
    skipped = field_set.skipped + outputs.skipped
    current_logits, features = outputs.logits, outputs.features
    y = np.asarray(labels, dtype=np.int64)
    _check_counts(y, folds, root)
    baseline = binary_metrics(y, softmax(current_logits)[:, 1] >= base.decision_threshold)
    baseline["model_id"] = base.model_id
    fold_of = stratified_folds(y, folds)
    cv = cross_validate(features, y, fold_of, l2=l2, ood_dims=min(DEFAULT_OOD_DIMS, y.size // 4))
    if cv.metrics["balanced_accuracy"] <= baseline["balanced_accuracy"]:
        raise AdaptRefused(
            f"not adapting: the new head is not better than {base.model_id} on these"
            f" {y.size} images (cross-validated balanced accuracy"
            f" {cv.metrics['balanced_accuracy']:.3f}, current model"
            f" {baseline['balanced_accuracy']:.3f}); nothing written"
        )
    head = fit_logistic_regression(features, y, l2=l2)
    calibration = fit_calibration(cv.logits, y, split="cross-validation (out of fold)")
    ood = fit_ood_statistics(features, y, dims=min(DEFAULT_OOD_DIMS, y.size // 4))
    ood = ood.with_threshold(cv.ood_scores, DEFAULT_OOD_QUANTILE)
    backbone = backbone_bytes(model, base)
    weights, bias = head.folded()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(
        out,
        backbone
        + linear_head_suffix(
            features=FEATURES_OUTPUT, output=ADAPTED_OUTPUT, weights=weights, bias=bias
        ),
    )
    origin = base.extra.get("adapted_from") if base.logits_output else None
    adapted_from = (
        dict(origin)
        if isinstance(origin, dict)
        else {
            "model_id": base.model_id,
            "model_file": base.model_file,
            "sha256": base.sha256,
            "bytes": len(backbone),
        }
    )
    manifest = replace(
        base,
        model_file=out.name,
        sha256=sha256_file(out),
        logits_output=ADAPTED_OUTPUT,
        calibration=calibration,
        ood=ood,
        precision=f"{base.precision}; head float32 (adapted)",
        training_data=f"adapted on {y.size} field images from {root.name}/"
        f" ({int((y == 0).sum())} clean, {int((y == 1).sum())} dirty)",
        metrics={"cross_validated": cv.metrics, "current_model_same_images": baseline},
        extra={
            "adapted_from": adapted_from,
            "adapted_on": {"images": int(y.size), "skipped": len(skipped), "folds": folds},
            "l2": l2,
        },
    )
    write_manifest(manifest, manifest_path_for(out))
    return AdaptReport(out, manifest, baseline, cv.metrics, skipped, time.monotonic() - started)


def _check_counts(labels: Ints, folds: int, root: Path) -> None:
    if folds < 2:
        raise AdaptError(f"--folds {folds}: cross-validation needs at least 2 folds")
    counts = [int((labels == i).sum()) for i in range(len(LABELS))]
    needed = max(MIN_IMAGES_PER_LABEL, folds)
    short = [f"{LABELS[i]} has {n}" for i, n in enumerate(counts) if n < needed]
    if short:
        raise AdaptError(
            f"{root}: need at least {needed} usable images of each label to adapt; "
            + ", ".join(short)
        )


def describe_skipped(skipped: Sequence[tuple[Path, str]], *, limit: int = 5) -> str:
    """One line listing what was skipped (the first few, then a count)."""
    shown = "; ".join(f"{p} ({why})" for p, why in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"skipped {len(skipped)}: {shown}{more}"
