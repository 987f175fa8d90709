"""Teach a trained model when it is unsure: calibration and OOD score into its manifest.

Fits, with :mod:`agent.vision.calibration`, the temperature and the uncertain band on the
validation split, the OOD statistics on the training split and their threshold on the validation
split; then measures on the test split how well ``uncertain`` separates errors from correct
verdicts, writes all of it into the manifest (``calibration``, ``ood``,
``metrics["uncertainty"]``) and draws the reliability diagram.

The model needs a ``features`` output next to ``logits``; ``--expose-features`` adds one to a
model exported without it (ONNX graph surgery: the input of the final Gemm/MatMul becomes an
output; needs the ``onnx`` package, a development dependency, not the board's).

``python -m models.calibrate MODEL.onnx DATA_DIR [--expose-features] [--diagram PNG]``

``--measure SPLIT`` only measures a calibrated model on one split of DATA_DIR (for instance
renderer families it never saw) and prints the figures as JSON; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision.calibration import (
    DEFAULT_CORRECT_FLAGGED,
    DEFAULT_OOD_DIMS,
    DEFAULT_OOD_QUANTILE,
    FEATURES_OUTPUT,
    OOD_METHOD,
    Calibration,
    Floats,
    fit_calibration,
    reliability_bins,
    softmax,
    uncertainty_report,
)
from agent.vision.features import model_outputs
from agent.vision.manifest import (
    ModelManifest,
    load_manifest,
    manifest_path_for,
    sha256_file,
    write_manifest,
)
from agent.vision.onnx_backend import OnnxClassifier
from agent.vision.ood import OOD_METHODS, OodDetector, fit_ood
from agent.vision.reliability_plot import write_reliability_diagram
from models.folders import Sample, list_samples, resolve_splits

logger = logging.getLogger(__name__)


def expose_features(model: Path) -> str:
    """Add a ``features`` output (the input of the final Gemm/MatMul) to ``model`` in place and
    update its manifest's hash; returns the tensor name it exposes. Idempotent."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load(str(model))
    graph = proto.graph
    if any(o.name == FEATURES_OUTPUT for o in graph.output):
        return FEATURES_OUTPUT
    final = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    if not final:
        raise ValueError(f"{model}: no Gemm/MatMul node to take the features from")
    source = final[-1].input[0]
    inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
    dims = [
        [d.dim_value or None for d in v.type.tensor_type.shape.dim]
        for v in inferred
        if v.name == source
    ]
    shape = dims[0] if dims else [1, None]
    graph.node.append(helper.make_node("Identity", [source], [FEATURES_OUTPUT], "features_out"))
    graph.output.append(helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, shape))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(model))
    manifest_path = manifest_path_for(model)
    manifest = load_manifest(manifest_path)
    write_manifest(replace(manifest, sha256=sha256_file(model)), manifest_path)
    return str(source)


def _outputs(classifier: OnnxClassifier, samples: Sequence[Sample]) -> tuple[Floats, Floats]:
    outputs = model_outputs(classifier, [s.path for s in samples])
    return outputs.logits, outputs.features


def _labels(samples: Sequence[Sample]) -> np.ndarray:
    return np.asarray([s.label for s in samples], dtype=np.int64)


def calibrate(
    model: Path,
    splits: dict[str, list[Sample]],
    *,
    max_correct_flagged: float = DEFAULT_CORRECT_FLAGGED,
    ood_dims: int = DEFAULT_OOD_DIMS,
    ood_quantile: float = DEFAULT_OOD_QUANTILE,
    ood_method: str = OOD_METHOD,
    diagram: Path | None = None,
    threads: int = 2,
    data_command: str = "",
) -> ModelManifest:
    """Fit, measure and write the manifest of ``model`` (see the module docstring)."""
    manifest_path = manifest_path_for(model)
    stripped = replace(load_manifest(manifest_path), calibration=None, ood=None)
    write_manifest(stripped, manifest_path)  # measure the raw model, not an earlier calibration
    classifier = OnnxClassifier(model, threads=threads)
    try:
        _, train_features = _outputs(classifier, splits["train"])
        val_logits, val_features = _outputs(classifier, splits["val"])
        test_logits, test_features = _outputs(classifier, splits["test"])
    finally:
        classifier.close()
    y_train, y_val, y_test = (_labels(splits[s]) for s in ("train", "val", "test"))
    calibration = fit_calibration(
        val_logits,
        y_val,
        threshold=stripped.decision_threshold,
        max_correct_flagged=max_correct_flagged,
    )
    ood = fit_ood(
        train_features,
        y_train,
        val_features,
        dims=ood_dims,
        quantile=ood_quantile,
        method=ood_method,
    )
    metrics = dict(stripped.metrics)
    metrics["uncertainty"] = measure(calibration, ood, test_logits, test_features, y_test)
    if data_command:
        metrics["uncertainty"]["data"] = data_command
    manifest = replace(stripped, calibration=calibration, ood=ood, metrics=metrics)
    write_manifest(manifest, manifest_path)
    if diagram is not None:
        write_reliability_diagram(
            diagram,
            [
                ("test, raw softmax", reliability_bins(softmax(test_logits), y_test)),
                (
                    f"test, temperature {calibration.temperature:.2f}",
                    reliability_bins(softmax(test_logits, calibration.temperature), y_test),
                ),
            ],
        )
    return manifest


