"""Static int8 quantization of the exported fp32 model with ONNX Runtime.

Steps: ONNX Runtime's quantization pre-processing (symbolic shape inference and graph
optimisation), then ``quantize_static`` in QDQ format with per-channel weights, calibrated on the
calibration split through the runtime's own pre-processing. Each calibration method asked for
(MinMax, Entropy, Percentile by default) produces a candidate; every candidate is measured on the
validation split (never the test split, which stays untouched for the final figures) and the best
one is kept: highest accuracy, then highest label agreement with fp32, then the smallest mean
difference in the dirty probability.

Data types: ``u8s8-reduce-range`` (default) is uint8 activations, int8 weights quantized to 7 bits.
ONNX Runtime's documentation recommends exactly this for x86-64 CPUs without VNNI, where the
u8 x s8 AVX2 kernels can saturate a 16-bit intermediate; 7-bit weights rule that out, on every
machine, for the price of one bit of weight precision that per-channel scales largely win back.
``s8s8`` (symmetric int8 activations, the documentation's choice for ARM cores) is available for a
model meant only for ARM boards.

``python -m models.quantize FP32.onnx DATA_DIR --out models/visual_clean_resnet18_int8.onnx``
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from agent.vision.manifest import (
    ModelManifest,
    load_manifest,
    manifest_path_for,
    sha256_file,
    write_manifest,
)
from agent.vision.preprocess import load_image, to_model_input
from models.cli import run
from models.evaluate import Evaluation, agreement, evaluate
from models.folders import Sample, scan

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("MinMax", "Entropy", "Percentile")
FORMATS: tuple[str, ...] = ("u8s8-reduce-range", "s8s8")
# No ``CalibMaxIntermediateOutputs``: ONNX Runtime's MinMax calibrator (1.32) empties its
# buffer each time it holds that many images without folding them into the ranges, so it used
# only the images after the last multiple and failed ("No data is collected.") on an exact
# multiple. MinMax keeps two scalars per tensor and image (it does not need the bound); the
# histogram calibrators never read the option.


class _CalibrationReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration images, pre-processed exactly like the runtime does."""

    def __init__(self, samples: Sequence[Sample], manifest: ModelManifest) -> None:
        self._samples = samples
        self._manifest = manifest
        self._iterator = self._feeds()

    def _feeds(self) -> Iterator[dict[str, Any]]:
        size = self._manifest.input_size
        for sample in self._samples:
            image = load_image(sample.path, min_short_side=min(size))
            tensor = to_model_input(image, size, self._manifest.mean, self._manifest.std)
            yield {self._manifest.input_name: tensor}

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iterator, None)

    def rewind(self) -> None:
        self._iterator = self._feeds()


def quantize_candidate(
    prepared: Path,
    out: Path,
    samples: Sequence[Sample],
    fp32_manifest: ModelManifest,
    *,
    method: str,
    data_format: str,
) -> ModelManifest:
    """Quantize ``prepared`` with one calibration method; write ``out`` and its manifest."""
    if data_format not in FORMATS:
        raise ValueError(f"unknown format {data_format!r}; expected one of {FORMATS}")
    reader = _CalibrationReader(samples, fp32_manifest)
    unsigned = data_format == "u8s8-reduce-range"
    quantize_static(
        str(prepared),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=unsigned,
        activation_type=QuantType.QUInt8 if unsigned else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, method),
    )
    manifest = replace(
        fp32_manifest,
        model_file=out.name,
        sha256=sha256_file(out),
        precision=f"int8 QDQ {data_format}, per-channel weights, {method} calibration",
        metrics={},
        extra={
            **fp32_manifest.extra,
            "quantization": {
                "format": "QDQ",
                "data_types": data_format,
                "per_channel": True,
                "reduce_range": unsigned,
                "calibration_method": method,
                "calibration_images": len(samples),
            },
        },
    )
    write_manifest(manifest, manifest_path_for(out))
    return manifest


def _score(candidate: Evaluation, fp32: Evaluation) -> tuple[float, float, float]:
    metrics = candidate.metrics()
    agree = agreement(candidate, fp32)
    return (
        float(metrics["accuracy"]),
        agree["label_agreement"],
        -agree["mean_abs_dirty_probability_diff"],
    )


def quantize(
    fp32_model: Path,
    data_dir: Path,
    out: Path,
    *,
    work_dir: Path,
    methods: Sequence[str] = METHODS,
    data_format: str = FORMATS[0],
    threads: int = 2,
) -> tuple[ModelManifest, list[dict[str, Any]]]:
    """Quantize with each method, keep the best on the validation split as ``out``."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"calibration methods must be among {METHODS}, got {list(methods)}")
    fp32_manifest = load_manifest(manifest_path_for(fp32_model))
    data = scan(data_dir)
    calibration, validation = data.split("calib"), data.split("val")
    work_dir.mkdir(parents=True, exist_ok=True)
    prepared = work_dir / f"{fp32_model.stem}.prep.onnx"
    quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=False)
    fp32_val = evaluate(fp32_model, validation, threads=threads)
    comparison: list[dict[str, Any]] = []
    best: tuple[tuple[float, float, float], Path] | None = None
    for method in methods:
        started = time.monotonic()
        candidate = work_dir / f"{out.stem}.{method.lower()}.onnx"
        quantize_candidate(
            prepared,
            candidate,
            calibration,
            fp32_manifest,
            method=method,
            data_format=data_format,
        )
        seconds = time.monotonic() - started
        result = evaluate(candidate, validation, threads=threads)
        score = _score(result, fp32_val)
        row = {
            "method": method,
            "val_accuracy": result.metrics()["accuracy"],
            **agreement(result, fp32_val),
            "seconds": round(seconds, 1),
        }
        comparison.append(row)
        print(json.dumps(row), flush=True)
        if best is None or score > best[0]:
            best = (score, candidate)
    assert best is not None
    chosen = best[1]
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chosen, out)
    chosen_manifest = load_manifest(manifest_path_for(chosen))
    manifest = replace(
        chosen_manifest,
        model_file=out.name,
        sha256=sha256_file(out),
        extra={
            **chosen_manifest.extra,
            "calibration_comparison": comparison,
            "fp32_val_accuracy": fp32_val.metrics()["accuracy"],
        },
    )
    write_manifest(manifest, manifest_path_for(out))
    logger.info("quantized path=%s chosen=%s", out, chosen.name)
    return manifest, comparison


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.quantize", description=__doc__)
    parser.add_argument("fp32_model", type=Path)
    parser.add_argument("data_dir", type=Path, help="data set with calib and val splits")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, help="candidates go here (default: next to --out)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], dest="data_format")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(lambda: _main(args), parser.prog)


def _main(args: argparse.Namespace) -> int:
    manifest, _ = quantize(
        args.fp32_model,
        args.data_dir,
        args.out,
        work_dir=args.work_dir or args.out.parent / "quantize-work",
        methods=args.methods,
        data_format=args.data_format,
        threads=args.threads,
    )
    print(f"{args.out} sha256={manifest.sha256} ({manifest.precision})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
