"""Labeled image data sets: the synthetic generator, the folder-per-label reader, and the
Rekognition Custom Labels / Ground Truth manifest writer.

The on-disk layout is one folder per label (``clean/``, ``dirty/``), the layout one syncs to S3 for
Rekognition Custom Labels, so field images, synthetic images and the cloud data set are the same
thing. A generated set adds one level of splits: ``DIR/{train,val,calib,test}/{clean,dirty}/``.
Reading such sets (checks, de-duplication, splits) is :mod:`models.folders`.

This module needs numpy and OpenCV only (no torch): the ``remotair dataset`` command uses it on the
board, and the trainer reads images through it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from agent.vision import CLEAN, DIRTY, LABELS
from models.folders import SPLITS, DatasetError, list_samples, resolve_splits

if TYPE_CHECKING:  # the simulator is imported only where images are generated
    from hil.render_domain import Domain

logger = logging.getLogger(__name__)

SPLIT_SEED_BASE: dict[str, int] = {"train": 0, "val": 100_000, "calib": 200_000, "test": 300_000}
"""Renderer seeds of split ``s`` start at ``SPLIT_SEED_BASE[s]``: the splits never share a scene."""

FRESH_SEED_BASE = 1_000_000
"""Seeds from here on are never used by the generator's default splits (images no model saw)."""

DEFAULT_COUNTS: dict[str, int] = {"train": 2000, "val": 400, "calib": 200, "test": 1000}
DEFAULT_ATTRIBUTE = "duct-condition"
DATASET_INFO = "dataset.json"
LOOKS_FILE = "looks.json"
"""Per generated image (path relative to the set): the renderer families it shows."""
EVERY_FAMILY: Literal["every family"] = "every family"
"""What the generator renders by default: every family of the randomised renderer."""


# --- synthetic generation --------------------------------------------------------------------


def dirt_for(seed: int, label: str) -> float:
    """The dirt level of a synthetic sample: inside the clearly-clean or clearly-dirty range.

    The ambiguous band between the renderer's ``CLEAN_MAX_DIRT`` and ``DIRTY_MIN_DIRT`` is left
    out on purpose: there is no right answer there, and training on coin flips teaches nothing.
    """
    from hil.render import CLEAN_MAX_DIRT, DIRTY_MIN_DIRT

    rng = np.random.default_rng([seed, 0xD127])
    if label == CLEAN:
        return float(rng.uniform(0.0, CLEAN_MAX_DIRT))
    return float(rng.uniform(DIRTY_MIN_DIRT, 1.0))


def label_for(seed: int) -> str:
    """Alternate labels by seed: every split is exactly balanced (within one image)."""
    return LABELS[seed % 2]


MASKS_FILE = "masks.npz"
"""Per dirty image of a randomised set (path relative to the set): where deposits show."""
MASK_SIZE = (60, 80)
"""Rows, columns of a stored deposit mask (each cell: share of its pixels a deposit changed)."""
VISIBLE_DIFF = 24
"""Grey levels a pixel must differ from the clean twin by to count as showing a deposit."""
MIN_VISIBLE_SHARE = 0.01
"""Least share of a dirty image that must show deposits, else it is rendered at dirt 1 and, if
that is not enough, from another scene: about 280 pixels of the model's 192 x 144 input, a
dozen specks or one small blotch. Below it a "dirty" label is close to noise (with a 0.2 % floor,
37 % of 3000 dirty training images showed deposits on less than 1 % of the frame)."""
SCENE_STRIDE = 1 << 24
"""Seed ``s``'s k-th replacement scene is ``s + k * SCENE_STRIDE``: even, so the label (seed
parity) stays, and far above every split's seeds, so no two samples share a scene."""
MAX_SCENES = 8
"""Scenes tried for one dirty sample; when none shows enough, the one showing most at dirt 1."""


@dataclass(frozen=True, slots=True, eq=False)
class RenderedSample:
    """One synthetic sample: its label and dirt, the BGR image, and where its deposits show.

    ``scene`` is the renderer seed actually drawn: the sample's own seed, or a replacement when
    that scene's deposits did not show (:data:`MIN_VISIBLE_SHARE`). ``mask`` is ``None`` for a
    clean image and for the classic renderer."""

    label: str
    dirt: float
    image: np.ndarray
    mask: np.ndarray | None
    scene: int


def render_sample(
    seed: int, *, width: int, height: int, domain: Domain | None = None
) -> tuple[str, float, np.ndarray]:
    """Label, dirt and BGR image of synthetic sample ``seed`` (randomised over ``domain`` if
    given, else the original galvanised renderer)."""
    sample = render_with_mask(seed, width=width, height=height, domain=domain)
    return sample.label, sample.dirt, sample.image


