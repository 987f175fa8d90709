"""Deposit masks from the renderer and the training-only deposit-map head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.vision import CLEAN, DIRTY, LABELS
from hil.render_domain import Domain
from models.batches import training_views
from models.dataset import (
    FRESH_SEED_BASE,
    MASK_SIZE,
    MASKS_FILE,
    MAX_SCENES,
    MIN_VISIBLE_SHARE,
    SCENE_STRIDE,
    generate,
    label_for,
    load_masks,
    render_with_mask,
)
from models.deposit_maps import (
    DEPOSIT_HEAD_KEY,
    FULL_SHARE,
    DepositHead,
    cell_targets,
    load_deposit_head,
    map_loss,
    training_masks,
)
from models.folders import Sample, list_samples
from models.train import train
from models.train_options import TrainConfig

SEEDS = range(FRESH_SEED_BASE + 500, FRESH_SEED_BASE + 530)


def test_a_dirty_randomised_image_carries_a_mask_where_it_differs_and_a_clean_one_none() -> None:
    dirty_seeds = [s for s in SEEDS if label_for(s) == DIRTY]
    clean_seeds = [s for s in SEEDS if label_for(s) == CLEAN]
    for seed in clean_seeds[:3]:
        sample = render_with_mask(seed, width=160, height=120, domain=Domain())
        assert sample.mask is None and sample.scene == seed
    replaced = 0
    for seed in dirty_seeds:
        sample = render_with_mask(seed, width=160, height=120, domain=Domain())
        mask = sample.mask
        assert mask is not None and mask.shape == MASK_SIZE and mask.dtype == np.uint8
        assert 0.5 <= sample.dirt <= 1.0 and sample.label == DIRTY
        # every dirty label shows: INTER_AREA keeps the share of changed pixels
        assert float(mask.mean()) / 255 >= MIN_VISIBLE_SHARE * 0.99
        assert (sample.scene - seed) % SCENE_STRIDE == 0 and label_for(sample.scene) == DIRTY
        replaced += sample.scene != seed
    assert replaced < len(dirty_seeds) / 2


def test_a_dirty_scene_that_does_not_show_is_replaced_by_the_next_one() -> None:
    """Asked for more than any scene shows, the sample tries every scene and keeps the one that
    shows most at dirt 1; with one scene that is the rule sets were made with before v6."""
    seed = next(s for s in SEEDS if label_for(s) == DIRTY)
    sample = render_with_mask(seed, width=160, height=120, domain=Domain(), min_visible_share=1.0)
    shares = []
    for k in range(MAX_SCENES):
        alone = render_with_mask(
            seed + k * SCENE_STRIDE,
            width=160,
            height=120,
            domain=Domain(),
            min_visible_share=1.0,
            max_scenes=1,
        )
        assert alone.scene == seed + k * SCENE_STRIDE and alone.dirt == 1.0
        assert alone.mask is not None
        shares.append(float(alone.mask.mean()))
    assert len(set(shares)) > 1  # the scenes differ: trying them is not for nothing
    assert sample.scene == seed + int(np.argmax(shares)) * SCENE_STRIDE and sample.dirt == 1.0
    assert sample.mask is not None and float(sample.mask.mean()) == max(shares)


def test_generate_writes_a_mask_for_every_dirty_image_and_none_for_clean(tmp_path: Path) -> None:
    generate(tmp_path, {"train": 6}, width=64, height=48, render_width=160, render_height=120)
    masks = load_masks(tmp_path)
    assert (tmp_path / MASKS_FILE).is_file()
    names = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")}
    assert set(masks) == {n for n in names if f"/{DIRTY}/" in n}
    assert load_masks(tmp_path / "nowhere") == {}


def test_training_masks_zero_clean_images_and_leave_unmasked_dirty_ones_unknown(
    tmp_path: Path,
) -> None:
    generate(tmp_path, {"train": 4}, width=64, height=48, render_width=160, render_height=120)
    samples = list_samples(tmp_path / "train")
    stray = Sample(tmp_path / "train" / DIRTY / "field.jpg", LABELS.index(DIRTY))
    masks = training_masks(tmp_path, [*samples, stray], [(30, 40, 3)] * (len(samples) + 1))
    assert masks is not None
    for sample, mask in zip(samples, masks, strict=False):
        assert mask is not None and mask.shape == (30, 40)
        if sample.label == LABELS.index(CLEAN):
            assert not mask.any()
    assert masks[-1] is None
    assert training_masks(tmp_path / "train", samples, [(30, 40, 3)] * len(samples)) is None


def test_cell_targets_cover_the_layer3_grid_and_saturate_at_the_full_share() -> None:
    full = np.full((162, 216), 255, np.uint8)
    assert cell_targets(full, (144, 192)).shape == (9, 12)
    assert cell_targets(full, (144, 192)).min() == 1.0
    assert cell_targets(np.zeros_like(full), (144, 192)).max() == 0.0
    faint = np.full((160, 192), round(255 * FULL_SHARE / 2), np.uint8)
    assert cell_targets(faint, (160, 192)).mean() == pytest.approx(0.5, abs=0.05)


def test_the_map_follows_the_image_through_crop_and_flip() -> None:
    image = np.zeros((162, 216, 3), np.uint8)
    mask = np.zeros((162, 216), np.uint8)
    image[20:60, 10:60] = 255  # a bright deposit in the top-left, and its mask
    mask[20:60, 10:60] = 255
    rng = np.random.default_rng(7)
    for _ in range(12):
        inputs, maps, known, _labels = training_views(
            [image], [mask], np.array([0]), (144, 192), rng
        )
        assert maps is not None and known is not None and bool(known[0])
        brightness = inputs[0].mean(0).numpy()
        grid = brightness.reshape(9, 16, 12, 16).mean(axis=(1, 3))
        cells = maps[0].numpy()
        assert (cells >= 0.99).any() and (cells == 0).any()
        assert grid[cells >= 0.99].mean() > grid[cells == 0].mean() + 1.0
        assert grid[cells == 0].max() < grid.min() + 0.2  # no deposit where the map has none


def test_the_map_loss_ignores_images_without_a_map_and_learns_from_the_others() -> None:
    logits = torch.zeros(2, 9, 12, requires_grad=True)
    targets = torch.stack([torch.ones(9, 12), torch.zeros(9, 12)])
    loss = map_loss(logits, targets, torch.tensor([True, False]))
    loss.backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None
    assert float(logits.grad[0].abs().sum()) > 0 and float(logits.grad[1].abs().sum()) == 0
    none = map_loss(logits, targets, torch.tensor([False, False]))
    assert none.item() == 0.0


def test_a_checkpoint_keeps_its_deposit_head_and_a_warm_start_continues_it(
    tmp_path: Path,
) -> None:
    """A later training stage starts the map head where the last one left it, not from noise."""
    generate(
        tmp_path, {"train": 8, "val": 4}, width=64, height=48, render_width=96, render_height=72
    )
    config = TrainConfig(input_size=(48, 64), epochs=1, batch_size=4, init_from="", max_steps=2)
    first = train(tmp_path, tmp_path / "first.pt", config).checkpoint
    saved = torch.load(first, map_location="cpu", weights_only=True)[DEPOSIT_HEAD_KEY]
    assert saved is not None and saved["conv.weight"].shape == (1, 256, 1, 1)

    head = DepositHead()
    assert load_deposit_head(head, str(first))
    assert torch.equal(head.conv.weight, saved["conv.weight"])
    no_maps = train(tmp_path, tmp_path / "plain.pt", replace(config, deposit_maps=False)).checkpoint
    assert torch.load(no_maps, map_location="cpu", weights_only=True)[DEPOSIT_HEAD_KEY] is None
    assert not load_deposit_head(DepositHead(), str(no_maps))
    assert not load_deposit_head(DepositHead(), "")
