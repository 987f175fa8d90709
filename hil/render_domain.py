"""Named families of the renderer's domain randomisation, and what one seed draws from them.

A model trained on one renderer learns that renderer. To learn dirt instead, the training images
vary every nuisance a real duct camera meets, in families with names: deposit kinds, duct
materials, geometry, lighting and camera flaws. Each family can be kept or left out by name, so a
model can be trained without a family and tested on it (leave-one-family-out: the honest measure
of generalisation when no real duct set is public).

``Domain.of(exclude=["rust"])`` is every family but rust stains; ``Domain.of(include=["rust"])``
keeps only rust among the deposit kinds (the other groups stay whole). A seed draws a
:class:`Look` from a domain: which material, which deposit kinds, which lights and camera flaws.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

DEPOSITS: tuple[str, ...] = (
    "dust",  # fine dust film
    "specks",  # particulate specks and grit
    "clumps",  # clumps and debris piles
    "lint",  # lint and fibres
    "grease",
    "mould",  # mould colonies
    "insulation",  # insulation fragments
    "rust",  # rust and corrosion stains
)
MATERIALS: tuple[str, ...] = (
    "galvanised",  # galvanised steel, no visible spangle
    "spangle",  # hot-dip galvanised with spangle
    "painted",
    "stainless",
    "lined",  # internally lined / duct board
    "flex",  # flexible foil duct
)
SECTIONS: tuple[str, ...] = ("rect", "round", "spiral")
FEATURES: tuple[str, ...] = ("bend", "tee", "damper", "vanes")
"""Geometry seen from the camera: an elbow close ahead, a branch opening, damper blades or
turning vanes in the view (occluders)."""
LIGHTING: tuple[str, ...] = ("warm", "cool", "two_lights", "shadow", "glare")
"""LED colour temperature (warm 2700-4000 K, cool 4000-6500 K), a second light, a hard shadow,
specular glare."""
CAMERA: tuple[str, ...] = (
    "fisheye",
    "defocus",
    "motion_blur",
    "noise",
    "white_balance",
    "exposure_error",
    "jpeg",
)

GROUPS: dict[str, tuple[str, ...]] = {
    "deposit": DEPOSITS,
    "material": MATERIALS,
    "section": SECTIONS,
    "feature": FEATURES,
    "lighting": LIGHTING,
    "camera": CAMERA,
}
"""Every family by group. Names are unique across groups."""

ALL_FAMILIES: tuple[str, ...] = tuple(name for names in GROUPS.values() for name in names)

_NEEDS_ONE = ("deposit", "material", "section")
"""Groups a seed must draw from: a domain cannot leave all of them out."""
_DEPOSIT_COUNT_ODDS = (0.45, 0.35, 0.2)
"""How many deposit kinds one duct collects (1, 2 or 3)."""
_FEATURE_ODDS = {"bend": 0.2, "tee": 0.12, "damper": 0.12, "vanes": 0.08}
_LIGHTING_ODDS = {"two_lights": 0.35, "shadow": 0.25, "glare": 0.3}
_CAMERA_ODDS = {
    "fisheye": 0.45,
    "defocus": 0.3,
    "motion_blur": 0.2,
    "noise": 0.9,
    "white_balance": 0.8,
    "exposure_error": 0.8,
    "jpeg": 0.85,
}


class UnknownFamilyError(ValueError):
    """A family name the renderer does not know."""


@dataclass(frozen=True, slots=True)
class Domain:
    """The families a renderer may draw from."""

    families: frozenset[str] = frozenset(ALL_FAMILIES)

    @classmethod
    def of(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Domain:
        """Every family, restricted to ``include`` in the groups it names, less ``exclude``."""
        include, exclude = list(include), list(exclude)
        unknown = sorted(set(include + exclude) - set(ALL_FAMILIES))
        if unknown:
            raise UnknownFamilyError(
                f"unknown renderer famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                f"known: {', '.join(ALL_FAMILIES)}"
            )
        kept: set[str] = set()
        for names in GROUPS.values():
            named = [n for n in names if n in include]
            kept.update(named or names)
        kept -= set(exclude)
        for group in _NEEDS_ONE:
            if not kept & set(GROUPS[group]):
                raise UnknownFamilyError(
                    f"the domain leaves out every {group} family; keep at least one of "
                    f"{', '.join(GROUPS[group])}"
                )
        return cls(frozenset(kept))

    def group(self, group: str) -> tuple[str, ...]:
        """The families of ``group`` this domain keeps, in the canonical order."""
        return tuple(n for n in GROUPS[group] if n in self.families)

    def describe(self) -> str:
        """``all``, or what is left out / kept, for data-set records."""
        missing = [n for n in ALL_FAMILIES if n not in self.families]
        return "all" if not missing else "all but " + ", ".join(missing)


@dataclass(frozen=True, slots=True)
class Look:
    """What one seed draws from a domain."""

    material: str
    deposits: tuple[str, ...]
    section: str
    features: tuple[str, ...]
    lighting: tuple[str, ...]
    camera: tuple[str, ...]
    led_kelvin: float

    @property
    def families(self) -> tuple[str, ...]:
        """Every family this look shows, for per-image records and leave-one-out filters."""
        return (
            self.material,
            *self.deposits,
            self.section,
            *self.features,
            *self.lighting,
            *self.camera,
        )


def draw_look(rng: np.random.Generator, domain: Domain) -> Look:
    """One seed's material, deposit kinds, geometry, lighting and camera flaws."""
    deposits = domain.group("deposit")
    count = int(rng.choice(len(_DEPOSIT_COUNT_ODDS), p=_DEPOSIT_COUNT_ODDS)) + 1
    picked = rng.choice(len(deposits), size=min(count, len(deposits)), replace=False)
    materials = domain.group("material")
    material = materials[int(rng.integers(len(materials)))]
    sections = domain.group("section")
    section = sections[int(rng.integers(len(sections)))]
    if material == "flex" and "spiral" in sections:
        section = "spiral"  # a flexible duct is round with a helical wire
    features = _maybe(rng, _FEATURE_ODDS, domain)
    lighting = _maybe(rng, _LIGHTING_ODDS, domain)
    temperatures = [t for t, name in ((2700, "warm"), (6500, "cool")) if name in domain.families]
    if len(temperatures) == 2:
        kelvin = float(rng.uniform(2700, 6500))
    elif temperatures == [2700]:
        kelvin = float(rng.uniform(2700, 4000))
    elif temperatures == [6500]:
        kelvin = float(rng.uniform(4000, 6500))
    else:
        kelvin = float(rng.uniform(4000, 4500))  # a neutral LED
    return Look(
        material=material,
        deposits=tuple(deposits[i] for i in sorted(picked.tolist())),
        section=section,
        features=features,
        lighting=tuple(
            [n for n in ("warm", "cool") if n in domain.families and _in_band(n, kelvin)]
            + list(lighting)
        ),
        camera=_maybe(rng, _CAMERA_ODDS, domain),
        led_kelvin=kelvin,
    )


def _in_band(name: str, kelvin: float) -> bool:
    return kelvin < 4000 if name == "warm" else kelvin >= 4000


def _maybe(rng: np.random.Generator, odds: dict[str, float], domain: Domain) -> tuple[str, ...]:
    """Each optional family with its odds; the draws do not depend on the domain."""
    rolls = rng.random(len(odds))
    return tuple(
        name
        for (name, chance), roll in zip(odds.items(), rolls, strict=True)
        if roll < chance and name in domain.families
    )


def led_bgr(kelvin: float) -> tuple[float, float, float]:
    """Approximate BGR of a white LED at ``kelvin`` (normalised so that red is 1 when warm)."""
    # Planckian-locus fit (Tanner Helland), good to a few percent for 1000-40000 K.
    t = kelvin / 100.0
    red = 1.0 if t <= 66 else min(1.0, 1.2929 * (t - 60) ** -0.1332)
    green = 0.3901 * np.log(t) - 0.6318 if t <= 66 else 1.1299 * (t - 60) ** -0.0755
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.5432 * np.log(t - 10) - 1.1963)
    values = np.clip([blue, green, red], 0.05, 1.0)
    values = values / values.max()
    return float(values[0]), float(values[1]), float(values[2])
