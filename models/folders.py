"""Folder-per-label image sets as people really hand them over: checked, de-duplicated, split.

Layout: one folder per label (``clean/``, ``dirty/``, sub-folders allowed), optionally under
split folders (``train/``, ``val/``, ``calib/``, ``test/``). What a field set brings and what
happens to it:

- files that are not images by extension (``notes.txt``, ``.DS_Store``) and images that do not
  decode are skipped, counted and listed (:attr:`FolderSet.skipped`), never fatal;
- the same picture twice (byte-identical, whatever its name) is kept once: within a set the
  first path wins, across split folders the earliest split wins, so no image is in two splits;
  the same picture under both labels is dropped from both (:attr:`FolderSet.conflicts`);
- a folder next to the labels that is not a label (``Dirty``, ``unsure``) is refused by name:
  silently ignoring it would train without images the user meant to give;
- a set without split folders is split by a hash of each image's *content* (70/10/5/15 % for
  train/val/calib/test): adding images never moves the ones already assigned, and a copy of an
  image cannot land in another split. A label with too few images in val or test borrows its
  train images closest to that split's hash range, so every split holds both labels;
- a set with split folders keeps them; a missing ``val``/``test`` is carved out of ``train`` the
  same way, a missing ``calib`` calibrates on ``train`` (calibration only observes ranges).

Below :data:`MIN_IMAGES_PER_LABEL` images of a label (after skipping) a set is refused with one
line saying how many images are needed.

numpy and OpenCV only (no torch): the board's ``remotair dataset`` command uses this too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from agent.errors import ExitCode, RemotairError
from agent.vision import LABELS, ImageError
from agent.vision.preprocess import decode_image

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "calib", "test")
"""Training, validation (early stopping, calibration-method choice), quantization calibration,
and the held-out test split the shipped metrics are measured on."""
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
HASH_SHARES: tuple[tuple[str, int], ...] = (("train", 70), ("val", 10), ("calib", 5), ("test", 15))
"""Percent of an unsplit set going to each split, by content hash."""
MIN_IMAGES_PER_LABEL = 10
"""Fewest images of each label a set without split folders needs (at least one each for
validation and test, the rest to train on)."""
MIN_TRAIN_PER_LABEL = 2
"""Fewest training images of each label (a BatchNorm batch needs two)."""
_CHECK_SHORT_SIDE = 64
"""Each file is checked by decoding it, a large JPEG at reduced scale down to this short side."""


class DatasetError(RemotairError, ValueError):
    """A data set directory is unusable: the message names the directory and the fix."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True, slots=True)
class Sample:
    path: Path
    label: int
    """Index into :data:`agent.vision.LABELS`."""


@dataclass(frozen=True, slots=True)
class _Image:
    sample: Sample
    digest: str
    """sha256 of the file's bytes."""

    @property
    def position(self) -> float:
        """Where the content hash falls in [0, 1): decides the split of an unsplit set."""
        return int(self.digest[:12], 16) / float(1 << 48)


