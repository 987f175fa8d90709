"""Every figure of the manifest and the model card, from one command that regenerates its data.

``python -m models.report --model models/visual_clean_resnet18_int8.onnx --out build/report``
renders the test split again exactly as the model's data set was rendered (seeds, renderer
domain, sizes and JPEG quality from the generator's record in the manifest, ``extra.dataset``,
which ``models.pipeline`` copies from ``dataset.json``; without one, the generator's defaults with
the classic renderer, which the first shipped model was trained on), measures the int8 model
and its fp32 counterpart through the runtime's own path (:func:`models.evaluate.evaluate`),
and writes:

- ``OUT/report.json``: the metrics, the seeds, a fingerprint of the regenerated images, the
  library versions and the machine;
- ``OUT/model_card_metrics.md``: the markdown block the model card quotes;
- with ``--write``: the metrics into the model's manifest (the sha256 covers the model file only,
  but the Ed25519 signature covers the whole manifest: ``--sign-key KEY`` signs it again, else the
  command says that the signature is now stale and how to renew it);
- with ``--card FILE``: the block into FILE between ``<!-- report:begin -->`` and
  ``<!-- report:end -->``.

The fp32 counterpart is ``--fp32 FILE`` when given (the pipeline leaves it in its work dir), else
the fp32 twin rebuilt from the int8 graph (:mod:`models.dequantize`): int8 weights dequantized,
activations in float. That twin isolates what activation quantization costs; against the real
fp32 file the comparison also includes weight rounding.

The manifest also gets a ``reproduce.slice``: the figures on the first ``SLICE_IMAGES`` images
of the split, which ``tests/models/test_report.py`` regenerates and checks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision.calibration import expected_calibration_error
from agent.vision.factory import shipped_model_path
from agent.vision.features import model_outputs
from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file, write_manifest
from agent.vision.onnx_backend import OnnxClassifier
from hil.render_domain import Domain
from models.cli import run
from models.dataset import DEFAULT_COUNTS, MIN_VISIBLE_SHARE, SPLIT_SEED_BASE, generate
from models.evaluate import Evaluation, agreement, evaluate
from models.folders import SPLITS, Sample, list_samples

logger = logging.getLogger(__name__)

SLICE_IMAGES = 64
"""Images of the slice the test regenerates (a few seconds of rendering)."""
_ALL_BUT = "all but "
CARD_BEGIN = "<!-- report:begin -->"
CARD_END = "<!-- report:end -->"
_PACKAGES = ("numpy", "opencv-python-headless", "onnxruntime", "onnx", "torch")


def seed_range(manifest_extra: dict[str, Any], split: str) -> tuple[int, int]:
    """Renderer seeds ``[first, end)`` of ``split``: the manifest's record, else the defaults."""
    recorded = manifest_extra.get("dataset", {}).get("seed_ranges", {}).get(split)
    if recorded:
        return int(recorded[0]), int(recorded[1])
    first = SPLIT_SEED_BASE[split]
    return first, first + DEFAULT_COUNTS[split]


def domain_from(description: str) -> Domain | None:
    """Invert :meth:`Domain.describe` (``all``, ``all but a, b``; else the classic renderer)."""
    if description == "all":
        return Domain()
    if description.startswith(_ALL_BUT):
        return Domain.of(exclude=[n.strip() for n in description[len(_ALL_BUT) :].split(",")])
    return None


def regenerate(
    manifest_extra: dict[str, Any], split: str, out: Path, first: int, count: int
) -> list[Path]:
    """Render ``count`` images of ``split`` from seed ``first`` as the model's data set was."""
    record = manifest_extra.get("dataset", {})
    render = record.get("render_size", [640, 480])
    stored = record.get("stored_size", [320, 240])
    generate(
        out,
        {split: count},
        width=int(stored[0]),
        height=int(stored[1]),
        render_width=int(render[0]),
        render_height=int(render[1]),
        jpeg_quality=int(record.get("jpeg_quality", 90)),
        domain=domain_from(str(record.get("domain", "classic"))),
        seed_offset=first - SPLIT_SEED_BASE[split],
        min_visible_share=float(record.get("min_visible_share", MIN_VISIBLE_SHARE)),
        max_scenes=int(record.get("max_scenes", 1)),  # sets made before the rule tried one
    )
    return [s.path for s in list_samples(out / split)]