def render_with_mask(
    seed: int,
    *,
    width: int,
    height: int,
    domain: Domain | None = None,
    min_visible_share: float = MIN_VISIBLE_SHARE,
    max_scenes: int = MAX_SCENES,
) -> RenderedSample:
    """:func:`render_sample` plus, for a dirty randomised image, its deposit mask.

    The mask comes from the same duct rendered clean (the seed fixes everything else, camera
    noise included): pixels that differ by :data:`VISIBLE_DIFF` show a deposit. It is what the
    trainer's deposit-map loss learns from, and it keeps a dirty label honest: a dirty image
    whose deposits hardly show (under ``min_visible_share``, a sparse layout far down the duct)
    is rendered at dirt 1 instead, and when even that does not show (a quarter of dirty scenes:
    deposits the colour of the wall, or far down the duct) the sample takes the next scene
    (:data:`SCENE_STRIDE`, up to ``max_scenes``; sets made before that rule used one), so no
    "dirty" image looks clean.
    """
    from hil.render import render_duct

    label = label_for(seed)
    dirt = dirt_for(seed, label)
    if domain is None or label != DIRTY:
        image = render_duct(seed, dirt, width, height, nuisance=True, domain=domain)
        return RenderedSample(label, dirt, image, None, seed)
    # Per scene, its last render: at the sample's dirt if that shows, else at dirt 1.
    last: list[tuple[float, float, np.ndarray, np.ndarray, int]] = []
    for scene in range(seed, seed + max(1, max_scenes) * SCENE_STRIDE, SCENE_STRIDE):
        twin = render_duct(scene, 0.0, width, height, nuisance=True, domain=domain)
        for level in sorted({dirt, 1.0}):
            image = render_duct(scene, level, width, height, nuisance=True, domain=domain)
            changed = _changed(image, twin)
            shown = float(changed.mean())
            if shown >= min_visible_share:
                break
        last.append((shown, level, image, changed, scene))
        if shown >= min_visible_share:
            break
    # The scene that showed enough (the last tried), else the one showing most at dirt 1; with
    # one scene this is the rule sets were made with before v6.
    _shown, dirt, image, changed, scene = max(last, key=lambda t: t[0])
    mask = cv2.resize(changed.astype(np.float32), MASK_SIZE[::-1], interpolation=cv2.INTER_AREA)
    return RenderedSample(label, dirt, image, np.asarray(np.round(mask * 255), np.uint8), scene)


def _changed(image: np.ndarray, twin: np.ndarray) -> np.ndarray:
    diff = np.abs(image.astype(np.int16) - twin.astype(np.int16)).max(axis=2)
    return np.asarray(diff >= VISIBLE_DIFF)