@dataclass(slots=True)
class FolderSet:
    """The usable images of a folder-per-label set, per split, and what was left out."""

    root: Path
    splits: dict[str, list[Sample]]
    layout: str
    """``"hash"`` (no split folders) or ``"folders"``."""
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Files left out and why (not an image, does not decode)."""
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)
    """(dropped copy, kept image) pairs."""
    conflicts: list[Path] = field(default_factory=list)
    """Images present under both labels: dropped everywhere."""

    def split(self, name: str) -> list[Sample]:
        """The samples of split ``name``, or a :class:`DatasetError` saying how to provide it."""
        samples = self.splits.get(name)
        if not samples:
            raise DatasetError(
                f"{self.root}: no {name} split; add {self.root}/{name}/{{clean,dirty}}/ "
                "or give a folder-per-label set without split folders (split automatically)"
            )
        return samples

    def summary(self) -> str:
        """One line for the log: sizes, and what was left out (the first few named)."""
        parts = [
            f"{name} {len(s)} ({'/'.join(map(str, class_counts(s)))})"
            for name, s in self.splits.items()
        ]
        text = f"{self.root}: {', '.join(parts)} images (clean/dirty), {self.layout} split"
        for what, paths in (
            ("skipped", [p for p, _ in self.skipped]),
            ("duplicates dropped", [p for p, _ in self.duplicates]),
            ("under both labels, dropped", self.conflicts),
        ):
            if paths:
                names = ", ".join(p.name for p in paths[:5])
                more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
                text += f"; {len(paths)} {what}: {names}{more}"
        return text


def class_counts(samples: Sequence[Sample]) -> list[int]:
    return [sum(1 for s in samples if s.label == i) for i in range(len(LABELS))]


def _suggestion(name: str) -> str:
    lowered = name.strip().lower()
    for known in (*LABELS, *SPLITS):
        if lowered == known or lowered.rstrip("s") == known:
            return f" (did you mean {known}/?)"
    return ""


def _check_folders(root: Path, allowed: Iterable[str], what: str) -> None:
    allowed = set(allowed)
    unknown = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and p.name not in allowed and not p.name.startswith((".", "_"))
    )
    if unknown:
        first = unknown[0]
        raise DatasetError(
            f"{root}: unknown folder {first!r}{_suggestion(first)}"
            + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else "")
            + f"; {what} are {', '.join(sorted(allowed))}: rename it or move it out of the set"
        )


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _read_label_folders(root: Path, skipped: list[tuple[Path, str]]) -> list[_Image]:
    """Every decodable image under ``root/<label>/`` with its content hash."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory; give a folder with clean/ and dirty/ in it")
    _check_folders(root, LABELS, "the label folders")
    missing = [label for label in LABELS if not (root / label).is_dir()]
    if missing:
        raise DatasetError(
            f"{root}: expected one folder per label ({', '.join(LABELS)}); missing {missing}: "
            f"create {root}/{missing[0]}/ with its images"
        )
    images: list[_Image] = []
    for index, label in enumerate(LABELS):
        for path in _files(root / label):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append((path, "not an image file"))
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                skipped.append((path, f"unreadable ({exc.strerror or exc})"))
                continue
            try:
                decode_image(data, min_short_side=_CHECK_SHORT_SIDE, source=path)
            except (ImageError, cv2.error):
                skipped.append((path, "does not decode as an image"))
                continue
            images.append(_Image(Sample(path, index), hashlib.sha256(data).hexdigest()))
    return images


def _deduplicate(groups: dict[str, list[_Image]], result: FolderSet) -> dict[str, list[_Image]]:
    """Keep each picture once, in the earliest split; drop pictures seen under both labels."""
    labels_of: dict[str, set[int]] = {}
    for images in groups.values():
        for image in images:
            labels_of.setdefault(image.digest, set()).add(image.sample.label)
    kept: dict[str, Path] = {}
    out: dict[str, list[_Image]] = {}
    for name, images in groups.items():
        out[name] = []
        for image in images:
            if len(labels_of[image.digest]) > 1:
                result.conflicts.append(image.sample.path)
            elif image.digest in kept:
                result.duplicates.append((image.sample.path, kept[image.digest]))
            else:
                kept[image.digest] = image.sample.path
                out[name].append(image)
    return out


_REQUIRED_PER_LABEL = {"train": MIN_TRAIN_PER_LABEL, "val": 1, "calib": 0, "test": 1}


def _carve(images: list[_Image], shares: Sequence[tuple[str, int]]) -> dict[str, list[_Image]]:
    """Split by content-hash position, then make sure each split holds every label.

    A split short of a label takes it from the split with the most to spare, the image whose
    hash is nearest its own range: stable as long as the hash alone fills every split (a label
    with a few dozen images or more), deterministic always.
    """
    total = sum(share for _, share in shares)
    centres: dict[str, float] = {}
    bounds: list[tuple[str, float]] = []
    start = 0.0
    for name, share in shares:
        centres[name] = start + share / total / 2
        start += share / total
        bounds.append((name, start))
    out: dict[str, list[_Image]] = {name: [] for name, _ in shares}
    for image in images:
        position = image.position
        name = next((n for n, end in bounds if position < end), bounds[-1][0])
        out[name].append(image)
    for label in sorted({i.sample.label for i in images}):

        def spare(name: str, label: int = label) -> int:
            have = sum(1 for i in out[name] if i.sample.label == label)
            return have - _REQUIRED_PER_LABEL[name]

        for name in out:
            while spare(name) < 0:
                donor = max(out, key=lambda n: (spare(n), -abs(centres[n] - centres[name])))
                if donor == name or spare(donor) <= 0:
                    break  # too few images of this label; the size check names the shortfall
                chosen = min(
                    (i for i in out[donor] if i.sample.label == label),
                    key=lambda i: (abs(i.position - centres[name]), i.digest),
                )
                out[donor].remove(chosen)
                out[name].append(chosen)
    return out


