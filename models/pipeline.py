"""One command from labeled images to a shippable model: train -> export -> quantize ->
calibrate -> evaluate.

``python -m models.pipeline DATA_DIR --out models/`` leaves in ``--out`` the int8 model and its
manifest (metrics of fp32 and int8 on the test split, agreement between them, the quantization
calibration comparison, the fitted temperature, uncertain band and OOD score with their measures
on the test split); the checkpoint, the fp32 ONNX, the quantization candidates and the
reliability diagram stay in ``--work-dir``.
``--generate`` first renders the synthetic set into DATA_DIR if it is empty.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.vision.manifest import ModelManifest, load_manifest, manifest_path_for, write_manifest
from models.calibrate import calibrate
from models.cli import run
from models.dataset import DATASET_INFO, DEFAULT_COUNTS, generate
from models.evaluate import agreement, evaluate
from models.export import export, load_checkpoint
from models.folders import SPLITS, scan
from models.quantize import FORMATS, METHODS, quantize
from models.train import train
from models.train_options import add_train_arguments, config_from_args

logger = logging.getLogger(__name__)


def model_name(arch: str) -> str:
    return f"visual_clean_{arch}"


def run_pipeline(
    data_dir: Path,
    out_dir: Path,
    work_dir: Path,
    args: argparse.Namespace,
) -> tuple[ModelManifest, dict[str, Any]]:
    """Run every stage; returns the int8 manifest and a summary (also written to work_dir)."""
    started = time.monotonic()
    data = scan(data_dir)  # refuse an unusable set before an hour of training, not after
    test = data.split("test")
    data.split("val")
    config = config_from_args(args)
    name = model_name(config.arch)
    work_dir.mkdir(parents=True, exist_ok=True)
    if args.checkpoint is not None:  # trained already (models.train): the remaining stages
        checkpoint = args.checkpoint
        trained = load_checkpoint(checkpoint)
        train_seconds = float(trained.get("train_seconds", 0.0))
        best_epoch, epochs_run = trained.get("best_epoch"), len(trained.get("history", []))
    else:
        checkpoint = work_dir / f"{name}.pt"
        result = train(data_dir, checkpoint, config)
        train_seconds, best_epoch = result.seconds, result.best_epoch
        epochs_run = len(result.history)
    fp32_path = work_dir / f"{name}_fp32.onnx"
    export(checkpoint, fp32_path)
    int8_path = out_dir / f"{name}_int8.onnx"
    _, comparison = quantize(
        fp32_path,
        data_dir,
        int8_path,
        work_dir=work_dir / "quantize",
        methods=args.methods,
        data_format=args.data_format,
        threads=config.threads,
    )
    fp32_eval = evaluate(fp32_path, test, threads=config.threads)
    int8_eval = evaluate(int8_path, test, threads=config.threads)
    metrics = {
        "split": "test",
        "fp32": fp32_eval.metrics(),
        "int8": int8_eval.metrics(),
        "int8_vs_fp32": agreement(int8_eval, fp32_eval),
    }
    manifest = load_manifest(manifest_path_for(int8_path))
    manifest = replace(
        manifest, metrics=metrics, extra={**manifest.extra, **_data_record(data_dir)}
    )
    write_manifest(manifest, manifest_path_for(int8_path))
    # Confidence of the model that ships: temperature and uncertain band on the validation split,
    # OOD statistics on the training features; measured on the test split (models.calibrate).
    manifest = calibrate(
        int8_path, data.splits, diagram=work_dir / "reliability.png", threads=config.threads
    )
    summary = {
        "data": data.summary(),
        "skipped": [f"{path}: {reason}" for path, reason in data.skipped],
        "int8_model": str(int8_path),
        "fp32_model": str(fp32_path),
        "train_seconds": round(train_seconds, 1),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "calibration_comparison": comparison,
        "metrics": manifest.metrics,
        "fp32_bytes": fp32_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "pipeline_seconds": round(time.monotonic() - started, 1),
    }
    (work_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return manifest, summary


def _data_record(data_dir: Path) -> dict[str, Any]:
    """The generator's record of a synthetic set (seeds per split: what models.report renders)."""
    info_path = data_dir / DATASET_INFO
    if not info_path.is_file():
        return {}
    return {"dataset": json.loads(info_path.read_text(encoding="utf-8"))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.pipeline", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="folder-per-label data set (splits optional)")
    parser.add_argument(
        "--out", type=Path, default=Path("models"), help="where the int8 model goes"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("build/visual_clean"))
    parser.add_argument(
        "--generate",
        action="store_true",
        help="render the synthetic set first if DATA_DIR is empty",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="skip training: export, quantize and calibrate this models.train checkpoint",
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], dest="data_format")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(lambda: _main(args), parser.prog)


def _main(args: argparse.Namespace) -> int:
    if args.generate and not any(args.data_dir.glob("*/*")):
        generate(args.data_dir, {s: DEFAULT_COUNTS[s] for s in SPLITS})
    _, summary = run_pipeline(args.data_dir, args.out, args.work_dir, args)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
