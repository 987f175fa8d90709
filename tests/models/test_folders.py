"""Folder-per-label sets as field users hand them over, and splits that never leak."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.vision import LABELS
from models.folders import (
    MIN_IMAGES_PER_LABEL,
    MIN_TRAIN_PER_LABEL,
    SPLITS,
    DatasetError,
    Sample,
    _carve,
    _Image,
    class_counts,
    list_samples,
    scan,
)
from tests.models.conftest import write_image, write_label_folders

LAYOUTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "train-val-test": ("train", "val", "test"),
    "all four": SPLITS,
    "train-test": ("train", "test"),
    "train only": ("train",),
    "train-calib": ("train", "calib"),
}
"""Split folders a set may come with (none: split by content hash)."""


def records(clean: int, dirty: int) -> list[_Image]:
    return [
        _Image(
            Sample(Path(f"{label}/{key}.png"), label),
            hashlib.sha256(f"{label}:{key}".encode()).hexdigest(),
        )
        for label, count in enumerate((clean, dirty))
        for key in range(count)
    ]


@settings(max_examples=60, deadline=None)
@given(
    clean=st.integers(MIN_IMAGES_PER_LABEL, 4000),
    dirty=st.integers(MIN_IMAGES_PER_LABEL, 4000),
)
def test_hash_split_places_every_image_once_and_gives_every_split_both_labels(
    clean: int, dirty: int
) -> None:
    images = records(clean, dirty)
    shares = (("train", 70), ("val", 10), ("calib", 5), ("test", 15))
    out = _carve(images, shares)
    placed = [i.digest for split in out.values() for i in split]
    assert sorted(placed) == sorted(i.digest for i in images)
    for split in ("train", "val", "test"):
        counts = class_counts([i.sample for i in out[split]])
        assert min(counts) >= (MIN_TRAIN_PER_LABEL if split == "train" else 1), (split, counts)
    again = _carve(list(reversed(images)), shares)  # the order files are found in is irrelevant
    assert {n: {i.digest for i in split} for n, split in again.items()} == {
        n: {i.digest for i in split} for n, split in out.items()
    }
    if min(clean, dirty) >= 200:  # then the hash alone fills every split: shares hold
        assert abs(len(out["train"]) / len(images) - 0.70) < 0.1


@settings(max_examples=25, deadline=None)
@given(
    small=st.integers(MIN_IMAGES_PER_LABEL, 300),
    added=st.integers(1, 300),
)
def test_adding_images_never_moves_the_ones_already_split(small: int, added: int) -> None:
    shares = (("train", 70), ("val", 10), ("calib", 5), ("test", 15))
    before = _carve(records(small, small), shares)
    after = _carve(records(small + added, small + added), shares)
    where = {i.digest: name for name, split in after.items() for i in split}
    moved = [i for name, split in before.items() for i in split if where[i.digest] != name]
    # Only a label short of images in a split borrows (its nearest image); with both labels
    # already in every split by hash, nothing moves.
    naturally_full = all(
        min(class_counts([i.sample for i in before[s]])) >= 1 for s in ("val", "test")
    )
    if naturally_full and min(class_counts([i.sample for i in before["train"]])) > 10:
        assert moved == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.sampled_from(sorted(LAYOUTS)),
    clean=st.integers(MIN_IMAGES_PER_LABEL, 150),
    dirty=st.integers(MIN_IMAGES_PER_LABEL, 150),
    corrupt=st.integers(0, 3),
    other_files=st.integers(0, 3),
    copies=st.integers(0, 5),
    upper=st.booleans(),
    nested=st.booleans(),
    jpeg=st.booleans(),
)
def test_any_layout_and_size_from_the_minimum_scans_without_leaks(
    tmp_path_factory: pytest.TempPathFactory,
    layout: str,
    clean: int,
    dirty: int,
    corrupt: int,
    other_files: int,
    copies: int,
    upper: bool,
    nested: bool,
    jpeg: bool,
) -> None:
    root = tmp_path_factory.mktemp("set")
    ext = ".jpg" if jpeg else ".png"
    ext = ext.upper() if upper else ext
    sub = "2026/board7" if nested else ""
    folders = LAYOUTS[layout]
    written: list[Path] = []
    for index, split in enumerate(folders or ("",)):
        extra = (MIN_TRAIN_PER_LABEL if split == "train" else 1) if folders else 0
        for label, count in enumerate((clean, dirty)):
            share = count // len(folders) + extra if folders else count
            target = root / split / LABELS[label] / sub
            for key in range(index * 1000, index * 1000 + share):
                written.append(write_image(target / f"k{key}{ext}", key, label))
    labels_root = root / folders[0] if folders else root
    for i in range(corrupt):
        (labels_root / "dirty" / f"broken{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    for i in range(other_files):
        (labels_root / "clean" / f"notes{i}.txt").write_text("field notes")
    copies_root = root / folders[-1] if folders else root  # another split folder if any
    for i, source in enumerate(written[:copies]):
        label = next(part for part in source.relative_to(root).parts if part in LABELS)
        (copies_root / label / f"copy{i}{ext}").write_bytes(source.read_bytes())

    data = scan(root)

    assert sorted(p.name for p, _ in data.skipped) == sorted(
        [f"broken{i}.jpg" for i in range(corrupt)] + [f"notes{i}.txt" for i in range(other_files)]
    )
    assert len(data.duplicates) == copies
    own = {
        name: split
        for name, split in data.splits.items()
        if not (name == "calib" and split is data.splits.get("train"))
    }
    everything = [s for split in own.values() for s in split]
    contents = [s.path.read_bytes() for s in everything]
    assert len(set(contents)) == len(contents) == len(written)  # each picture once, all kept
    for sample in everything:  # labelled by the folder it is under
        assert LABELS[sample.label] in sample.path.relative_to(root).parts
    if not folders or "train" in folders:
        assert min(class_counts(data.split("train"))) >= MIN_TRAIN_PER_LABEL
        for split in ("val", "test"):
            assert min(class_counts(data.split(split))) >= 1


def test_below_the_minimum_says_how_many_images_are_needed(tmp_path: Path) -> None:
    write_label_folders(tmp_path, MIN_IMAGES_PER_LABEL, MIN_IMAGES_PER_LABEL - 3)
    with pytest.raises(DatasetError) as info:
        scan(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{MIN_IMAGES_PER_LABEL - 3} usable dirty image(s)" in message
    assert f"at least {MIN_IMAGES_PER_LABEL}" in message and "add 3 more to dirty/" in message


def test_skipped_files_do_not_count_towards_the_minimum(tmp_path: Path) -> None:
    write_label_folders(tmp_path, MIN_IMAGES_PER_LABEL, MIN_IMAGES_PER_LABEL - 1)
    (tmp_path / "dirty" / "torn.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(DatasetError, match=r"1 file\(s\) left out"):
        scan(tmp_path)


@pytest.mark.parametrize(
    ("folder", "hint"), [("Dirty", "did you mean dirty/?"), ("unsure", ""), ("tests", "test/")]
)
def test_unknown_label_folder_is_refused_by_name(tmp_path: Path, folder: str, hint: str) -> None:
    write_label_folders(tmp_path, 20, 20)
    (tmp_path / folder).mkdir()
    (tmp_path / ".thumbnails").mkdir()  # hidden folders are not the user's labels
    with pytest.raises(DatasetError, match=f"unknown folder '{folder}'") as info:
        scan(tmp_path)
    assert hint in str(info.value)


def test_the_same_picture_under_both_labels_is_dropped_from_both(tmp_path: Path) -> None:
    write_label_folders(tmp_path, 20, 20)
    picture = (tmp_path / "clean" / "img00003.png").read_bytes()
    (tmp_path / "dirty" / "mislabelled.png").write_bytes(picture)
    data = scan(tmp_path)
    assert sorted(p.name for p in data.conflicts) == ["img00003.png", "mislabelled.png"]
    kept = {s.path for split in data.splits.values() for s in split}
    assert not kept & {tmp_path / "clean" / "img00003.png", tmp_path / "dirty" / "mislabelled.png"}
    assert tmp_path / "dirty" / "img00003.png" in kept  # another picture of the same name
    assert "2 under both labels, dropped" in data.summary()


def test_split_folders_and_label_folders_side_by_side_are_refused(tmp_path: Path) -> None:
    write_label_folders(tmp_path, 20, 20)
    write_label_folders(tmp_path / "test", 3, 3)
    with pytest.raises(DatasetError, match="both split folders and label folders"):
        scan(tmp_path)


def test_a_set_with_only_a_test_split_offers_test_and_names_what_is_missing(
    tmp_path: Path,
) -> None:
    write_label_folders(tmp_path / "test", 3, 2)
    data = scan(tmp_path)
    assert class_counts(data.split("test")) == [3, 2]
    with pytest.raises(DatasetError, match=r"no train split; add .*/train/\{clean,dirty\}/"):
        data.split("train")


def test_list_samples_reads_nested_upper_case_jpeg_and_png(tmp_path: Path) -> None:
    write_image(tmp_path / "clean" / "a.JPG", 1, 0)
    write_image(tmp_path / "dirty" / "2026" / "03" / "b.PNG", 2, 1)
    write_image(tmp_path / "dirty" / "c.jpeg", 3, 1)
    (tmp_path / "dirty" / ".DS_Store").write_bytes(b"\0\0")
    samples = list_samples(tmp_path)
    assert [(s.path.name, s.label) for s in samples] == [("a.JPG", 0), ("b.PNG", 1), ("c.jpeg", 1)]


def test_an_empty_split_folder_counts_as_absent(tmp_path: Path) -> None:
    write_label_folders(tmp_path / "train", 30, 30)
    write_label_folders(tmp_path / "test", 5, 5, start=100)
    (tmp_path / "calib" / "clean").mkdir(parents=True)
    (tmp_path / "calib" / "dirty").mkdir()
    data = scan(tmp_path)
    assert data.split("calib") is data.split("train")
    assert min(class_counts(data.split("val"))) >= 1  # carved out of train