def load_masks(root: Path) -> dict[str, np.ndarray]:
    """The deposit masks of a generated set, by relative path (empty for any other set)."""
    path = root / MASKS_FILE
    if not path.is_file():
        return {}
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def generate(
    out_dir: Path,
    counts: dict[str, int] | None = None,
    *,
    width: int = 320,
    height: int = 240,
    render_width: int = 640,
    render_height: int = 480,
    jpeg_quality: int = 90,
    domain: Domain | Literal["every family"] | None = EVERY_FAMILY,
    seed_offset: int = 0,
    min_visible_share: float = MIN_VISIBLE_SHARE,
    max_scenes: int = MAX_SCENES,
    workers: int = 0,
) -> dict[str, Any]:
    """Write a synthetic data set ``out_dir/<split>/<label>/s<seed>.jpg`` and ``dataset.json``.

    Images are rendered with the renderer's nuisance (lighting, noise, blur, vignetting...) and
    stored downscaled: the model input is far smaller than either, and the runtime's
    reduced-scale JPEG decode downsamples a snapshot the same way. With a ``domain`` (default:
    every family) the renderer randomises material, deposits, lights and lens, and ``looks.json``
    records which families each image shows (leave-one-family-out runs filter on it); ``None``
    renders the original galvanised ducts. ``seed_offset`` moves every split's seeds (held-out
    sets drawn from fresh scenes). ``workers`` processes render in parallel (0: one per CPU);
    every image depends on its seed alone, so the set is the same for any number of them.
    """
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise DatasetError(f"unknown split(s) {sorted(unknown)}; expected {SPLITS}")
    from hil.render_domain import Domain

    if domain == EVERY_FAMILY:
        domain = Domain()

    started = time.monotonic()
    looks: dict[str, list[str]] = {}
    masks: dict[str, np.ndarray] = {}
    replaced: dict[str, int] = {}
    job = _RenderJob(
        out_dir,
        (width, height),
        (render_width, render_height),
        jpeg_quality,
        domain,
        min_visible_share,
        max_scenes,
    )
    with _render_pool(workers, sum(counts.values())) as pool:
        for split, count in counts.items():
            for label in LABELS:
                (out_dir / split / label).mkdir(parents=True, exist_ok=True)
            base = SPLIT_SEED_BASE[split] + seed_offset
            seeds = [(split, seed) for seed in range(base, base + count)]
            replaced[split] = 0
            for relative, families, mask, other_scene in pool(job, seeds):
                replaced[split] += other_scene
                if families is not None:
                    looks[relative] = families
                if mask is not None:
                    masks[relative] = mask
            logger.info("generated split=%s images=%d", split, count)
    if domain is not None:
        (out_dir / LOOKS_FILE).write_text(json.dumps(looks) + "\n", encoding="utf-8")
        arrays: dict[str, Any] = dict(masks)  # numpy's stub types ** as its bool keywords
        np.savez_compressed(out_dir / MASKS_FILE, **arrays)
    info = {
        "generator": "models.dataset.generate (hil.render.render_duct, nuisance on)",
        "domain": "classic galvanised renderer" if domain is None else domain.describe(),
        "counts": counts,
        "seed_ranges": {
            s: [SPLIT_SEED_BASE[s] + seed_offset, SPLIT_SEED_BASE[s] + seed_offset + counts[s]]
            for s in counts
        },
        "labels": list(LABELS),
        "dirt_ranges": _dirt_ranges(),
        "render_size": [render_width, render_height],
        "stored_size": [width, height],
        "jpeg_quality": jpeg_quality,
        "min_visible_share": min_visible_share,
        "max_scenes": max_scenes,
        "replaced_scenes": replaced,
        "seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / DATASET_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


_Rendered = tuple[str, list[str] | None, np.ndarray | None, bool]
"""What one rendered image reports: path in the set, families, deposit mask, another scene?"""


@dataclass(frozen=True)
class _RenderJob:
    """What every image of one :func:`generate` call shares (sent once to each worker)."""

    out_dir: Path
    stored: tuple[int, int]
    rendered: tuple[int, int]
    jpeg_quality: int
    domain: Domain | None
    min_visible_share: float
    max_scenes: int

    def __call__(self, task: tuple[str, int]) -> _Rendered:
        """Render and write one image; its path, renderer families, deposit mask, and whether
        the sample had to take another scene."""
        from hil.render import look_for

        split, seed = task
        sample = render_with_mask(
            seed,
            width=self.rendered[0],
            height=self.rendered[1],
            domain=self.domain,
            min_visible_share=self.min_visible_share,
            max_scenes=self.max_scenes,
        )
        label, image, mask = sample.label, sample.image, sample.mask
        if self.rendered != self.stored:
            image = cv2.resize(image, self.stored, interpolation=cv2.INTER_AREA)
        relative = f"{split}/{label}/s{seed:07d}.jpg"
        path = self.out_dir / relative
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]):
            raise DatasetError(f"cannot write {path}")
        families = (
            None if self.domain is None else list(look_for(sample.scene, self.domain).families)
        )
        return relative, families, mask, sample.scene != seed


_Mapper = Callable[[_RenderJob, list[tuple[str, int]]], Iterable[_Rendered]]

SERIAL_BELOW = 64
"""Sets smaller than this render in-process: starting workers would cost more than it saves."""


@contextmanager
def _render_pool(workers: int, images: int) -> Iterator[_Mapper]:
    """A ``map(job, tasks)`` in order, over ``workers`` processes (0: one per CPU)."""
    count = workers or os.cpu_count() or 1
    if count <= 1 or images < SERIAL_BELOW:
        yield lambda job, tasks: map(job, tasks)
        return
    # spawn, not fork: the caller may hold torch's or OpenCV's thread pools, which a fork breaks.
    # One OpenCV thread a worker: the processes already use every core.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        count, context, initializer=cv2.setNumThreads, initargs=(1,)
    ) as executor:
        yield lambda job, tasks: executor.map(job, tasks, chunksize=8)


def _dirt_ranges() -> dict[str, list[float]]:
    from hil.render import CLEAN_MAX_DIRT, DIRTY_MIN_DIRT

    return {CLEAN: [0.0, CLEAN_MAX_DIRT], DIRTY: [DIRTY_MIN_DIRT, 1.0]}


