"""Deposit kinds of the randomised renderer, each with wide colour, size, density and placement.

One seed collects the kinds its :class:`hil.render_domain.Look` names (see
:data:`hil.render_domain.DEPOSITS`). As in :mod:`hil.render_dirt`, the whole layout is drawn from
the seed and ``dirt`` only decides how much of it shows, so soiling grows in place. Below
``CLEAN_MAX_DIRT`` nothing but a faint dust film shows (a clean duct); from ``DIRTY_MIN_DIRT``
every kind is plainly visible, from a few scattered specks to a heavy layer (the seed's density),
in any colour: a visible deposit is dirt whatever it looks like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from numpy.typing import NDArray

from hil.render_dirt import (
    DUST_KNOTS,
    DustStyle,
    Knots,
    _bgr_table,
    _blobs,
    _DebrisPlan,
    _fixed,
    _GreasePlan,
    _Layer,
    _LintPlan,
    _MouldPlan,
    _Walls,
    draw_dust_style,
    level,
)
from hil.render_domain import Look
from hil.render_scene import F32, DuctScene

F64 = NDArray[np.float64]

DEPOSIT_KNOTS: Knots = ((0.0, 0.25, 0.5, 1.0), (0.0, 0.0, 0.6, 1.0))
"""Share of a kind's layout shown at a dirt level: nothing while clean, plain from 0.5."""
FILM_KNOTS = DUST_KNOTS

_ANY_COLOUR_ODDS = 0.3
"""Share of seeds whose deposits of a kind take arbitrary colours instead of the usual ones."""
_MAX_CLUMPS = 30
_CLUMP_BLOBS = 6
_MAX_FRAGMENTS = 30
_MAX_STAINS = 8

_GRIT = np.array(
    [
        [0.06, 0.07, 0.08],
        [0.15, 0.2, 0.26],
        [0.22, 0.24, 0.26],
        [0.1, 0.16, 0.24],
        [0.3, 0.36, 0.42],
        [0.5, 0.55, 0.58],
        [0.75, 0.78, 0.8],
    ]
)
_LINT = np.array(
    [[0.75, 0.75, 0.75], [0.6, 0.62, 0.65], [0.8, 0.7, 0.6], [0.45, 0.45, 0.5], [0.3, 0.3, 0.32]]
)
_MOULD = np.array(
    [[0.12, 0.22, 0.1], [0.04, 0.05, 0.04], [0.7, 0.75, 0.72], [0.15, 0.45, 0.7], [0.3, 0.5, 0.3]]
)
_INSULATION = np.array(
    [[0.35, 0.8, 0.95], [0.7, 0.62, 0.95], [0.85, 0.85, 0.85], [0.45, 0.6, 0.65], [0.2, 0.5, 0.8]]
)
_RUST = np.array([[0.08, 0.25, 0.5], [0.05, 0.14, 0.33], [0.12, 0.35, 0.62], [0.06, 0.1, 0.2]])
_GREASE = np.array([[0.05, 0.2, 0.35], [0.04, 0.06, 0.08], [0.1, 0.3, 0.4]])


def _colours(rng: np.random.Generator, palette: F64, count: int) -> F64:
    """Per-deposit BGR colours: the kind's usual palette, or for some seeds any colour at all."""
    if rng.random() < _ANY_COLOUR_ODDS:
        hsv = np.stack(
            [rng.uniform(0, 180, count), rng.uniform(40, 240, count), rng.uniform(25, 240, count)],
            axis=1,
        )
        bgr = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0]
        return np.asarray(bgr, np.float64) / 255.0
    picks = palette[rng.integers(0, len(palette), count)]
    return np.asarray(np.clip(picks * rng.uniform(0.7, 1.25, (count, 1)), 0.0, 1.0))


@dataclass(frozen=True, slots=True)
class Stain:
    """A soft-edged deposit that tints what lies beneath (grease, rust)."""

    cover: NDArray[np.uint8]
    colour: tuple[float, float, float]
    opacity: float
    gloss: float
    """Added specular strength at full cover (grease shines, rust is matte: negative)."""


@dataclass(frozen=True, slots=True)
class RandomDeposits:
    """Every deposit of one randomised frame, applied band by band."""

    film: DustStyle | None
    film_amount: float
    layer: _Layer
    stains: tuple[Stain, ...]

    def apply(self, rows: slice, albedo: F32, spec: F32) -> None:
        for stain in self.stains:
            band = stain.cover[rows]
            if not band.any():
                continue
            alpha = band.astype(np.float32) * np.float32(stain.opacity / 255)
            for channel, value in enumerate(stain.colour):
                albedo[channel] += (np.float32(value) - albedo[channel]) * alpha
            spec += np.float32(stain.gloss) * alpha * np.maximum(spec, np.float32(0.2))
            np.maximum(spec, np.float32(0.0), out=spec)
        cover_band = self.layer.cover[rows]
        if not cover_band.any():
            return
        cover = cover_band.astype(np.float32) * np.float32(1 / 255)
        albedo *= np.float32(1.0) - cover
        colour = self.layer.colour[rows]
        for channel in range(3):
            albedo[channel] += colour[..., channel].astype(np.float32) * np.float32(1 / 255)
        spec *= np.float32(1.0) - cover


