"""Every models.* command ends on a bad set with one line naming the problem and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.vision.factory import shipped_model_path
from models import evaluate, pipeline, quantize, train
from models.dataset import generate
from models.folders import MIN_IMAGES_PER_LABEL
from tests.models.conftest import one_line_error, write_image, write_label_folders

Main = Callable[[list[str] | None], int]


def commands(data: Path, tmp: Path) -> dict[str, tuple[Main, list[str]]]:
    model = str(shipped_model_path())
    return {
        "pipeline": (pipeline.main, [str(data), "--out", str(tmp / "o"), "--work-dir", str(tmp)]),
        "train": (train.main, [str(data), "--out", str(tmp / "x.pt")]),
        "quantize": (quantize.main, [model, str(data), "--out", str(tmp / "q.onnx")]),
        "evaluate": (evaluate.main, [model, str(data), "--split", "val"]),
    }


@pytest.mark.parametrize("command", ["pipeline", "train", "quantize", "evaluate"])
@pytest.mark.parametrize(
    ("bad_set", "expected"),
    [
        ("too few", f"at least {MIN_IMAGES_PER_LABEL} of each label are needed"),
        ("unknown folder", "unknown folder 'Clean'"),
        ("not a folder", "not a directory"),
        ("no images", "0 usable clean image(s)"),
    ],
)
def test_a_bad_set_is_one_line_with_the_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    bad_set: str,
    expected: str,
) -> None:
    data = tmp_path / "field"
    if bad_set == "too few":
        write_label_folders(data, MIN_IMAGES_PER_LABEL, 4)
    elif bad_set == "unknown folder":
        write_label_folders(data, 20, 20)
        write_image(data / "Clean" / "x.png", 999, 0)
    elif bad_set == "no images":
        (data / "clean").mkdir(parents=True)
        (data / "dirty").mkdir()
        (data / "clean" / "readme.txt").write_text("x")
    main, argv = commands(data, tmp_path)[command]
    assert main(argv) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"python -m models.{command}: error: ")
    assert expected in line


def test_evaluate_a_set_with_only_a_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate(tmp_path, {"test": 6}, width=64, height=48, render_width=64, render_height=48)
    assert evaluate.main([str(shipped_model_path()), str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 6 and report["split"] == "test"
    assert evaluate.main([str(shipped_model_path()), str(tmp_path), "--split", "val"]) == 2
    assert "no val split; add" in one_line_error(capsys)


def test_a_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_label_folders(tmp_path / "test", 2, 2)
    assert evaluate.main([str(tmp_path / "none.onnx"), str(tmp_path)]) != 0
    assert "manifest not found" in one_line_error(capsys)


def test_debug_variable_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTAIR_DEBUG", "1")
    with pytest.raises(Exception, match="not a directory"):
        train.main([str(tmp_path / "none"), "--out", str(tmp_path / "x.pt")])


def test_starting_another_architecture_from_the_shipped_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_label_folders(tmp_path / "field", 12, 12)
    argv = [str(tmp_path / "field"), "--out", str(tmp_path / "x.pt"), "--arch", "resnet50"]
    assert train.main([*argv, "--input-size", "32", "--max-steps", "1"]) != 0
    line = one_line_error(capsys)
    assert "does not fit this architecture" in line and "--from-scratch" in line


def test_a_missing_start_checkpoint_is_one_line_before_any_image_is_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_label_folders(tmp_path / "field", 12, 12)
    loaded: list[object] = []

    def load_images(*args: object, **kwargs: object) -> tuple[list[object], list[int]]:
        loaded.append(args)
        return [], []

    monkeypatch.setattr(train, "load_images", load_images)
    missing = tmp_path / "run18" / "model.pt"
    argv = [str(tmp_path / "field"), "--out", str(tmp_path / "x.pt"), "--init-from", str(missing)]
    assert train.main(argv) != 0
    line = one_line_error(capsys)
    assert str(missing) in line and "--init-from" in line and "unexpected" not in line
    assert not loaded


@pytest.mark.parametrize("value", ["1.5", "-0.1", "some"])
def test_a_synthetic_dirt_share_outside_0_to_1_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit):
        train.main([str(tmp_path), "--out", str(tmp_path / "x.pt"), "--synthetic-dirt", value])
    assert "--synthetic-dirt" in capsys.readouterr().err


def test_synthetic_dirt_with_a_frozen_stem_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_label_folders(tmp_path / "field", 12, 12)
    argv = [str(tmp_path / "field"), "--out", str(tmp_path / "x.pt"), "--freeze-stem"]
    assert train.main([*argv, "--synthetic-dirt", "0.3"]) != 0
    line = one_line_error(capsys)
    assert "--synthetic-dirt" in line and "--freeze-stem" in line


def test_a_reader_that_leaves_early_is_not_an_error() -> None:
    """`python -m models.foreign MODEL | head -1`: the pipe closes under the tool (as remotair)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-u", "-m", "models.foreign", str(shipped_model_path())],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert "error" not in done.stderr.lower()