def environment() -> dict[str, Any]:
    """Library versions and the machine: what a figure depends on besides the code."""
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "packages": versions,
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }


def fingerprint(paths: Sequence[Path]) -> str:
    """sha256 over the files' own hashes: tells whether two runs rendered the same images."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def measure(
    int8: Evaluation, fp32: Evaluation, *, split: str, seeds: tuple[int, int]
) -> dict[str, Any]:
    """The manifest's ``metrics``: both models, their agreement, and how calibrated int8 is."""
    p_dirty = np.asarray(int8.dirty_probabilities)
    ece = expected_calibration_error(np.stack([1.0 - p_dirty, p_dirty], axis=1), int8.labels)
    return {
        "split": split,
        "seeds": list(seeds),
        "fp32": fp32.metrics(),
        "int8": {**int8.metrics(), "expected_calibration_error": round(ece, 4)},
        "int8_vs_fp32": agreement(int8, fp32),
    }


def uncertainty(model: Path, samples: Sequence[Sample], threads: int) -> dict[str, Any] | None:
    """How ``uncertain`` separates errors from right verdicts (models.calibrate's measure), if
    the manifest calibrates and scores out-of-distribution images."""
    from models.calibrate import measure as measure_uncertainty

    classifier = OnnxClassifier(model, threads=threads)
    try:
        manifest = classifier.manifest
        if manifest.calibration is None or manifest.ood is None:
            return None
        outputs = model_outputs(classifier, [s.path for s in samples])
    finally:
        classifier.close()
    labels = np.asarray([s.label for s in samples], dtype=np.int64)
    return measure_uncertainty(
        manifest.calibration, manifest.ood, outputs.logits, outputs.features, labels
    )


def slice_record(int8: Evaluation, paths: Sequence[Path], first_seed: int) -> dict[str, Any]:
    """The figures on the first images of the split (the test's reproduction target)."""
    metrics = int8.metrics()
    return {
        "seeds": [first_seed, first_seed + len(paths)],
        "images": metrics["images"],
        "accuracy": metrics["accuracy"],
        "confusion_matrix": metrics["confusion_matrix"],
        "data_sha256": fingerprint(paths),
    }