def describe(root: Path) -> str:
    """One line about a data set for the model manifest: the generator's record if present."""
    info_path = root / DATASET_INFO
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        counts = ", ".join(f"{k} {v}" for k, v in info.get("counts", {}).items())
        ranges = info.get("dirt_ranges", {})
        return (
            f"synthetic duct images from hil.render (nuisance on, families: "
            f"{info.get('domain', 'classic galvanised renderer')}), {counts} images; "
            f"clean = dirt {ranges.get(CLEAN)}, dirty = dirt {ranges.get(DIRTY)}; "
            f"rendered {info.get('render_size')} stored {info.get('stored_size')} JPEG"
        )
    sizes = {split: len(samples) for split, samples in resolve_splits(root).items()}
    return f"folder-per-label images from {root.name}: " + ", ".join(
        f"{k} {v}" for k, v in sizes.items()
    )


# --- Rekognition Custom Labels / Ground Truth manifest ---------------------------------------


def groundtruth_lines(
    root: Path,
    s3_prefix: str,
    *,
    attribute: str = DEFAULT_ATTRIBUTE,
    job_name: str | None = None,
    creation_date: dt.datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """One Ground Truth image-classification record per image of a folder-per-label set.

    ``source-ref`` is ``s3_prefix`` + the path relative to ``root``, which is where
    ``aws s3 sync ROOT S3_PREFIX`` puts the file.
    """
    if not s3_prefix.startswith("s3://") or len(s3_prefix.rstrip("/")) <= len("s3://"):
        raise DatasetError(f"--s3-prefix must look like s3://bucket/path, got {s3_prefix!r}")
    if not attribute or any(c in attribute for c in " /\"'"):
        raise DatasetError(f"invalid label attribute name {attribute!r}")
    prefix = s3_prefix.rstrip("/")
    when = (creation_date or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    job = f"labeling-job/{job_name or attribute}"
    for sample in list_samples(root):
        yield {
            "source-ref": f"{prefix}/{sample.path.relative_to(root).as_posix()}",
            attribute: sample.label,
            f"{attribute}-metadata": {
                "confidence": 1,
                "job-name": job,
                "class-name": LABELS[sample.label],
                "human-annotated": "yes",
                "creation-date": stamp,
                "type": "groundtruth/image-classification",
            },
        }


def write_groundtruth_manifest(
    root: Path,
    s3_prefix: str,
    output: Path,
    *,
    attribute: str = DEFAULT_ATTRIBUTE,
    job_name: str | None = None,
) -> int:
    """Write the JSON-lines manifest to ``output``; returns the number of images."""
    count = 0
    with output.open("w", encoding="utf-8") as fh:
        for record in groundtruth_lines(root, s3_prefix, attribute=attribute, job_name=job_name):
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def sync_command(root: Path, s3_prefix: str) -> str:
    """The ``aws s3 sync`` command that puts the images where the manifest says they are."""
    return f"aws s3 sync {root} {s3_prefix.rstrip('/')}/ --exclude '*' " + " ".join(
        f"--include '{label}/*'" for label in LABELS
    )


def parse_render_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240): width x height, as cameras state it."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WxH such as 320x240, got {text!r}") from None
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.dataset OUT_DIR [--train N ...]``: generate a synthetic data set."""
    import argparse

    from hil.render_domain import ALL_FAMILIES, Domain

    parser = argparse.ArgumentParser(prog="python -m models.dataset", description=main.__doc__)
    parser.add_argument("out_dir", type=Path)
    for split in SPLITS:
        parser.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split], metavar="N")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--render-size", type=parse_render_size, default=(640, 480), metavar="WxH")
    parser.add_argument(
        "--include",
        nargs="*",
        default=[],
        metavar="FAMILY",
        choices=ALL_FAMILIES,
        help="keep only these families in their groups (e.g. --include rust)",
    )
    parser.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        metavar="FAMILY",
        choices=ALL_FAMILIES,
        help="leave these renderer families out (e.g. --exclude rust flex)",
    )
    parser.add_argument(
        "--classic", action="store_true", help="the original galvanised renderer, no families"
    )
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=0, metavar="N", help="render in N processes (0: per CPU)"
    )
    parser.add_argument(
        "--min-visible-share",
        type=float,
        default=MIN_VISIBLE_SHARE,
        help="a dirty image showing deposits on less of the frame is rendered at dirt 1",
    )
    parser.add_argument(
        "--max-scenes",
        type=int,
        default=MAX_SCENES,
        metavar="N",
        help="scenes a dirty sample tries until its deposits show (1: a set made before v6)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = generate(
        args.out_dir,
        {s: getattr(args, s) for s in SPLITS},
        width=args.width,
        height=args.height,
        render_width=args.render_size[0],
        render_height=args.render_size[1],
        domain=None if args.classic else Domain.of(args.include, args.exclude),
        seed_offset=args.seed_offset,
        min_visible_share=args.min_visible_share,
        max_scenes=args.max_scenes,
        workers=args.workers,
    )
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
