"""The synthetic duct renderer: deterministic, varied, and graded in dirt."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hil.render import CLEAN_MAX_DIRT, DIRTY_MIN_DIRT, render_duct

SEEDS = range(12)
SMALL = (128, 96)


def _floor_darkening(image: np.ndarray) -> float:
    """Brightness of the lower half relative to the upper half: dust settles on the floor."""
    value = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 2].astype(np.float64)
    half = image.shape[0] // 2
    return float(value[half:].mean() / max(value[:half].mean(), 1e-9))


def _lower_saturation(image: np.ndarray) -> float:
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1].astype(np.float64)
    return float(saturation[image.shape[0] // 2 :].mean())


def _mean_over_seeds(statistic, dirt: float, *, nuisance: bool) -> float:
    return float(
        np.mean([statistic(render_duct(s, dirt, *SMALL, nuisance=nuisance)) for s in SEEDS])
    )


def test_label_thresholds_leave_an_ambiguous_band() -> None:
    assert 0.0 < CLEAN_MAX_DIRT < DIRTY_MIN_DIRT < 1.0


@pytest.mark.parametrize("nuisance", [False, True])
def test_same_arguments_give_the_same_image(nuisance: bool) -> None:
    first = render_duct(7, 0.6, *SMALL, nuisance=nuisance)
    second = render_duct(7, 0.6, *SMALL, nuisance=nuisance)
    assert np.array_equal(first, second)


def test_different_seeds_give_different_ducts() -> None:
    images = [render_duct(s, 0.3, *SMALL).astype(np.int16) for s in range(6)]
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            assert np.abs(images[a] - images[b]).mean() > 5.0


@pytest.mark.parametrize(("width", "height"), [(16, 16), (128, 96), (224, 224), (641, 479)])
def test_shape_and_dtype_follow_the_requested_size(width: int, height: int) -> None:
    image = render_duct(3, 0.5, width, height)
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8
    assert image.flags["C_CONTIGUOUS"]


def test_default_size_is_vga() -> None:
    assert render_duct(0, 0.0).shape == (480, 640, 3)


def test_images_are_neither_black_nor_blown_out() -> None:
    for seed in SEEDS:
        image = render_duct(seed, 0.5, *SMALL)
        assert 25 < image.mean() < 230, seed
        assert image.std() > 10, seed


def test_nuisance_seed_keeps_the_duct_and_changes_the_noise() -> None:
    same_duct = []
    other_duct = []
    for seed in range(6):
        a = render_duct(seed, 0.4, *SMALL, nuisance_seed=1000).astype(np.int16)
        b = render_duct(seed, 0.4, *SMALL, nuisance_seed=1001).astype(np.int16)
        c = render_duct(seed + 100, 0.4, *SMALL, nuisance_seed=1000).astype(np.int16)
        assert not np.array_equal(a, b)
        same_duct.append(np.abs(a - b).mean())
        other_duct.append(np.abs(a - c).mean())
    assert np.mean(same_duct) < 0.6 * np.mean(other_duct)


def test_nuisance_alters_the_picture_but_not_the_scene() -> None:
    to_nuisance = []
    to_other_duct = []
    for seed in range(6):
        plain = render_duct(seed, 0.3, *SMALL, nuisance=False).astype(np.int16)
        noisy = render_duct(seed, 0.3, *SMALL, nuisance=True).astype(np.int16)
        other = render_duct(seed + 50, 0.3, *SMALL, nuisance=False).astype(np.int16)
        assert not np.array_equal(plain, noisy)
        to_nuisance.append(np.abs(plain - noisy).mean())
        to_other_duct.append(np.abs(plain - other).mean())
    assert np.mean(to_nuisance) < np.mean(to_other_duct)


def test_nuisance_varies_exposure_between_images() -> None:
    def brightness_spread(nuisance: bool) -> float:
        return float(np.std([render_duct(s, 0.0, *SMALL, nuisance=nuisance).mean() for s in SEEDS]))

    assert brightness_spread(True) > brightness_spread(False)


@pytest.mark.parametrize("nuisance", [False, True])
def test_the_floor_darkens_monotonically_with_dirt(nuisance: bool) -> None:
    levels = [0.0, CLEAN_MAX_DIRT, DIRTY_MIN_DIRT, 1.0]
    ratios = [_mean_over_seeds(_floor_darkening, d, nuisance=nuisance) for d in levels]
    assert ratios[0] > ratios[1] > ratios[2] > ratios[3]
    # Clean images stay close to clean; dirty ones are clearly apart.
    assert ratios[0] - ratios[1] < ratios[1] - ratios[2]


def test_dirt_brings_colour_to_the_lower_half() -> None:
    levels = [0.0, DIRTY_MIN_DIRT, 1.0]
    saturation = [_mean_over_seeds(_lower_saturation, d, nuisance=False) for d in levels]
    assert saturation[0] < saturation[1] < saturation[2]


def test_more_dirt_moves_further_from_the_clean_duct() -> None:
    for seed in range(4):
        clean = render_duct(seed, 0.0, *SMALL, nuisance=False).astype(np.int16)
        distances = [
            np.abs(render_duct(seed, d, *SMALL, nuisance=False).astype(np.int16) - clean).mean()
            for d in (0.25, 0.5, 1.0)
        ]
        assert distances[0] < distances[1] < distances[2], seed


@pytest.mark.parametrize("dirt", [-0.01, 1.01, float("nan")])
def test_dirt_outside_zero_to_one_is_refused(dirt: float) -> None:
    with pytest.raises(ValueError, match="dirt"):
        render_duct(0, dirt, *SMALL)


def test_too_small_an_image_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        render_duct(0, 0.1, 8, 8)


def test_negative_seeds_are_distinct_from_positive_ones() -> None:
    assert not np.array_equal(render_duct(-5, 0.2, *SMALL), render_duct(5, 0.2, *SMALL))
