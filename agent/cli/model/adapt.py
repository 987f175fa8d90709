"""``remotair model adapt DIR --out OUT.onnx``: a new head for the model, fitted on the board."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli.output import add_json_argument, print_json, print_table
from agent.errors import ExitCode
from agent.vision.adapt import DEFAULT_FOLDS, adapt, describe_skipped
from agent.vision.factory import shipped_model_path
from models.folders import MIN_IMAGES_PER_LABEL


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "adapt",
        help="fit the model's last layer to your own labelled images (no PyTorch needed)",
        description="Run the model's backbone on every image of a folder-per-label set (clean/,"
        " dirty/, as 'remotair label' files them), fit a new class-balanced head on its features,"
        " measure it by k-fold cross-validation and write OUT.onnx with its manifest (calibration"
        " and out-of-distribution score refitted). Refuses, writing nothing, when the new head is"
        " not better than the current model on the same images. Use the result with"
        f" [vision] model = OUT.onnx. Needs at least {MIN_IMAGES_PER_LABEL} images of each"
        " label.",
        epilog="example: remotair model adapt /var/lib/remotair/labels --out /etc/remotair/"
        "adapted.onnx",
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="folder-per-label image set")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.onnx")
    p.add_argument(
        "--model",
        type=Path,
        help="model to adapt (its .json manifest next to it); default: the shipped model",
    )
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="cross-validation folds")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = adapt(
        args.model or shipped_model_path(),
        args.directory,
        args.out,
        folds=args.folds,
        threads=args.threads,
    )
    if args.json:
        print_json(report.to_dict())
        return ExitCode.OK
    cv, base = report.cross_validated, report.baseline
    print_table(
        ["MODEL", "IMAGES", "ACCURACY", "BALANCED ACCURACY", "MEASURED BY"],
        [
            [base["model_id"], base["images"], base["accuracy"], base["balanced_accuracy"], "all"],
            [
                report.manifest.model_id,
                cv["images"],
                cv["accuracy"],
                cv["balanced_accuracy"],
                f"{cv['folds']}-fold cross-validation",
            ],
        ],
    )
    print(f"wrote {report.model} (use it with [vision] model = {report.model})")
    if report.skipped:
        print(describe_skipped(report.skipped), file=sys.stderr)
    return ExitCode.OK
