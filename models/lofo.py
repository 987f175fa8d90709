"""Leave-one-family-out: train without a renderer family, test on images made only of it.

No real duct set is public, so generalisation is measured the honest way the renderer allows:
for each deposit kind and each duct material, a model is trained on every image that does not
show it (``looks.json`` of a generated set says which families each image shows) and tested on a
held-out set rendered with that family only (``python -m models.dataset DIR --include FAMILY``).

The runs are smaller than the shipped model's so that fifteen of them fit a shared 2-core CPU.
All start from the same warm-started network (``--init-from``: the previous shipped model, which
never saw the randomised renderer), keep everything up to ``layer4.0`` frozen, and train
``layer4.1`` and the head on maps of those frozen layers computed once (one camera-augmented view
of each of ``--train-images`` training images, plus its mirror image) for ``--epochs`` epochs.
The shipped model trains all of ``layer4`` the same way on every training image
(``models.train --freeze-stem``). Each run is calibrated like the shipped model (temperature and
uncertain band on its validation images, out-of-distribution statistics on its training features)
and reports accuracy and the uncertain verdicts' rates on its held-out family.

``python -m models.lofo build/data build/heldout --init-from models/visual_clean_resnet18_int8.onnx
--out build/lofo/lofo.json``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.vision import LABELS
from agent.vision.calibration import fit_calibration, fit_ood, softmax, uncertainty_report
from models.dataset import LOOKS_FILE
from models.folders import Sample, list_samples, resolve_splits
from models.frozen_stem import Head, head_outputs, stem_features, train_head, with_mirrors
from models.resnet import ResNet, build_model
from models.train import TRAIN_ZOOM, _batch, load_images
from models.warm_start import load_shipped_weights, recalibrate_batchnorm

logger = logging.getLogger(__name__)

SIZE = (144, 192)
FROZEN_BLOCKS = 1
"""Leave-one-out runs also freeze the first block of ``layer4`` (half its cost): see the module
docstring."""


def _stems(
    model: ResNet, images: Sequence[np.ndarray], rng: np.random.Generator | None
) -> torch.Tensor:
    chunks = [np.arange(i, min(i + 64, len(images))) for i in range(0, len(images), 64)]
    batches = [_batch(images, chunk, SIZE, rng, rng is not None) for chunk in chunks]
    return stem_features(model, batches, FROZEN_BLOCKS)


def _every_nth(samples: Sequence[Sample], wanted: int) -> list[Sample]:
    """About ``wanted`` samples spread over the set, in seed order (labels alternate by seed,
    so the subset stays balanced)."""
    ordered = sorted(samples, key=lambda s: s.path.name)
    return ordered[:: max(1, len(ordered) // max(1, wanted))][:wanted]


def _families_of(root: Path, samples: Sequence[Sample]) -> list[set[str]]:
    looks = json.loads((root / LOOKS_FILE).read_text(encoding="utf-8"))
    return [set(looks.get(s.path.relative_to(root).as_posix(), [])) for s in samples]


def evaluate_run(
    head: Head,
    train: tuple[torch.Tensor, np.ndarray],
    val: tuple[torch.Tensor, np.ndarray],
    test: tuple[torch.Tensor, np.ndarray],
) -> dict[str, Any]:
    """Calibrate on ``val`` (OOD statistics on ``train``), then measure on ``test``."""
    train_logits, train_features = head_outputs(head, train[0])
    val_logits, val_features = head_outputs(head, val[0])
    test_logits, test_features = head_outputs(head, test[0])
    calibration = fit_calibration(val_logits, val[1])
    ood = fit_ood(train_features, train[1], val_features)
    p_dirty = softmax(test_logits, calibration.temperature)[:, 1]
    report: dict[str, Any] = uncertainty_report(
        p_dirty,
        test[1],
        band=calibration.uncertain_band,
        out_of_distribution=ood.is_out(test_features),
    )
    predicted = (p_dirty >= 0.5).astype(np.int64)
    report["confusion_matrix"] = [
        [int(((test[1] == t) & (predicted == p)).sum()) for p in range(2)] for t in range(2)
    ]
    report["val_accuracy"] = round(float((val_logits.argmax(1) == val[1]).mean()), 4)
    report["train_accuracy"] = round(float((train_logits.argmax(1) == train[1]).mean()), 4)
    return report


def run(
    data_dir: Path,
    heldout_dir: Path,
    init_from: Path,
    families: Sequence[str],
    *,
    epochs: int,
    lr: float,
    seed: int,
    threads: int,
    train_images_wanted: int,
    val_images_wanted: int = 400,
    heldout_images_wanted: int = 200,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    started = time.monotonic()
    splits = resolve_splits(data_dir)
    # Every n-th training image: a smaller run, still balanced (labels alternate by seed).
    train_samples = _every_nth(splits["train"], train_images_wanted)
    train_images, train_labels = load_images(train_samples, SIZE, TRAIN_ZOOM)
    val_samples = _every_nth(splits["val"], val_images_wanted)
    val_images, val_labels = load_images(val_samples, SIZE)
    base = build_model("resnet18", len(LABELS))
    probe = [
        _batch(train_images, np.arange(i, min(i + 32, len(train_images))), SIZE, None)
        for i in range(0, min(128, len(train_images)), 32)
    ]
    load_shipped_weights(base, init_from)
    recalibrate_batchnorm(base, probe)
    rng = np.random.default_rng(seed)
    train_stems, train_labels = with_mirrors(_stems(base, train_images, rng), train_labels)
    train_families = _families_of(data_dir, train_samples) * 2
    val_stems = _stems(base, val_images, None)
    val_families = _families_of(data_dir, val_samples)
    heldout: dict[str, tuple[torch.Tensor, np.ndarray]] = {}
    for name in families:
        samples = _every_nth(list_samples(heldout_dir / name / "test"), heldout_images_wanted)
        images, labels = load_images(samples, SIZE)
        heldout[name] = (_stems(base, images, None), labels)
    cached_s = time.monotonic() - started
    logger.info("lofo features cached seconds=%.0f", cached_s)

    results: dict[str, Any] = {}
    for family in [None, *families]:
        run_started = time.monotonic()
        keep = np.array([family not in f for f in train_families])
        keep_val = np.array([family not in f for f in val_families])
        head = train_head(
            base,
            train_stems[torch.from_numpy(keep)],
            train_labels[keep],
            epochs=epochs,
            lr=lr,
            seed=seed,
            frozen_blocks=FROZEN_BLOCKS,
        )
        train_pair = (train_stems[torch.from_numpy(keep)], train_labels[keep])
        val_pair = (val_stems[torch.from_numpy(keep_val)], val_labels[keep_val])
        if family is None:
            row = {}
            for name, pair in heldout.items():
                row[name] = evaluate_run(head, train_pair, val_pair, pair)
            key = "none held out"
        else:
            row = evaluate_run(head, train_pair, val_pair, heldout[family])
            key = family
        row_seconds = round(time.monotonic() - run_started, 1)
        results[key] = {
            "train_images": int(keep.sum()),
            "val_images": int(keep_val.sum()),
            "seconds": row_seconds,
            **({"result": row} if family is not None else {"results": row}),
        }
        logger.info("lofo family=%s result=%s", key, json.dumps(row)[:300])
        print(f"{key}: {json.dumps(results[key])[:400]}", flush=True)
    return {
        "init_from": str(init_from),
        "families": list(families),
        "epochs": epochs,
        "lr": lr,
        "train_images": len(train_samples),
        "val_images": len(val_samples),
        "heldout_images": {name: len(pair[1]) for name, pair in heldout.items()},
        "frozen": f"conv1 .. layer3 and layer4.0 ({FROZEN_BLOCKS} block of layer4)",
        "seed": seed,
        "threads": threads,
        "feature_cache_seconds": round(cached_s, 1),
        "seconds": round(time.monotonic() - started, 1),
        "runs": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from hil.render_domain import DEPOSITS, MATERIALS

    parser = argparse.ArgumentParser(prog="python -m models.lofo", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="generated set with looks.json")
    parser.add_argument("heldout_dir", type=Path, help="one generated set per family")
    parser.add_argument("--init-from", type=Path, required=True, help="ONNX model to start from")
    parser.add_argument("--families", nargs="+", default=[*DEPOSITS, *MATERIALS])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--train-images", type=int, default=1000, help="training images per run (a subset)"
    )
    parser.add_argument("--val-images", type=int, default=400)
    parser.add_argument("--heldout-images", type=int, default=200, help="per held-out family")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run(
        args.data_dir,
        args.heldout_dir,
        args.init_from,
        args.families,
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        train_images_wanted=args.train_images,
        val_images_wanted=args.val_images,
        heldout_images_wanted=args.heldout_images,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
