"""Drawn deposits: visible, of the kind asked, the same every run, and seen by the shipped model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.vision import CLEAN, DIRTY, LABELS
from agent.vision.factory import shipped_model_path
from models import drawn_deposits
from models.drawn_deposits import KINDS, MIN_CHANGED, clean_duct, draw_deposits, pairs


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_enough_of_the_wall_and_is_drawn_anew_each_time(kind: str) -> None:
    wall = clean_duct(0)
    rng = np.random.default_rng(1)
    first, second = draw_deposits(wall, kind, rng), draw_deposits(wall, kind, rng)
    for drawn in (first, second):
        changed = np.abs(drawn.astype(int) - wall.astype(int)).max(axis=2) > 12
        assert changed.mean() >= MIN_CHANGED
    assert not np.array_equal(first, second)


def test_pairs_are_a_clean_duct_and_the_same_duct_drawn_on_the_same_every_run() -> None:
    images, labels, kinds = pairs(3)
    again, _, _ = pairs(3)
    assert labels.tolist() == [LABELS.index(CLEAN), LABELS.index(DIRTY)] * 3
    assert kinds == ["", "specks", "", "blotches", "", "fibres"]
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))
    walls, drawn = images[0::2], images[1::2]
    for wall, on_it in zip(walls, drawn, strict=True):
        unchanged = np.abs(on_it.astype(int) - wall.astype(int)).max(axis=2) <= 12
        assert unchanged.mean() > 0.5  # the same duct, with deposits on part of it


def test_the_shipped_model_calls_most_drawn_ducts_dirty_and_their_walls_clean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert drawn_deposits.main([str(shipped_model_path()), "--ducts", "12", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 24
    assert result["clean_called_clean"] >= 0.9
    assert result["drawn_called_dirty"] >= 0.6
    assert set(result["drawn_called_dirty_by_kind"]) == set(KINDS)


def test_no_ducts_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        drawn_deposits.main([str(shipped_model_path()), "--ducts", "0"])
    assert "--ducts" in capsys.readouterr().err


def test_a_kind_no_duct_got_has_no_rate_rather_than_nan() -> None:
    result = drawn_deposits.measure(shipped_model_path(), 2, threads=1)
    assert result["images"] == 4
    assert result["drawn_called_dirty_by_kind"]["fibres"] is None
    assert result["drawn_called_dirty_by_kind"]["specks"] in (0.0, 1.0)
