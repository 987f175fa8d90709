"""``remotair label``: a technician's on-site judgement becomes training data.

The images are copied into the folder-per-label layout that ``remotair dataset export`` and the
training pipeline read (``DIR/clean/``, ``DIR/dirty/``), each with a ``.label.json`` sidecar
saying who judged it, when, on which device, and where the image came from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import cv2

from agent.cli.options import add_config_argument, load
from agent.cli.output import add_json_argument, print_json, print_table
from agent.errors import ExitCode, RemotairError
from agent.vision import LABELS
from models.folders import IMAGE_EXTENSIONS

SIDECAR_SUFFIX = ".label.json"


class LabelError(RemotairError):
    """An argument the command cannot use (not an image, a conflicting earlier label)."""

    exit_code = ExitCode.USAGE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "label",
        help="file snapshots as clean or dirty training data",
        description="Copy IMAGE files into DATASET/clean/ or DATASET/dirty/ (the layout"
        " 'remotair dataset export' reads) with a .label.json sidecar: label, who, when, device,"
        " source file, sha256, and the snapshot's own metadata when its .json sidecar is there."
        " An image already filed under the other label is refused unless --relabel moves it.",
        epilog="example: remotair label /var/lib/remotair/snapshots/upstream-2026*.jpg dirty"
        " --dataset ~/field-set",
    )
    add_config_argument(p)
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("label", choices=LABELS, help="the technician's judgement")
    p.add_argument("--dataset", type=Path, required=True, metavar="DIR", help="dataset root")
    p.add_argument("--by", default=None, help="who judged (default: the login name)")
    p.add_argument("--relabel", action="store_true", help="move images filed under another label")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    images: list[Path] = args.images
    for image in images:
        _check_image(image)
    device = load(args).device.id
    who = args.by or os.environ.get("SUDO_USER") or getpass.getuser()
    results = [label_image(i, args.label, args.dataset, who, device, args.relabel) for i in images]
    if args.json:
        print_json({"dataset": str(args.dataset), "label": args.label, "images": results})
    else:
        print_table(
            ["IMAGE", "FILED AS", "ACTION"],
            [[r["source"], r["file"], r["action"]] for r in results],
        )
    return ExitCode.OK


def _check_image(path: Path) -> None:
    if not path.is_file():
        raise LabelError(f"{path}: no such file")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise LabelError(
            f"{path}: not an image file (expected {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    if cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        raise LabelError(f"{path}: cannot be decoded as an image (damaged or not an image)")


def label_image(
    image: Path, label: str, dataset: Path, who: str, device: str, relabel: bool
) -> dict[str, Any]:
    """File one image; identical content already filed is not copied twice."""
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    action = "copied"
    for other in LABELS:
        previous = _find(dataset / other, digest)
        if previous is None:
            continue
        if other == label:
            return {"source": str(image), "file": str(previous), "action": "already filed"}
        if not relabel:
            raise LabelError(
                f"{image}: already filed as {other} ({previous}); use --relabel to move it"
            )
        previous.unlink()
        _sidecar(previous).unlink(missing_ok=True)
        action = f"moved from {other}"
    for name in LABELS:  # both folders, so that 'dataset export' accepts the set at once
        (dataset / name).mkdir(parents=True, exist_ok=True)
    folder = dataset / label
    target = _free_name(folder, image.name)
    shutil.copy2(image, target)
    metadata: dict[str, Any] = {
        "label": label,
        "labelled_by": who,
        "labelled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": device,
        "source": str(image.resolve()),
        "sha256": digest,
    }
    snapshot_sidecar = image.with_suffix(".json")
    if snapshot_sidecar.is_file():
        try:
            metadata["snapshot"] = json.loads(snapshot_sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metadata["snapshot"] = None
    _sidecar(target).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return {"source": str(image), "file": str(target), "action": action}


def _sidecar(image: Path) -> Path:
    return image.with_name(image.stem + SIDECAR_SUFFIX)


def _find(folder: Path, digest: str) -> Path | None:
    """An image in ``folder`` with this content, found through the sidecars' recorded hash."""
    if not folder.is_dir():
        return None
    for sidecar in folder.glob(f"*{SIDECAR_SUFFIX}"):
        try:
            recorded = json.loads(sidecar.read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError):
            continue
        if recorded == digest:
            image_stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
            for candidate in folder.glob(f"{image_stem}.*"):
                if candidate.suffix.lower() in IMAGE_EXTENSIONS:
                    return candidate
    return None


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix = target.stem, target.suffix
    n = 1
    while target.exists():
        target = folder / f"{stem}-{n}{suffix}"
        n += 1
    return target