def draw_film(rng: np.random.Generator) -> DustStyle:
    """A dust film from light beige through grey-brown to black soot."""
    return draw_dust_style(
        rng, brown=(0.0, 1.0), lightness=(0.1, 0.85), wall_share=(0.2, 0.9), patchiness=(0.6, 1.8)
    )


def draw_random_deposits(
    rng: np.random.Generator, scene: DuctScene, dirt: float, look: Look
) -> RandomDeposits:
    """The deposits of ``look`` at ``dirt``. Every kind's layout is drawn whether or not the
    look has it, so the stream (and the other kinds' layouts) never depends on the look.

    From ``DIRTY_MIN_DIRT`` a dirty label must be visible: when the seed's layout shows fewer
    than :data:`MIN_VISIBLE_SHARE` of the frame at the model's resolution (a sparse seed, or its
    deposits drawn far down the duct), more of the same layout is shown until it does."""
    walls = _Walls(scene, rng)
    film = draw_film(rng)
    density = np.maximum(np.exp(rng.uniform(math.log(0.3), 0.0, 8)), _DENSITY_FLOORS)
    placement = rng.uniform(0.15, 0.95, 8)  # share of each kind that lies on the floor
    plans = _draw_plans(walls, placement)
    shown = level(DEPOSIT_KNOTS, dirt)
    kinds = set(look.deposits)
    layer, stains = _render_plans(walls, plans, kinds, shown * density)
    if dirt >= DEPOSIT_KNOTS[0][2] and kinds - {"dust"}:
        for boost in _BOOSTS[1:]:
            if visible_share(layer, stains, scene.width) >= MIN_VISIBLE_SHARE:
                break
            layer, stains = _render_plans(walls, plans, kinds, shown * boost * density)
    film_amount = level(FILM_KNOTS, dirt) if "dust" in kinds else 0.0
    return RandomDeposits(
        film=film if film_amount > 0 else None,
        film_amount=film_amount,
        layer=layer,
        stains=tuple(stains),
    )


MODEL_WIDTH = 192
"""Width of the shipped model's input: visibility is judged at the resolution it sees."""
MIN_VISIBLE_SHARE = 0.004
"""Share of the frame a dirty duct's deposits cover at least (at :data:`MODEL_WIDTH`)."""
_BOOSTS = (1.0, 2.0, 4.0, 8.0)
"""Multipliers of the seed's densities tried in turn (capped at the whole layout)."""