def card_block(report: dict[str, Any]) -> str:
    """The model card's metrics section, every figure from ``report``."""
    metrics = report["metrics"]
    fp32, int8, agree = metrics["fp32"], metrics["int8"], metrics["int8_vs_fp32"]
    env = report["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    first, end = metrics["seeds"]
    lines = [
        f"Measured by `{report['command']}` on {report['date']}: the {metrics['split']} split "
        f"regenerated from renderer seeds {first}-{end - 1} (renderer domain: "
        f"{report['dataset'].get('domain', 'classic galvanised renderer')}; {int8['images']} "
        f"images, fingerprint `{report['data_sha256'][:16]}`), through the runtime's own path.",
        "",
        f"| | fp32 ({report['fp32_source']}) | int8 (shipped) |",
        "|---|---|---|",
        f"| accuracy | {fp32['accuracy']} | **{int8['accuracy']}** |",
        f"| dirty precision | {fp32['dirty_precision']} | {int8['dirty_precision']} |",
        f"| dirty recall | {fp32['dirty_recall']} | {int8['dirty_recall']} |",
        "| confusion (rows true clean/dirty, cols predicted clean/dirty) "
        f"| {fp32['confusion_matrix']} | {int8['confusion_matrix']} |",
        "",
        f"int8 vs fp32 on the same images: labels agree on {agree['label_agreement']:.2%}, mean "
        f"|p(dirty) difference| {agree['mean_abs_dirty_probability_diff']}, max "
        f"{agree['max_abs_dirty_probability_diff']}. int8 expected calibration error "
        f"(15 bins): {int8['expected_calibration_error']}.",
        "",
        *_uncertainty_lines(metrics.get("uncertainty")),
        f"Machine: {env['cpu']} ({env['cpu_count']} CPUs, {env['machine']}), {env['system']}; "
        f"Python {env['python']}, {packages}.",
    ]
    return "\n".join(lines) + "\n"


def _uncertainty_lines(record: dict[str, Any] | None) -> list[str]:
    if not record:
        return []

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    return [
        f"Uncertain verdicts on the same images: {share(record['errors_flagged'])} of the "
        f"{record['errors']} errors and {share(record['correct_flagged'])} of the right verdicts "
        f"flagged ({record['flagged_by_band']} by the band, {record['flagged_by_ood']} more as "
        f"out of distribution); accuracy on the {record['decided']} decided images "
        f"{record['accuracy_decided']}. Expected calibration error {record['ece_raw']} raw, "
        f"{record['ece_calibrated']} calibrated.",
        "",
    ]


def replace_card_block(card: Path, block: str) -> None:
    text = card.read_text(encoding="utf-8")
    if CARD_BEGIN not in text or CARD_END not in text:
        raise ValueError(f"{card}: no {CARD_BEGIN} ... {CARD_END} block to replace")
    head, rest = text.split(CARD_BEGIN, 1)
    _, tail = rest.split(CARD_END, 1)
    card.write_text(f"{head}{CARD_BEGIN}\n{block}{CARD_END}{tail}", encoding="utf-8")


def run_report(
    model: Path,
    out: Path,
    *,
    fp32_model: Path | None = None,
    split: str = "test",
    images: int = 0,
    threads: int = 2,
    command: str = "python -m models.report",
    dataset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Regenerate ``split``, measure, write ``OUT/report.json`` and the card block; returns it.

    ``dataset`` (a generator's ``dataset.json``) overrides the manifest's ``extra.dataset``.
    """
    from models.dequantize import fp32_twin

    started = time.monotonic()
    manifest = load_manifest(manifest_path_for(model))
    extra = manifest.extra if dataset is None else {**manifest.extra, "dataset": dataset}
    dataset_from = (
        "--dataset"
        if dataset is not None
        else "manifest"
        if "dataset" in manifest.extra
        else "none: classic renderer, default seeds"
    )
    first, end = seed_range(extra, split)
    if images:
        end = first + images
    data = out / "data"
    out.mkdir(parents=True, exist_ok=True)
    regenerate(extra, split, data, first, end - first)
    samples = list_samples(data / split)
    int8 = evaluate(model, samples, threads=threads)
    with tempfile.TemporaryDirectory() as scratch:
        if fp32_model is None:
            fp32_source = "twin rebuilt from the int8 graph"
            twin = fp32_twin(model, Path(scratch) / "fp32_twin.onnx")
            write_manifest(
                replace(manifest, model_file=twin.name, sha256=sha256_file(twin)),
                manifest_path_for(twin),
            )
            fp32 = evaluate(twin, samples, threads=threads)
        else:
            fp32_source = fp32_model.name
            fp32 = evaluate(fp32_model, samples, threads=threads)
    seeds = (first, end)
    paths = [s.path for s in samples]
    by_seed = sorted(range(len(samples)), key=lambda i: paths[i].name)[:SLICE_IMAGES]
    head = Evaluation(
        tuple(int8.labels[i] for i in by_seed),
        tuple(int8.predictions[i] for i in by_seed),
        tuple(int8.dirty_probabilities[i] for i in by_seed),
    )
    metrics = measure(int8, fp32, split=split, seeds=seeds)
    uncertain = uncertainty(model, samples, threads)
    if uncertain is not None:
        metrics["uncertainty"] = {**uncertain, "data": command}
    report: dict[str, Any] = {
        "command": command,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "model": model.name,
        "model_sha256": manifest.sha256,
        "fp32_source": fp32_source,
        "dataset": extra.get("dataset", {}),
        "dataset_from": dataset_from,
        "metrics": metrics,
        "data_sha256": fingerprint(paths),
        "slice": slice_record(head, [paths[i] for i in by_seed], first),
        "environment": environment(),
        "seconds": 0.0,
    }
    report["seconds"] = round(time.monotonic() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "model_card_metrics.md").write_text(card_block(report), encoding="utf-8")
    return report


def write_to_manifest(model: Path, report: dict[str, Any], sign_key: Path | None = None) -> bool:
    """Merge the report's metrics into the manifest, every other key kept as it is.

    Signs the manifest again with ``sign_key``; returns True when a signature went stale
    (the manifest was signed and no key was given).
    """
    from agent.models.signing import (
        load_private_key,
        read_manifest_json,
        sign_manifest,
        write_manifest_json,
    )

    path = manifest_path_for(model)
    load_manifest(path)  # refuse an invalid manifest before touching it
    data = read_manifest_json(path)
    data["metrics"] = {
        **data.get("metrics", {}),
        **report["metrics"],
        "reproduce": {
            "command": report["command"],
            "date": report["date"],
            "fp32": report["fp32_source"],
            "data_sha256": report["data_sha256"],
            "slice": report["slice"],
            "environment": report["environment"],
        },
    }
    if report["dataset_from"] == "--dataset":  # later runs (and the test) render the same
        data["extra"] = {**data.get("extra", {}), "dataset": report["dataset"]}
    was_signed = "signature" in data
    if sign_key is not None:
        data = sign_manifest(data, load_private_key(sign_key))
    write_manifest_json(data, path)
    return was_signed and sign_key is None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.report", description=__doc__)
    parser.add_argument("--model", type=Path, default=shipped_model_path())
    parser.add_argument("--out", type=Path, default=Path("build/report"))
    parser.add_argument("--fp32", type=Path, help="the real fp32 model (default: rebuilt twin)")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--images", type=int, default=0, help="first N seeds only (default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="record the metrics in the manifest")
    parser.add_argument("--card", type=Path, help="model card whose report block to replace")
    parser.add_argument(
        "--sign-key", type=Path, help="with --write: sign the manifest again with this key"
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="DATASET_JSON",
        help="the generator's record (DATA/dataset.json) of the model's data set, when the "
        "manifest has none (extra.dataset); --write stores it there",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = " ".join([parser.prog, *(argv if argv is not None else sys.argv[1:])])
    return run(lambda: _main(args, command), parser.prog)


def _main(args: argparse.Namespace, command: str) -> int:
    dataset = None
    if args.dataset is not None:
        dataset = json.loads(args.dataset.read_text(encoding="utf-8"))
        if not isinstance(dataset, dict) or "seed_ranges" not in dataset:
            raise ValueError(f"{args.dataset}: not a generator record (no seed_ranges)")
    report = run_report(
        args.model,
        args.out,
        fp32_model=args.fp32,
        split=args.split,
        images=args.images,
        threads=args.threads,
        command=command,
        dataset=dataset,
    )
    if args.write and write_to_manifest(args.model, report, args.sign_key):
        print(
            f"{args.model}: metrics written, the manifest's signature is now stale: "
            f"remotair model sign {args.model} --key KEY --version N (or --sign-key KEY)",
            file=sys.stderr,
        )
    if args.card:
        replace_card_block(args.card, card_block(report))
    print(json.dumps({k: report[k] for k in ("metrics", "data_sha256", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
