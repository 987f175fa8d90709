"""Domain randomisation: named families that can be kept or left out, and what each shows."""

from __future__ import annotations

import numpy as np
import pytest

from hil.render import look_for, render_duct
from hil.render_domain import (
    ALL_FAMILIES,
    DEPOSITS,
    GROUPS,
    MATERIALS,
    Domain,
    UnknownFamilyError,
    led_bgr,
)

SMALL = (128, 96)
SEEDS = range(40)


def test_family_names_are_unique_across_groups() -> None:
    assert len(ALL_FAMILIES) == len(set(ALL_FAMILIES)) == sum(len(g) for g in GROUPS.values())


def test_exclude_leaves_a_family_out_of_every_look() -> None:
    domain = Domain.of(exclude=["rust", "flex"])
    looks = [look_for(seed, domain) for seed in SEEDS]
    assert all("rust" not in look.families and "flex" not in look.families for look in looks)
    assert {look.material for look in looks} == set(MATERIALS) - {"flex"}


def test_include_keeps_only_the_named_family_of_its_group() -> None:
    domain = Domain.of(include=["mould"])
    looks = [look_for(seed, domain) for seed in SEEDS]
    assert all(look.deposits == ("mould",) for look in looks)
    # Other groups stay whole.
    assert len({look.material for look in looks}) > 3


def test_every_deposit_kind_and_material_appears_in_the_full_domain() -> None:
    looks = [look_for(seed, Domain()) for seed in range(200)]
    assert {k for look in looks for k in look.deposits} == set(DEPOSITS)
    assert {look.material for look in looks} == set(MATERIALS)


def test_unknown_family_is_refused_by_name() -> None:
    with pytest.raises(UnknownFamilyError, match="rustt"):
        Domain.of(exclude=["rustt"])


def test_a_domain_without_any_material_is_refused() -> None:
    with pytest.raises(UnknownFamilyError, match="material"):
        Domain.of(exclude=list(MATERIALS))


def test_randomised_render_is_deterministic_and_sized() -> None:
    first = render_duct(11, 0.7, *SMALL, domain=Domain())
    assert first.shape == (SMALL[1], SMALL[0], 3)
    assert np.array_equal(first, render_duct(11, 0.7, *SMALL, domain=Domain()))


def test_a_clean_duct_shows_no_deposit_but_dust_film() -> None:
    domain = Domain.of(exclude=["dust"])
    for seed in range(4):
        clean = render_duct(seed, 0.0, *SMALL, nuisance=False, domain=domain)
        barely = render_duct(seed, 0.25, *SMALL, nuisance=False, domain=domain)
        assert np.array_equal(clean, barely), seed


@pytest.mark.parametrize("kind", DEPOSITS)
def test_each_deposit_kind_alone_visibly_soils_the_duct(kind: str) -> None:
    domain = Domain.of(include=[kind])
    changes = []
    for seed in range(6):
        clean = render_duct(seed, 0.0, 192, 144, nuisance=False, domain=domain)
        dirty = render_duct(seed, 1.0, 192, 144, nuisance=False, domain=domain)
        changed = np.abs(dirty.astype(np.int16) - clean.astype(np.int16)).max(axis=2) > 24
        changes.append(changed.mean())
    assert np.median(changes) > 0.002, changes


@pytest.mark.parametrize("material", MATERIALS)
def test_each_material_renders_a_usable_picture(material: str) -> None:
    domain = Domain.of(include=[material])
    means = [render_duct(seed, 0.5, *SMALL, domain=domain).mean() for seed in range(6)]
    assert 15 < np.median(means) < 235, means


def test_led_colour_follows_the_temperature() -> None:
    warm, cool = led_bgr(2700), led_bgr(6500)
    assert warm[0] < cool[0]  # blue
    assert warm[2] >= cool[2]  # red
