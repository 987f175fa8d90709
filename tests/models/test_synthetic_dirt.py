"""Synthetic deposits: visible, masked where painted, and trained as dirty."""

from __future__ import annotations

import numpy as np
import pytest

from agent.vision import CLEAN, DIRTY, LABELS
from models.batches import class_weights, training_views
from models.synthetic_dirt import MAX_COVER, MIN_COVER, paint_deposit

CLEAN_LABEL, DIRTY_LABEL = LABELS.index(CLEAN), LABELS.index(DIRTY)


def _wall(seed: int) -> np.ndarray:
    """A plain, slightly grainy grey wall (162 x 216, the training frames' size)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 4, (162, 216, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(12))
def test_a_painted_deposit_covers_its_share_and_changes_only_where_it_lies(seed: int) -> None:
    wall = _wall(seed)
    painted, mask = paint_deposit(wall, np.random.default_rng(seed))
    assert painted.shape == wall.shape and painted.dtype == np.uint8
    assert mask.shape == wall.shape[:2] and set(np.unique(mask)) <= {0, 255}
    share = np.count_nonzero(mask) / mask.size
    assert MIN_COVER <= share <= MAX_COVER
    change = np.abs(painted.astype(int) - wall.astype(int)).max(axis=2)
    assert np.median(change[mask > 0]) > 8  # visible where the mask says
    assert change[mask == 0].max(initial=0) == 0


def test_deposits_differ_from_draw_to_draw() -> None:
    rng = np.random.default_rng(3)
    masks = [paint_deposit(_wall(0), rng)[1] for _ in range(6)]
    overlaps = [
        np.count_nonzero(a & b) / (np.count_nonzero(a | b) or 1)
        for i, a in enumerate(masks)
        for b in masks[i + 1 :]
    ]
    assert max(overlaps) < 0.5


def test_training_views_turn_the_painted_clean_views_dirty_with_their_map() -> None:
    images = [_wall(i) for i in range(8)]
    labels = np.array([CLEAN_LABEL] * 6 + [DIRTY_LABEL] * 2)
    masks: list[np.ndarray | None] = [np.zeros((162, 216), np.uint8)] * 6 + [None, None]
    rng = np.random.default_rng(5)
    views = training_views(
        images, masks, np.arange(8), (144, 192), rng, labels=labels, synthetic_dirt=1.0
    )
    assert views.targets.tolist() == [DIRTY_LABEL] * 8
    assert views.maps is not None and views.known is not None
    assert bool(views.known[:6].all()) and not bool(views.known[6:].any())
    assert all(float(views.maps[i].max()) > 0.5 for i in range(6))


def test_without_synthetic_dirt_the_views_and_their_random_stream_are_unchanged() -> None:
    images = [_wall(i) for i in range(4)]
    labels = np.array([CLEAN_LABEL, CLEAN_LABEL, DIRTY_LABEL, CLEAN_LABEL])
    plain = training_views(images, None, np.arange(4), (144, 192), np.random.default_rng(9))
    labelled = training_views(
        images, None, np.arange(4), (144, 192), np.random.default_rng(9), labels=labels
    )
    assert labelled.targets.tolist() == labels.tolist()
    assert np.array_equal(plain.inputs.numpy(), labelled.inputs.numpy())


def test_class_weights_balance_the_labels_the_views_will_have() -> None:
    labels = np.array([CLEAN_LABEL] * 60 + [DIRTY_LABEL] * 40)
    assert class_weights(labels).tolist() == pytest.approx([100 / 120, 100 / 80])
    # 30 % of the 60 clean views turn dirty: 42 clean, 58 dirty expected
    assert class_weights(labels, 0.3).tolist() == pytest.approx([100 / 84, 100 / 116])