def _check_sizes(result: FolderSet, counted: list[_Image]) -> None:
    per_label = [sum(1 for i in counted if i.sample.label == k) for k in range(len(LABELS))]
    for index, label in enumerate(LABELS):
        if result.layout == "hash" and per_label[index] < MIN_IMAGES_PER_LABEL:
            raise DatasetError(
                f"{result.root}: {per_label[index]} usable {label} image(s); at least "
                f"{MIN_IMAGES_PER_LABEL} of each label are needed "
                f"(add {MIN_IMAGES_PER_LABEL - per_label[index]} more to {label}/)"
                + _skipped_note(result)
            )
    for split, samples in result.splits.items():
        need = _REQUIRED_PER_LABEL[split]
        counts = class_counts(samples)
        for index, label in enumerate(LABELS):
            if counts[index] < need and (split == "train" or result.layout == "hash"):
                raise DatasetError(
                    f"{result.root}: the {split} split has {counts[index]} {label} image(s); "
                    f"at least {need} of each label are needed"
                    + (
                        f": add images to {result.root}/{split}/{label}/"
                        if result.layout == "folders"
                        else ""
                    )
                    + _skipped_note(result)
                )


def _skipped_note(result: FolderSet) -> str:
    left_out = len(result.skipped) + len(result.duplicates) + len(result.conflicts)
    return f" ({left_out} file(s) left out: see the log)" if left_out else ""


def has_splits(root: Path) -> bool:
    """Whether ``root`` is split into folders (any of :data:`SPLITS` next to no label folder)."""
    return root.is_dir() and any((root / split).is_dir() for split in SPLITS)


def scan(root: Path) -> FolderSet:
    """Read, check, de-duplicate and split a folder-per-label set (see the module docstring)."""
    skipped: list[tuple[Path, str]] = []
    if has_splits(root):
        if any((root / label).is_dir() for label in LABELS):
            raise DatasetError(
                f"{root}: both split folders and label folders at the top; put every image "
                "under train/, val/, calib/, test/ (each with clean/ and dirty/), or none"
            )
        _check_folders(root, SPLITS, "the split folders")
        present = [s for s in SPLITS if (root / s).is_dir()]
        groups = {s: _read_label_folders(root / s, skipped) for s in present}
        result = FolderSet(root, {}, "folders", skipped)
        # An empty split folder (``--calib 0`` still makes one) is as good as none.
        groups = {s: images for s, images in _deduplicate(groups, result).items() if images}
        missing = [s for s in ("val", "test") if s not in groups]
        if "train" in groups and missing:
            shares = [("train", 70), *((s, dict(HASH_SHARES)[s]) for s in missing)]
            carved = _carve(groups["train"], shares)
            groups.update(carved)
        counted = [i for images in groups.values() for i in images]
        result.splits = {s: [i.sample for i in groups[s]] for s in SPLITS if s in groups}
        if "calib" not in result.splits and "train" in result.splits:
            result.splits["calib"] = result.splits["train"]
    else:
        images = _read_label_folders(root, skipped)
        result = FolderSet(root, {}, "hash", skipped)
        images = _deduplicate({"all": images}, result)["all"]
        carved = _carve(images, HASH_SHARES)
        counted = images
        result.splits = {s: [i.sample for i in carved[s]] for s in SPLITS}
        if not result.splits["calib"]:
            result.splits["calib"] = result.splits["train"]
    _check_sizes(result, counted)
    for split in result.splits.values():
        split.sort(key=lambda s: (s.label, str(s.path)))
    if skipped or result.duplicates or result.conflicts:
        logger.warning("dataset %s", result.summary())
        for path, reason in skipped:
            logger.warning("dataset skipped path=%s reason=%s", path, reason)
    return result


def resolve_splits(root: Path) -> dict[str, list[Sample]]:
    """Samples per split (see :func:`scan`); splits that the set cannot provide are absent."""
    return scan(root).splits


def list_samples(root: Path) -> list[Sample]:
    """Every usable image under ``root/clean`` and ``root/dirty`` (recursively, de-duplicated),
    sorted by label then path. Refuses unknown folders next to the labels."""
    skipped: list[tuple[Path, str]] = []
    images = _read_label_folders(root, skipped)
    result = FolderSet(root, {}, "folders", skipped)
    kept = _deduplicate({"all": images}, result)["all"]
    samples = sorted((i.sample for i in kept), key=lambda s: (s.label, str(s.path)))
    if not samples:
        raise DatasetError(
            f"{root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in "
            f"{'/, '.join(LABELS)}/" + _skipped_note(result)
        )
    return samples