def visible_share(layer: _Layer, stains: Sequence[Stain], width: int) -> float:
    """Share of the frame, scaled to :data:`MODEL_WIDTH`, that deposits cover by half or more."""
    cover = layer.cover.astype(np.float32)
    for stain in stains:
        np.maximum(cover, stain.cover.astype(np.float32) * np.float32(stain.opacity), out=cover)
    scale = min(1.0, MODEL_WIDTH / width)
    small = cv2.resize(cover, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float((small >= 128).mean())


@dataclass(frozen=True, slots=True)
class _Plans:
    """Every kind's layout for one seed, drawn before any is rendered."""

    specks: _DebrisPlan
    clumps: _ClumpPlan
    lints: tuple[_LintPlan, _LintPlan]
    grease: _GreasePlan
    grease_colour: F64
    mould: _MouldPlan
    fragments: _FragmentPlan
    rust: _GreasePlan
    rust_colour: F64


def _draw_plans(walls: _Walls, placement: F64) -> _Plans:
    rng = walls.rng
    specks = _DebrisPlan.draw(walls)
    specks = replace(specks, tones=_colours(rng, _GRIT, len(specks.tones)))
    clumps = _ClumpPlan.draw(walls, float(placement[2]), _colours(rng, _GRIT, _MAX_CLUMPS))
    lints = (_LintPlan.draw(walls), _LintPlan.draw(walls))
    lints = (  # the second half dark: grey fluff, black fibres
        replace(lints[0], tones=_colours(rng, _LINT, len(lints[0].tones))),
        replace(lints[1], tones=_colours(rng, _LINT, len(lints[1].tones)) * 0.45),
    )
    grease = _GreasePlan.draw(walls)
    grease = replace(grease, shapes=grease.shapes * rng.uniform(1.5, 3.0))
    grease_colour = _colours(rng, _GREASE, 1)[0]
    mould = _MouldPlan.draw(walls)
    hue = _colours(rng, _MOULD, 1)[0]
    black = np.array([0.04, 0.05, 0.04])
    shade = rng.uniform(0.3, 1.0, (*mould.tones.shape[:2], 1))
    grow = rng.uniform(1.5, 3.0)
    mould = replace(
        mould,
        tones=black + (hue - black) * shade,
        spread=mould.spread * grow,
        radii=mould.radii * grow,
    )
    fragments = _FragmentPlan.draw(walls, float(placement[6]), _colours(rng, _INSULATION, 30))
    rust = _GreasePlan.draw(walls)
    rust = replace(rust, shapes=rust.shapes * rng.uniform(1.0, 2.5))
    rust_colour = _colours(rng, _RUST, 1)[0]
    return _Plans(specks, clumps, lints, grease, grease_colour, mould, fragments, rust, rust_colour)


_DENSITY_FLOORS = np.array([0.0, 0.0, 0.0, 0.3, 0.5, 0.5, 0.2, 0.3])
"""Least density of each kind (by index of ``density``): some kinds are never sparse."""


def _render_plans(
    walls: _Walls, plans: _Plans, kinds: set[str], amounts: F64
) -> tuple[_Layer, list[Stain]]:
    """Render the ``kinds`` of ``plans``, kind ``i`` at ``amounts[i]`` of its layout."""
    shape = (walls.scene.height, walls.scene.width)
    layer = _Layer(colour=np.zeros((*shape, 3), np.uint8), cover=np.zeros(shape, np.uint8))
    stains: list[Stain] = []
    amount = [min(1.0, float(a)) for a in amounts]
    if "specks" in kinds:
        plans.specks.render(walls, layer, 1.0, amount[1])  # full-size grains, fewer
    if "clumps" in kinds:
        plans.clumps.render(walls, layer, amount[2])
    if "lint" in kinds:
        for plan in plans.lints:
            _render_fibres(walls, layer, plan, amount[3])
    if "grease" in kinds:
        stains += _stain(walls, plans.grease, amount[4], plans.grease_colour, 0.9, 0.4)
    if "mould" in kinds:
        plans.mould.render(walls, layer, amount[5])
    if "insulation" in kinds:
        plans.fragments.render(walls, layer, amount[6])
    if "rust" in kinds:
        stains += _stain(walls, plans.rust, amount[7], plans.rust_colour, 0.85, -0.8)
        pits = replace(
            plans.specks, tones=np.clip(plans.specks.tones * 0 + plans.rust_colour * 0.6, 0, 1)
        )
        pits.render(walls, layer, 1.0, amount[7] * 0.3)
    return layer, stains


def _stain(
    walls: _Walls,
    plan: _GreasePlan,
    amount: float,
    colour: F64,
    opacity: float,
    gloss: float,
) -> list[Stain]:
    if amount <= 0:
        return []
    cover = np.zeros((walls.scene.height, walls.scene.width), np.uint8)
    plan.render(walls, cover, amount)
    if not cover.any():
        return []
    soft = cv2.GaussianBlur(cover, (0, 0), max(0.8, walls.scene.width / 300))
    bgr = (float(colour[0]), float(colour[1]), float(colour[2]))
    return [Stain(np.asarray(soft, np.uint8), bgr, opacity, gloss)]


@dataclass(frozen=True, slots=True)
class _ClumpPlan:
    """Piles of debris: a few overlapping blobs each, shaded darker at their base."""

    centres: F64
    tangents: F64
    shapes: F64
    """(pile, blob, vertex, 2) outlines in metres."""
    tones: F64

    @classmethod
    def draw(cls, walls: _Walls, floor_bias: float, tones: F64) -> _ClumpPlan:
        rng = walls.rng
        centres, tangents = walls.points(_MAX_CLUMPS, floor_bias, (0.2, 5.0))
        size = np.exp(rng.uniform(math.log(0.008), math.log(0.05), _MAX_CLUMPS))
        blobs = _blobs(rng, _MAX_CLUMPS * _CLUMP_BLOBS, 9, 0.35).reshape(
            _MAX_CLUMPS, _CLUMP_BLOBS, 9, 2
        )
        offsets = rng.normal(0, 0.6, (_MAX_CLUMPS, _CLUMP_BLOBS, 1, 2))
        radii = rng.uniform(0.4, 1.0, (_MAX_CLUMPS, _CLUMP_BLOBS, 1, 1))
        shapes = (blobs * radii + offsets) * size[:, None, None, None]
        return cls(centres, tangents, shapes, tones)

    def render(self, walls: _Walls, layer: _Layer, amount: float) -> None:
        count = math.ceil(amount * _MAX_CLUMPS) if amount > 0 else 0
        if count == 0:
            return
        grow = 0.5 + 0.5 * min(1.0, amount * 2)
        flat = self.shapes[:count].reshape(count, -1, 2) * grow
        pixels = walls.outline(self.centres[:count], self.tangents[:count], flat)
        pixels = pixels.reshape(count, _CLUMP_BLOBS, -1, 2)
        for i in range(count):
            if not walls.visible(pixels[i]).any():
                continue
            colours = _bgr_table(self.tones[i] * np.linspace(0.6, 1.1, _CLUMP_BLOBS)[:, None], 1.0)
            for j, outline in enumerate(_fixed(pixels[i])):
                layer.fill(cv2.convexHull(outline), colours[j], 1.0)


@dataclass(frozen=True, slots=True)
class _FragmentPlan:
    """Insulation fragments: fluffy irregular tufts with fibres sticking out."""

    centres: F64
    tangents: F64
    shapes: F64
    fibres: F64
    """(fragment, fibre, 2 ends, 2) in metres."""
    tones: F64

    @classmethod
    def draw(cls, walls: _Walls, floor_bias: float, tones: F64) -> _FragmentPlan:
        rng = walls.rng
        n = _MAX_FRAGMENTS
        centres, tangents = walls.points(n, floor_bias, (0.2, 4.0))
        size = np.exp(rng.uniform(math.log(0.008), math.log(0.045), n))
        shapes = _blobs(rng, n, 12, 0.5) * size[:, None, None]
        angles = rng.uniform(0, 2 * math.pi, (n, 8))
        starts = rng.uniform(0.3, 0.9, (n, 8, 1)) * size[:, None, None]
        reach = rng.uniform(1.1, 1.8, (n, 8, 1)) * size[:, None, None]
        direction = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        fibres = np.stack([direction * starts, direction * reach], axis=2)
        return cls(centres, tangents, shapes, fibres, tones)

    def render(self, walls: _Walls, layer: _Layer, amount: float) -> None:
        count = math.ceil(amount * _MAX_FRAGMENTS) if amount > 0 else 0
        if count == 0:
            return
        bodies = walls.outline(self.centres[:count], self.tangents[:count], self.shapes[:count])
        fibres = walls.outline(
            self.centres[:count], self.tangents[:count], self.fibres[:count].reshape(count, -1, 2)
        ).reshape(count, -1, 2, 2)
        colours = _bgr_table(self.tones[:count], 0.9)
        for i in np.flatnonzero(walls.visible(bodies)).tolist():
            layer.fill(_fixed(bodies[i]), colours[i], 0.9)
            lines = list(_fixed(fibres[i]))
            cv2.polylines(layer.colour, lines, False, colours[i], 1, cv2.LINE_AA, 4)
            cv2.polylines(layer.cover, lines, False, 200, 1, cv2.LINE_AA, 4)


def _render_fibres(walls: _Walls, layer: _Layer, plan: _LintPlan, amount: float) -> None:
    """Lint and fibres as a camera a metre away sees them: tufts and strands of 1-4 mm."""
    count = round(amount * len(plan.centres))
    if count == 0:
        return
    centres, tangents = plan.centres[:count], plan.tangents[:count]
    bodies = walls.outline(centres, tangents, plan.bodies[:count] * 1.5)
    strands = plan.paths.shape[1]
    paths = walls.outline(centres, tangents, plan.paths[:count].reshape(count, -1, 2) * 1.5)
    paths = paths.reshape(count, strands, -1, 2)
    ppm = walls.pixels_per_metre(centres)
    colours = _bgr_table(plan.tones[:count], 0.9)
    shown = walls.visible(bodies) | walls.visible(paths.reshape(count, -1, 2))
    for i in np.flatnonzero(shown).tolist():
        if i % 2 == 0:  # every other one a tuft (dust bunny) the strands grow from
            layer.fill(_fixed(bodies[i]), colours[i], 0.9)
        thickness = (0.001 + 0.003 * (i % 4) / 3) * float(ppm[i])
        width = max(1, round(thickness))
        opacity = min(0.9, max(0.45, thickness))
        curves = list(_fixed(paths[i, : plan.strands[i]]))
        colour = _bgr_table(plan.tones[i : i + 1], opacity)[0]
        cv2.polylines(layer.colour, curves, False, colour, width, cv2.LINE_AA, 4)
        cv2.polylines(layer.cover, curves, False, int(255 * opacity), width, cv2.LINE_AA, 4)
