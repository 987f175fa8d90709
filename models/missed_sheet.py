"""A contact sheet of the ducts a leave-out run called wrongly, the most confidently wrong first.

A family's accuracy says how many ducts a run missed, not what they look like: faint deposits
a person would hesitate over, or plain ones the run is blind to. ``models.lofo`` lists each
held-out family's wrong verdicts (``missed``, with the run's calibrated p(dirty); with
``--measure``, the measured model's); this draws them, each tile captioned with its label and
p(dirty).

``python -m models.missed_sheet build/lofo.json build/heldout --family lint --out lint.jpg``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.vision.preprocess import load_image, resize_to_cover
from models.cli import run as run_tool
from models.folders import DatasetError

TILE = (180, 240)
"""Rows, columns of one tile: the cameras' 4:3, large enough to see a fibre."""
COLUMNS = 4


def missed_of(report: dict[str, Any], family: str) -> list[dict[str, Any]]:
    """The ``missed`` list of ``family`` in a ``models.lofo`` report: of the run that held it out,
    or of the model measured (``--measure``)."""
    tables = [entry.get("results", {}) for entry in report.get("runs", {}).values()]
    for table in [*tables, report.get("results", {})]:
        row = table.get(family)
        if row is not None and "missed" in row:
            return list(row["missed"])
    raise DatasetError(
        f"no run in the report lists the images it missed on {family!r}; "
        "run python -m models.lofo (or --measure) with --families including it"
    )


def contact_sheet(tiles: Sequence[tuple[np.ndarray, str]], columns: int = COLUMNS) -> np.ndarray:
    """BGR images with captions laid out ``columns`` wide, each cover-resized to :data:`TILE`."""
    rows = max(1, -(-len(tiles) // columns))
    sheet = np.full((rows * TILE[0], columns * TILE[1], 3), 255, np.uint8)
    for index, (image, caption) in enumerate(tiles):
        top, left = (index // columns) * TILE[0], (index % columns) * TILE[1]
        tile = resize_to_cover(image, TILE)
        cv2.rectangle(tile, (0, 0), (TILE[1], 18), (0, 0, 0), thickness=-1)
        cv2.putText(tile, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1)
        sheet[top : top + TILE[0], left : left + TILE[1]] = tile
    return sheet


def draw(report: dict[str, Any], heldout_dir: Path, family: str, count: int) -> np.ndarray:
    """The sheet of ``family``'s first ``count`` missed ducts, images read from ``heldout_dir``."""
    wanted = missed_of(report, family)[:count]
    if not wanted:
        raise DatasetError(f"the run missed no {family!r} duct: nothing to draw")
    tiles = []
    for entry in wanted:
        path = heldout_dir / entry["image"]
        if not path.is_file():
            raise DatasetError(f"{path}: missing; pass the held-out directory the run measured")
        caption = f"{entry['label']}  p(dirty) {entry['p_dirty']:.2f}"
        tiles.append((load_image(path, min_short_side=TILE[0]), caption))
    return contact_sheet(tiles)


def _tiles(text: str) -> int:
    """``--count``: a whole number of tiles, at least one."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tiles (1 or more)")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.missed_sheet", description=__doc__)
    parser.add_argument("report", type=Path, help="JSON written by python -m models.lofo --out")
    parser.add_argument("heldout_dir", type=Path, help="the held-out sets the run measured")
    parser.add_argument("--family", required=True, help="a family the run held out")
    parser.add_argument("--count", type=_tiles, default=8, help="tiles, most confident first")
    parser.add_argument("--out", type=Path, required=True, help="JPEG or PNG to write")
    args = parser.parse_args(argv)
    return run_tool(lambda: _main(args), parser.prog)


def _main(args: argparse.Namespace) -> int:
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{args.report}: missing; write it with python -m models.lofo") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        report = None
    if not isinstance(report, dict):
        raise DatasetError(f"{args.report}: not a report of python -m models.lofo --out")
    sheet = draw(report, args.heldout_dir, args.family, args.count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), sheet):
        raise DatasetError(f"{args.out}: cannot write; give a .jpg or .png path")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
