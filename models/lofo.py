"""Leave-one-family-out: train without a renderer family, test on images made only of it.

No real duct set is public, so generalisation is measured the honest way the renderer allows:
for each deposit kind and each duct material, a model is trained on every image that does not
show it (``looks.json`` of a generated set says which families each image shows) and tested on a
held-out set rendered with that family only (``python -m models.dataset DIR --include FAMILY``).

The runs are smaller than a shipped model's so that a whole matrix fits a 2-core CPU: each starts
from the same warm-started network (``--init-from``: a model that never saw the randomised
renderer), fine-tunes every layer as models.train does (camera augmentations unless
``--no-augment``; the deposit-map loss where the set has masks; ``--pool``; ``--bf16``;
``--synthetic-dirt``) on a
balanced subset of ``--train-images`` images less those that show the held-out families, at
``--input-size`` (default 72 x 96, a quarter of the shipped model's pixels), for ``--epochs``
epochs. ``--families dust+galvanised rust`` runs one model per entry, holding out every family of
an entry at once (fewer runs; each family still held out once). Each run is calibrated like the
shipped model (temperature and uncertain band on its validation images, out-of-distribution
statistics on its training features) and reports accuracy and the uncertain verdicts' rates on
each held-out family and on its own validation images, with the family's ranking AUC and its
accuracy at the best threshold in hindsight (a family ranked well but called wrongly was missed by
the threshold; one ranked badly, by the features) and the images it called wrongly, the most
confident first (``python -m models.missed_sheet`` draws them); a first run holds nothing out
(unless ``--no-baseline``). ``--measure MODEL`` instead measures an existing ONNX model on every
held-out family.

``python -m models.lofo build/data build/heldout --init-from PREVIOUS.onnx --out build/lofo.json``
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agent.vision import LABELS
from agent.vision.calibration import fit_calibration, softmax, uncertainty_report
from agent.vision.ood import fit_ood
from models.batches import (
    TRAIN_ZOOM,
    batch_loss,
    class_weights,
    image_batch,
    load_images,
    training_views,
)
from models.cli import run as run_tool
from models.dataset import LOOKS_FILE
from models.deposit_maps import DepositHead, training_masks
from models.folders import DatasetError, Sample, list_samples, resolve_splits
from models.frozen_stem import one_cycle
from models.resnet import POOLS, Pool, ResNet, build_model
from models.train_options import parse_size, share
from models.warm_start import load_shipped_weights, recalibrate_batchnorm

logger = logging.getLogger(__name__)

SIZE = (72, 96)
"""Input of the leave-one-out runs: a quarter of the shipped model's pixels (see the docstring)."""


def fine_tune(
    base: ResNet,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    size: tuple[int, int],
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    masks: Sequence[np.ndarray | None] | None = None,
    bf16: bool = False,
    augment: bool = True,
    synthetic_dirt: float = 0.0,
) -> ResNet:
    """Every layer of a copy of ``base`` trained on ``images`` as models.train does (camera
    augmentations unless ``augment`` is off; with ``masks``, the deposit-map loss of
    :mod:`models.deposit_maps`; ``synthetic_dirt`` as models.train's)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(base)
    head = DepositHead() if masks is not None else None
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(labels, synthetic_dirt))
    trained = nn.ModuleList([model] if head is None else [model, head])
    step = one_cycle(
        trained,
        lr=lr,
        weight_decay=1e-4,
        epochs=epochs,
        per_epoch=len(labels),
        batch_size=batch_size,
    )
    for _ in range(epochs):
        trained.train()
        order = rng.permutation(len(labels))
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            if len(indices) < 2:
                continue
            views = training_views(
                images, masks, indices, size, rng, augment, labels, synthetic_dirt
            )
            step(batch_loss(model, head, views, loss_fn, bf16)[0])
    return model.eval()


def outputs(
    model: ResNet, images: Sequence[np.ndarray], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and penultimate features of plain (centre-crop) views."""
    model.eval()
    logits, features = [], []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            batch = image_batch(images, np.arange(start, min(start + 64, len(images))), size, None)
            f = model.features(batch)
            features.append(f)
            logits.append(model.fc(f))
    return torch.cat(logits).numpy(), torch.cat(features).numpy()


