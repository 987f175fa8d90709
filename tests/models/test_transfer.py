"""models.transfer: the fine-tune versus from-scratch comparison runs end to end (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.transfer import main

pytestmark = pytest.mark.slow


def test_transfer_compares_shipped_finetuned_and_scratch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--family", "rust", "--per-class", "2", "--val-per-class", "1", "--test-per-class", "2",
        "--out", str(tmp_path),
        "--", "--input-size", "32", "--epochs", "1", "--batch-size", "4", "--max-steps", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "transfer.json").read_text())
    assert report["images_per_class"] == {"train": 2, "val": 1, "test": 2}
    results = report["results"]
    assert set(results) == {"shipped, not retrained", "fine-tuned from shipped", "from scratch"}
    assert all(r["images"] == 4 for r in results.values())
    assert results["fine-tuned from shipped"]["init_from"] == "shipped"
    assert results["from scratch"]["init_from"] == "scratch"
    assert capsys.readouterr().out.endswith(json.dumps(report, indent=2) + "\n")


def test_an_unknown_family_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--family", "velvet", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown renderer family ['velvet']" in err
