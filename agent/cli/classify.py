"""``remotair classify IMAGE...``: Visual Clean verdicts for image files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.cli.output import add_json_argument, print_json, print_table
from agent.config_base import one_line
from agent.errors import ExitCode
from agent.vision import ImageError, VisionError
from agent.vision.factory import BACKENDS, build_classifier
from agent.vision.settings import RekognitionSettings, VisionConfig

_DEFAULTS = VisionConfig()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "classify",
        help="decide clean/dirty/uncertain/unusable for image files",
        description="Classify duct snapshots: locally with the shipped int8 ResNet-18 (default),"
        " with Rekognition Custom Labels, or the cascade of both. Each verdict is clean, dirty,"
        " uncertain (the model cannot tell, or the image is unlike its training images) or"
        " unusable (too dark, over-exposed, out of focus, lens covered or fogged), with the"
        " reason for the last two.",
        epilog="example: remotair classify snapshot.jpg --json",
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--backend", choices=[b for b in BACKENDS if b != "off"], default="onnx")
    p.add_argument(
        "--model",
        type=Path,
        help="ONNX model (its .json manifest next to it); default: the shipped model",
    )
    p.add_argument("--threads", type=int, default=_DEFAULTS.threads, help="ONNX Runtime threads")
    p.add_argument("--arn", help="Rekognition project version ARN (rekognition, cascade)")
    p.add_argument("--region", default="", help="AWS region of the Rekognition project")
    p.add_argument("--min-confidence", type=float, default=50.0, metavar="PERCENT")
    p.add_argument(
        "--band",
        nargs=2,
        type=float,
        default=(_DEFAULTS.uncertain_low, _DEFAULTS.uncertain_high),
        metavar=("LOW", "HIGH"),
        help="cascade: dirty probabilities in [LOW, HIGH] go to the cloud (default %(default)s)",
    )
    p.add_argument("--retry-dir", type=Path, help="keep snapshots the cloud could not take here")
    p.add_argument(
        "--no-quality-gate",
        action="store_true",
        help="classify even pictures the image-quality gate would call unusable",
    )
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.backend != "onnx" and not args.arn:
        raise VisionError(f"--backend {args.backend} needs --arn PROJECT_VERSION_ARN")
    try:
        vision = VisionConfig(
            backend=args.backend,
            model=args.model or _DEFAULTS.model,
            threads=args.threads,
            uncertain_low=args.band[0],
            uncertain_high=args.band[1],
            quality_gate=not args.no_quality_gate,
            rekognition=RekognitionSettings(
                project_version_arn=args.arn,
                region=args.region or None,
                min_confidence=args.min_confidence,
            ),
        )
    except ValidationError as exc:
        raise VisionError(f"classify: {one_line(exc)}") from None
    classifier = build_classifier(vision, retry_dir=args.retry_dir)
    assert classifier is not None  # "off" is not offered
    results: list[dict[str, Any]] = []
    try:
        for path in args.images:
            try:
                results.append({"image": str(path), **classifier.classify_file(path).to_dict()})
            except (ImageError, VisionError) as exc:
                results.append({"image": str(path), "error": str(exc)})
    finally:
        classifier.close()
    if args.json:
        print_json({"verdicts": results})
    else:
        print_table(
            ["IMAGE", "VERDICT", "P(DIRTY)", "DECIDED BY", "MS", "MODEL", "REASON"],
            [
                [r["image"], "ERROR", None, None, None, None, r["error"]]
                if "error" in r
                else [
                    r["image"],
                    r["label"] + (" (pending cloud)" if r["pending"] else ""),
                    None if r["dirty_probability"] is None else f"{r['dirty_probability']:.3f}",
                    r["decided_by"],
                    r["latency_ms"],
                    r["model_id"],
                    r.get("reason"),
                ]
                for r in results
            ],
        )
    return ExitCode.OK if all("error" not in r for r in results) else ExitCode.FAILURE