def _every_nth(samples: Sequence[Sample], wanted: int) -> list[Sample]:
    """About ``wanted`` samples spread over the set, as many of each label."""
    picked: list[Sample] = []
    for label in range(len(LABELS)):
        of_label = sorted((s for s in samples if s.label == label), key=lambda s: s.path.name)
        share = max(1, wanted // len(LABELS))
        picked += of_label[:: max(1, len(of_label) // share)][:share]
    return picked


def _families_of(root: Path, samples: Sequence[Sample]) -> list[set[str]]:
    """The families each sample shows, from the set's ``looks.json``. An image it does not list
    (a split copied in from another set) is refused: counted as showing nothing, it would stay in
    a run that holds its families out."""
    path = root / LOOKS_FILE
    try:
        looks = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: missing; leave-out runs need a set made by models.dataset"
        ) from None
    names = [s.path.relative_to(root).as_posix() for s in samples]
    missing = [name for name in names if name not in looks]
    if missing:
        raise DatasetError(
            f"{path}: {len(missing)} images not listed (first {missing[0]}); "
            "copy their entries in with the images"
        )
    return [set(looks[name]) for name in names]


Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Logits, features and labels of a set of images."""


def ranking_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for dirty (1) against clean (0), ties counted half:
    how well a run orders the ducts whatever its threshold. A held-out family it ranks well but
    calls wrongly was missed by the threshold, not by the features. None without both labels."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    dirty_count, clean_count = int((y == 1).sum()), int((y == 0).sum())
    if not dirty_count or not clean_count:
        return None
    # Mann-Whitney: the dirty scores' rank sum, tied scores sharing their mean rank.
    _values, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse.reshape(-1)][y == 1].sum())
    above = rank_sum - dirty_count * (dirty_count + 1) / 2.0
    return round(above / (dirty_count * clean_count), 4)


def hindsight_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy at the threshold that suits these very images best, chosen knowing their labels:
    the ceiling of any re-calibration of a run on a family, not a figure a run could claim."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    cuts = np.append(np.unique(s), np.inf)
    dirty, clean = np.sort(s[y == 1]), np.sort(s[y == 0])
    # At each cut: the dirty scores at or above it plus the clean ones below it are right.
    right = dirty.size - np.searchsorted(dirty, cuts) + np.searchsorted(clean, cuts)
    return round(float(right.max()) / max(1, s.size), 4)


def missed(
    p_dirty: np.ndarray, labels: np.ndarray, names: Sequence[str], threshold: float = 0.5
) -> list[dict[str, Any]]:
    """The images called wrongly at ``threshold``, the most confidently wrong first: what a reader
    must see to tell a run that missed faint deposits from one blind to plain ones
    (``python -m models.missed_sheet`` draws them)."""
    wrong = np.flatnonzero((p_dirty >= threshold).astype(np.int64) != labels)
    by_confidence = wrong[np.argsort(-np.abs(p_dirty[wrong] - threshold), kind="stable")]
    return [
        {"image": names[i], "label": LABELS[int(labels[i])], "p_dirty": round(float(p_dirty[i]), 4)}
        for i in by_confidence
    ]


def evaluate_run(
    train: Outputs, val: Outputs, test: Outputs, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Calibrate on ``val`` (OOD statistics on ``train``), then measure on ``test``; with the test
    images' ``names``, list the ones called wrongly (``missed``, see :func:`missed`)."""
    calibration = fit_calibration(val[0], val[2])
    ood = fit_ood(train[1], train[2], val[1])
    p_dirty = softmax(test[0], calibration.temperature)[:, 1]
    report: dict[str, Any] = uncertainty_report(
        p_dirty, test[2], band=calibration.uncertain_band, out_of_distribution=ood.is_out(test[1])
    )
    predicted = (p_dirty >= 0.5).astype(np.int64)
    report["confusion_matrix"] = [
        [int(((test[2] == t) & (predicted == p)).sum()) for p in range(2)] for t in range(2)
    ]
    report["auc"] = ranking_auc(p_dirty, test[2])
    report["hindsight_accuracy"] = hindsight_accuracy(p_dirty, test[2])
    if names is not None:
        report["missed"] = missed(p_dirty, test[2], names)
    report["val_accuracy"] = round(float((val[0].argmax(1) == val[2]).mean()), 4)
    report["train_accuracy"] = round(float((train[0].argmax(1) == train[2]).mean()), 4)
    return report


def run(
    data_dir: Path,
    heldout_dir: Path,
    init_from: Path,
    groups: Sequence[Sequence[str]],
    *,
    epochs: int,
    lr: float,
    seed: int,
    threads: int,
    train_images_wanted: int,
    val_images_wanted: int = 400,
    heldout_images_wanted: int = 200,
    size: tuple[int, int] = SIZE,
    bf16: bool = False,
    augment: bool = True,
    synthetic_dirt: float = 0.0,
    pool: Pool = "avg",
    baseline: bool = True,
) -> dict[str, Any]:
    """One run per group of families (all of a group held out at once, each tested on its own
    held-out set), after a baseline run that holds nothing out (unless ``baseline`` is off)."""
    torch.set_num_threads(threads)
    started = time.monotonic()
    families = [name for group in groups for name in group]
    splits = resolve_splits(data_dir)
    train_samples = _every_nth(splits["train"], train_images_wanted)
    train_images, train_labels = load_images(train_samples, size, TRAIN_ZOOM)
    train_masks = training_masks(data_dir, train_samples, [i.shape for i in train_images])
    train_families = _families_of(data_dir, train_samples)
    val_samples = _every_nth(splits["val"], val_images_wanted)
    val_images, val_labels = load_images(val_samples, size)
    val_families = _families_of(data_dir, val_samples)
    heldout: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    heldout_names: dict[str, list[str]] = {}
    for name in families:
        samples = _every_nth(list_samples(heldout_dir / name / "test"), heldout_images_wanted)
        heldout[name] = load_images(samples, size)
        heldout_names[name] = [s.path.relative_to(heldout_dir).as_posix() for s in samples]
    base = build_model("resnet18", len(LABELS), pool)
    load_shipped_weights(base, init_from)
    probe = [
        image_batch(train_images, np.arange(i, min(i + 32, len(train_images))), size, None)
        for i in range(0, min(128, len(train_images)), 32)
    ]
    recalibrate_batchnorm(base, probe)

    results: dict[str, Any] = {}
    runs: list[tuple[str, ...]] = ([()] if baseline else []) + [tuple(g) for g in groups]
    for group in runs:
        run_started = time.monotonic()
        keep = np.flatnonzero([not f.intersection(group) for f in train_families])
        keep_val = np.flatnonzero([not f.intersection(group) for f in val_families])
        images = [train_images[i] for i in keep]
        model = fine_tune(
            base,
            images,
            train_labels[keep],
            size=size,
            epochs=epochs,
            lr=lr,
            seed=seed,
            masks=None if train_masks is None else [train_masks[i] for i in keep],
            bf16=bf16,
            augment=augment,
            synthetic_dirt=synthetic_dirt,
        )
        train_out = (*outputs(model, images, size), train_labels[keep])
        val_out = (*outputs(model, [val_images[i] for i in keep_val], size), val_labels[keep_val])
        names = group or list(heldout)
        row = {
            name: evaluate_run(
                train_out,
                val_out,
                (*outputs(model, heldout[name][0], size), heldout[name][1]),
                heldout_names[name],
            )
            for name in names
        }
        key = "+".join(group) or "none held out"
        results[key] = {
            "train_images": len(keep),
            "val_images": len(keep_val),
            "seconds": round(time.monotonic() - run_started, 1),
            "results": row,
        }
        shown = {name: {k: v for k, v in r.items() if k != "missed"} for name, r in row.items()}
        print(f"{key}: {json.dumps({**results[key], 'results': shown})}", flush=True)
    return {
        "init_from": str(init_from),
        "groups": ["+".join(g) for g in groups],
        "recipe": "every layer fine-tuned from the warm start"
        + (", camera augmentations" if augment else ", crop/flip/brightness only")
        + (", deposit maps" if train_masks is not None else "")
        + (f", synthetic dirt on {synthetic_dirt:.0%} of clean views" if synthetic_dirt else "")
        + f", {pool} pooling"
        + (", bfloat16" if bf16 else ""),
        "input_size": list(size),
        "epochs": epochs,
        "lr": lr,
        "train_images": len(train_samples),
        "val_images": len(val_samples),
        "heldout_images": {name: len(pair[1]) for name, pair in heldout.items()},
        "seed": seed,
        "threads": threads,
        "seconds": round(time.monotonic() - started, 1),
        "runs": results,
    }


def measure_model(
    model: Path, heldout_dir: Path, families: Sequence[str], *, images: int, threads: int
) -> dict[str, Any]:
    """A shipped (ONNX) model on each family's held-out set, through the runtime's path, with
    the uncertain verdict of its own manifest (not a leave-one-out run: a reference row)."""
    from agent.vision.features import model_outputs
    from agent.vision.onnx_backend import OnnxClassifier
    from models.calibrate import manifest_verdicts

    classifier = OnnxClassifier(model, threads=threads)
    manifest = classifier.manifest
    rows: dict[str, Any] = {}
    try:
        for name in families:
            samples = _every_nth(list_samples(heldout_dir / name / "test"), images)
            out = model_outputs(classifier, [s.path for s in samples])
            logits, features = out.logits, out.features
            labels = np.asarray([s.label for s in samples])
            p_dirty, rows[name] = manifest_verdicts(manifest, logits, features, labels)
            print(f"{name}: {json.dumps(rows[name])}", flush=True)
            names = [s.path.relative_to(heldout_dir).as_posix() for s in samples]
            rows[name]["missed"] = missed(p_dirty, labels, names, manifest.decision_threshold)
    finally:
        classifier.close()
    return {"model": manifest.model_id, "images_per_family": images, "results": rows}


def main(argv: Sequence[str] | None = None) -> int:
    from hil.render_domain import DEPOSITS, MATERIALS

    parser = argparse.ArgumentParser(prog="python -m models.lofo", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="generated set with looks.json")
    parser.add_argument("heldout_dir", type=Path, help="one generated set per family")
    parser.add_argument("--init-from", type=Path, help="ONNX model to start from")
    parser.add_argument(
        "--measure",
        type=Path,
        metavar="MODEL",
        help="only measure this ONNX model on each held-out family (no training)",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        default=[*DEPOSITS, *MATERIALS],
        metavar="FAMILY[+FAMILY]",
        help="one run per entry; dust+galvanised holds both out in one run (default: each alone)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--train-images", type=int, default=1000, help="training images per run (a subset)"
    )
    parser.add_argument("--val-images", type=int, default=400)
    parser.add_argument("--input-size", type=parse_size, default=SIZE, metavar="HxW")
    parser.add_argument("--heldout-images", type=int, default=200, help="per held-out family")
    parser.add_argument("--bf16", action="store_true", help="train in bfloat16 (see models.train)")
    parser.add_argument("--pool", choices=POOLS, default="avg", help="as models.train --pool")
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false", help="as models.train --no-augment"
    )
    parser.add_argument(
        "--synthetic-dirt",
        type=share,
        default=0.0,
        metavar="SHARE",
        help="as models.train --synthetic-dirt",
    )
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the run that holds nothing out",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    groups = [tuple(entry.split("+")) for entry in args.families]
    unknown = sorted({name for group in groups for name in group} - {*DEPOSITS, *MATERIALS})
    if unknown:
        parser.error(f"unknown families {unknown}; expected some of {[*DEPOSITS, *MATERIALS]}")
    if args.measure is None and args.init_from is None:
        parser.error("--init-from is required to train")
    return run_tool(lambda: _main(args, groups), parser.prog)


def _main(args: argparse.Namespace, groups: list[tuple[str, ...]]) -> int:
    if args.measure is not None:
        measured = measure_model(
            args.measure,
            args.heldout_dir,
            [name for group in groups for name in group],
            images=args.heldout_images,
            threads=args.threads,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
        return 0
    result = run(
        args.data_dir,
        args.heldout_dir,
        args.init_from,
        groups,
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        train_images_wanted=args.train_images,
        size=args.input_size,
        val_images_wanted=args.val_images,
        heldout_images_wanted=args.heldout_images,
        bf16=args.bf16,
        augment=args.augment,
        synthetic_dirt=args.synthetic_dirt,
        pool=args.pool,
        baseline=args.baseline,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