def measure(
    calibration: Calibration,
    ood: OodDetector,
    logits: Floats,
    features: Floats,
    labels: np.ndarray,
    *,
    split: str = "test",
) -> dict[str, Any]:
    """ECE before/after and the uncertain verdict's catch rates on labelled images."""
    p_dirty = calibration.p_dirty(logits)
    report = uncertainty_report(
        p_dirty, labels, band=calibration.uncertain_band, out_of_distribution=ood.is_out(features)
    )
    return {
        "split": split,
        "ece_raw": reliability_bins(softmax(logits), labels, bins=calibration.bins).to_dict()[
            "ece"
        ],
        "ece_calibrated": reliability_bins(
            softmax(logits, calibration.temperature), labels, bins=calibration.bins
        ).to_dict()["ece"],
        **report,
    }


def manifest_verdicts(
    manifest: ModelManifest, logits: Floats, features: Floats, labels: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrated p(dirty) of each image and the uncertain verdict's report on them, by the
    manifest's own policy; a manifest without calibration decides on the raw softmax, no band."""
    if manifest.calibration is not None and manifest.ood is not None:
        p_dirty = manifest.calibration.p_dirty(logits)
        band = manifest.calibration.uncertain_band
        ood: np.ndarray | None = manifest.ood.is_out(features)
    else:
        p_dirty, band, ood = softmax(logits)[:, 1], (0.5, 0.5), None
    report = uncertainty_report(
        p_dirty, labels, band=band, out_of_distribution=ood, threshold=manifest.decision_threshold
    )
    return p_dirty, report


def measure_split(model: Path, data: Path, split: str, *, threads: int = 2) -> dict[str, Any]:
    """The uncertainty figures of a calibrated model on one split of a data set."""
    folder = data / split
    samples = list_samples(folder) if folder.is_dir() else resolve_splits(data)[split]
    classifier = OnnxClassifier(model, threads=threads)
    try:
        logits, features = _outputs(classifier, samples)
        manifest = classifier.manifest
    finally:
        classifier.close()
    if manifest.calibration is None or manifest.ood is None:
        raise ValueError(f"{model}: the manifest has no calibration/ood to measure")
    result = measure(
        manifest.calibration, manifest.ood, logits, features, _labels(samples), split=split
    )
    return {"model_id": manifest.model_id, "data": str(data), **result}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.calibrate", description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="folder-per-label set with train/val/test")
    parser.add_argument("--expose-features", action="store_true")
    parser.add_argument("--diagram", type=Path, help="write the reliability diagram PNG here")
    parser.add_argument("--band-budget", type=float, default=DEFAULT_CORRECT_FLAGGED)
    parser.add_argument("--ood-dims", type=int, default=DEFAULT_OOD_DIMS)
    parser.add_argument("--ood-quantile", type=float, default=DEFAULT_OOD_QUANTILE)
    parser.add_argument(
        "--ood-method", choices=sorted(OOD_METHODS), default=OOD_METHOD, help="default %(default)s"
    )
    parser.add_argument(
        "--data-command", default="", help="the command that made DATA (kept in the manifest)"
    )
    parser.add_argument("--measure", metavar="SPLIT", help="only measure on this split")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.measure:
            print(json.dumps(measure_split(args.model, args.data, args.measure), indent=2))
            return 0
        if args.expose_features:
            logger.info("features from %s", expose_features(args.model))
        manifest = calibrate(
            args.model,
            resolve_splits(args.data),
            max_correct_flagged=args.band_budget,
            ood_dims=args.ood_dims,
            ood_quantile=args.ood_quantile,
            ood_method=args.ood_method,
            diagram=args.diagram,
            data_command=args.data_command,
        )
    except (OSError, ValueError) as exc:
        print(f"models.calibrate: error: {exc}", file=sys.stderr)
        return 1
    assert manifest.calibration is not None
    print(
        f"temperature {manifest.calibration.temperature:.3f}"
        f" band {list(manifest.calibration.uncertain_band)}"
        f" uncertainty {manifest.metrics['uncertainty']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
