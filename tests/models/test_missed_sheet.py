"""The contact sheet of a leave-out run's wrong verdicts: what the run missed, in sight."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models import missed_sheet
from models.missed_sheet import COLUMNS, TILE
from tests.models.conftest import one_line_error


def _report(tmp_path: Path, count: int, *, measured: bool = False) -> Path:
    """A models.lofo report whose lint run (or, ``measured``, whose model measured on lint)
    missed ``count`` ducts, each a flat grey image whose shade is its rank, under
    ``tmp_path/heldout``."""
    missed = []
    for rank in range(count):
        image = f"lint/test/dirty/s{rank:07d}.jpg"
        path = tmp_path / "heldout" / image
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((240, 320, 3), 40 + 20 * rank, np.uint8))
        missed.append({"image": image, "label": "dirty", "p_dirty": round(0.05 * rank, 2)})
    results = {"lint": {"missed": missed}}
    report = (
        {"results": results} if measured else {"runs": {"lint+stainless": {"results": results}}}
    )
    out = tmp_path / "lofo.json"
    out.write_text(json.dumps(report))
    return out


@pytest.mark.parametrize("measured", [False, True], ids=["leave-out run", "measured model"])
def test_the_sheet_shows_the_first_missed_ducts_in_order(tmp_path: Path, measured: bool) -> None:
    report = _report(tmp_path, 6, measured=measured)
    out = tmp_path / "sheet.png"
    argv = [str(report), str(tmp_path / "heldout"), "--family", "lint", "--count", "5"]
    assert missed_sheet.main([*argv, "--out", str(out)]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * TILE[0], COLUMNS * TILE[1], 3)
    # below each caption bar, tile k is the k-th missed image's shade; the sixth is left out
    shades = [
        int(sheet[(k // COLUMNS) * TILE[0] + TILE[0] // 2, (k % COLUMNS) * TILE[1] + 10, 0])
        for k in range(COLUMNS + 2)
    ]
    assert shades[:5] == pytest.approx([40, 60, 80, 100, 120], abs=3)
    assert shades[5] == 255  # empty space of the last row
    # the caption bar is black with white text
    bar = sheet[:18, : TILE[1]]
    assert bar.min() < 30 and bar.max() > 200


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("family never held out", "no run in the report lists the images it missed on 'mould'"),
        ("nothing missed", "the run missed no 'lint' duct"),
        ("not a report", "not a report of python -m models.lofo"),
        ("no report", "missing; write it with python -m models.lofo"),
        ("wrong held-out dir", "missing; pass the held-out directory the run measured"),
    ],
)
def test_a_bad_request_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    report = _report(tmp_path, 0 if case == "nothing missed" else 2)
    heldout, family = tmp_path / "heldout", "lint"
    if case == "family never held out":
        family = "mould"
    elif case == "not a report":
        report.write_text("[1, 2]")
    elif case == "no report":
        report = tmp_path / "none.json"
    elif case == "wrong held-out dir":
        heldout = tmp_path
    argv = [str(report), str(heldout), "--family", family, "--out", str(tmp_path / "s.jpg")]
    assert missed_sheet.main(argv) == 2
    line = one_line_error(capsys)
    assert line.startswith("python -m models.missed_sheet: error: ")
    assert expected in line


@pytest.mark.parametrize("count", ["0", "-3", "many"])
def test_a_count_that_is_not_a_number_of_tiles_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    report = _report(tmp_path, 2)
    argv = [str(report), str(tmp_path / "heldout"), "--family", "lint", "--count", count]
    with pytest.raises(SystemExit):
        missed_sheet.main([*argv, "--out", str(tmp_path / "s.jpg")])
    assert "--count" in capsys.readouterr().err
