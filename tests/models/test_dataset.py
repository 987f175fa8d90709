"""Folder-per-label reading, deterministic splits, and the Ground Truth manifest export."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.cli import dataset as dataset_command
from agent.errors import ExitCode
from models.dataset import groundtruth_lines, write_groundtruth_manifest
from models.folders import DatasetError, list_samples, resolve_splits


def cli(argv: list[str]) -> int:
    """Run ``remotair dataset ...`` through its own parser (independent of other commands)."""
    parser = argparse.ArgumentParser(prog="remotair")
    dataset_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def make_set(root: Path, clean: int, dirty: int) -> None:
    """Distinct pictures (a label's images differ from each other and from the other label's)."""
    for index, (label, count) in enumerate((("clean", clean), ("dirty", dirty))):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = np.zeros((8, 8, 3), np.uint8)
            pixels[0, 0] = (i % 256, i // 256, 100 * index)
            cv2.imwrite(str(root / label / f"img{i:03d}.png"), pixels)


def test_list_samples_labels_by_folder_and_skips_non_images(tmp_path: Path) -> None:
    make_set(tmp_path, 2, 3)
    (tmp_path / "dirty" / "notes.txt").write_text("x")
    (tmp_path / "dirty" / "2026").mkdir()
    cv2.imwrite(str(tmp_path / "dirty" / "2026" / "deep.PNG"), np.zeros((4, 4, 3), np.uint8))
    samples = list_samples(tmp_path)
    assert [s.label for s in samples] == [0, 0, 1, 1, 1, 1]
    assert samples[2].path.name == "deep.PNG"


def test_missing_label_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "clean").mkdir()
    with pytest.raises(DatasetError, match=r"missing \['dirty'\]"):
        list_samples(tmp_path)


def test_unsplit_field_set_gets_a_stable_hash_split(tmp_path: Path) -> None:
    make_set(tmp_path, 60, 60)
    first = resolve_splits(tmp_path)
    assert sum(len(first[s]) for s in ("train", "val", "test")) + len(first["calib"]) == 120
    make_set(tmp_path, 80, 60)  # new images must not move the old ones
    second = resolve_splits(tmp_path)
    for split in ("train", "val", "test"):
        assert set(first[split]) <= set(second[split])


def test_groundtruth_records(tmp_path: Path) -> None:
    make_set(tmp_path, 1, 1)
    when = dt.datetime(2026, 3, 6, 17, 46, 39, 176000, tzinfo=dt.UTC)
    records = list(
        groundtruth_lines(tmp_path, "s3://bucket/ducts/", attribute="duct", creation_date=when)
    )
    assert records[0] == {
        "source-ref": "s3://bucket/ducts/clean/img000.png",
        "duct": 0,
        "duct-metadata": {
            "confidence": 1,
            "job-name": "labeling-job/duct",
            "class-name": "clean",
            "human-annotated": "yes",
            "creation-date": "2026-03-06T17:46:39.176",
            "type": "groundtruth/image-classification",
        },
    }
    assert (records[1]["duct"], records[1]["duct-metadata"]["class-name"]) == (1, "dirty")


@pytest.mark.parametrize("prefix", ["bucket/path", "s3://", "https://x/y"])
def test_bad_s3_prefix_is_refused(tmp_path: Path, prefix: str) -> None:
    make_set(tmp_path, 1, 1)
    with pytest.raises(DatasetError, match="s3://bucket"):
        write_groundtruth_manifest(tmp_path, prefix, tmp_path / "m")


def test_cli_export_writes_json_lines_and_prints_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "field"
    make_set(data, 2, 1)
    out = tmp_path / "m.manifest"
    code = cli(
        ["dataset", "export", str(data), "--s3-prefix", "s3://b/p", "--output", str(out), "--json"]
    )
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["source-ref"] for line in lines] == [
        "s3://b/p/clean/img000.png",
        "s3://b/p/clean/img001.png",
        "s3://b/p/dirty/img000.png",
    ]
    printed = json.loads(capsys.readouterr().out)
    assert printed["images"] == 3
    assert printed["upload_commands"][0].startswith(f"aws s3 sync {data} s3://b/p/")


def test_cli_export_bad_layout_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(dataset_command.DatasetCommandError, match="missing") as info:
        cli(["dataset", "export", str(tmp_path), "--s3-prefix", "s3://b/p"])
    assert info.value.exit_code == ExitCode.USAGE


def test_generator_records_each_images_renderer_families(tmp_path: Path) -> None:
    from hil.render_domain import Domain
    from models.dataset import LOOKS_FILE, generate

    info = generate(
        tmp_path,
        {"train": 4},
        width=64,
        height=48,
        render_width=64,
        render_height=48,
        domain=Domain.of(exclude=["rust"]),
        seed_offset=500,
    )
    looks = json.loads((tmp_path / LOOKS_FILE).read_text())
    assert sorted(looks) == sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")
    )
    assert all("rust" not in families for families in looks.values())
    assert info["domain"] == "all but rust"
    assert info["seed_ranges"]["train"] == [500, 504]


def test_parallel_generation_writes_the_same_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each image depends on its seed alone: two worker processes write what one process does
    (images, families and deposit masks), in the same order."""
    import models.dataset as dataset

    monkeypatch.setattr(dataset, "SERIAL_BELOW", 0)  # a pool even for a tiny set

    def make(folder: str, workers: int) -> dict[str, Any]:
        return dataset.generate(
            tmp_path / folder,
            {"train": 6, "val": 3},
            width=64,
            height=48,
            render_width=96,
            render_height=72,
            workers=workers,
        )

    serial, parallel = make("one", 1), make("two", 2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.jpg"))
    assert len(files) == 9
    for relative in files:
        assert (tmp_path / "one" / relative).read_bytes() == (
            tmp_path / "two" / relative
        ).read_bytes()
    looks = dataset.LOOKS_FILE
    assert (tmp_path / "one" / looks).read_text() == (tmp_path / "two" / looks).read_text()
    one, two = dataset.load_masks(tmp_path / "one"), dataset.load_masks(tmp_path / "two")
    assert one.keys() == two.keys() and one
    assert all(np.array_equal(one[k], two[k]) for k in one)
    assert serial["counts"] == parallel["counts"]


def test_a_replaced_dirty_scene_records_the_families_of_the_scene_drawn(tmp_path: Path) -> None:
    """A dirty sample that had to take another scene is filed under its own seed, with the
    families (and mask) of the scene actually rendered: leave-one-family-out filters on them."""
    from hil.render import look_for
    from hil.render_domain import Domain
    from models.dataset import LOOKS_FILE, MAX_SCENES, generate, render_with_mask

    size = {"width": 64, "height": 48}
    info = generate(
        tmp_path, {"train": 6}, **size, render_width=64, render_height=48, min_visible_share=0.3
    )
    assert info["max_scenes"] == MAX_SCENES and info["min_visible_share"] == 0.3
    looks = json.loads((tmp_path / LOOKS_FILE).read_text())
    replaced = 0
    for seed in range(1, 6, 2):  # the dirty ones
        sample = render_with_mask(seed, **size, domain=Domain(), min_visible_share=0.3)
        assert looks[f"train/dirty/s{seed:07d}.jpg"] == list(
            look_for(sample.scene, Domain()).families
        )
        replaced += sample.scene != seed
    assert replaced  # asked for 30 % of the frame, some scene had to be replaced
    assert info["replaced_scenes"] == {"train": replaced}
