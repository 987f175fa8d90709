"""Soiling of a synthetic duct: dust film, debris, lint, grease and mould, in graded severity.

A seed draws the full layout of every deposit the duct will ever collect (positions, sizes,
colours); ``dirt`` only decides how much of it is shown, always taking the layout in the same
order. So for one seed, soiling grows monotonically and in place, the way a real duct fouls, and
the seed alone decides which kinds of deposit appear. Used by :mod:`hil.render`.

Severity knots follow the label convention of :mod:`hil.render`: at or below dirt 0.25 only a
faint dust film and a few specks show; from 0.5 the film is plain and the other deposits appear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from hil.render_scene import F32, DuctScene, RayHits, SurfaceSamples

F64 = NDArray[np.float64]
Knots = tuple[tuple[float, ...], tuple[float, ...]]

# How much of each deposit a dirt level shows: piecewise linear in dirt, monotonic.
DUST_KNOTS: Knots = ((0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 0.09, 0.7, 0.85, 0.95))
DEBRIS_KNOTS: Knots = ((0.0, 0.2, 0.3, 0.5, 1.0), (0.0, 0.0, 0.04, 0.5, 1.0))
LINT_KNOTS: Knots = ((0.0, 0.3, 0.5, 1.0), (0.0, 0.0, 0.45, 1.0))
GREASE_KNOTS: Knots = ((0.0, 0.3, 0.5, 1.0), (0.0, 0.0, 0.5, 1.0))
MOULD_KNOTS: Knots = ((0.0, 0.3, 0.5, 1.0), (0.0, 0.0, 0.4, 1.0))

_MAX_DEBRIS = 600
_DEBRIS_VERTICES = 7
_MAX_LINT = 40
_MAX_STRANDS = 11
_STRAND_STEPS = 10
_MAX_GREASE = 7
_MAX_MOULD_CLUSTERS = 9
_MOULD_DOTS = 90

_SHIFT = 4
"""Sub-pixel bits for OpenCV drawing: deposits keep their true size at any resolution."""
_SUB = 1 << _SHIFT

_DEBRIS_PALETTE = np.array(
    [
        [0.06, 0.07, 0.08],  # soot, black grit
        [0.15, 0.2, 0.26],  # brown soil
        [0.22, 0.24, 0.26],  # grey grit
        [0.1, 0.16, 0.24],  # dark brown
        [0.3, 0.36, 0.42],  # light soil
        [0.5, 0.55, 0.58],  # insulation, paper
    ]
)
_DEBRIS_ODDS = np.array([0.25, 0.25, 0.2, 0.15, 0.1, 0.05])
_LINT_PALETTE = np.array(
    [[0.75, 0.75, 0.75], [0.6, 0.62, 0.65], [0.8, 0.7, 0.6], [0.45, 0.45, 0.5], [0.7, 0.55, 0.45]]
)


def level(knots: Knots, dirt: float) -> float:
    """The share of a deposit's layout shown at ``dirt``."""
    return float(np.interp(dirt, knots[0], knots[1]))


@dataclass(frozen=True, slots=True)
class DustStyle:
    """The look of one duct's dust film."""

    colour: tuple[float, float, float]
    amount_scale: float
    wall_share: float
    """How much dust the side walls hold compared with the floor."""
    patchiness: float


def draw_dust_style(
    rng: np.random.Generator,
    *,
    brown: tuple[float, float] = (0.2, 1.0),
    lightness: tuple[float, float] = (0.35, 0.75),
    wall_share: tuple[float, float] = (0.25, 0.55),
    patchiness: tuple[float, float] = (0.8, 1.6),
) -> DustStyle:
    """A grey-brown film; the ranges are those of the original renderer unless widened."""
    browned = float(rng.uniform(*brown))
    light = float(rng.uniform(*lightness))
    grey = np.array([0.5, 0.5, 0.5])
    brownish = np.array([0.32, 0.45, 0.58])
    colour = (grey + (brownish - grey) * browned) * light
    return DustStyle(
        colour=(float(colour[0]), float(colour[1]), float(colour[2])),
        amount_scale=float(rng.uniform(0.9, 1.15)),
        wall_share=float(rng.uniform(*wall_share)),
        patchiness=float(rng.uniform(*patchiness)),
    )


def apply_dust(
    style: DustStyle, dirt: float, hits: RayHits, samples: SurfaceSamples, albedo: F32, spec: F32
) -> None:
    """A grey-brown film, heaviest on the floor and in the bottom corners, patchy and matte."""
    amount = min(0.97, level(DUST_KNOTS, dirt) * style.amount_scale)
    if amount <= 0.0:
        return
    settle = np.clip(hits.up * np.float32(1.2), 0.0, 1.0)
    settle *= np.sqrt(settle)  # ** 1.5: mostly the floor, some on a round duct's flanks
    settle = settle * np.float32(1.0 - style.wall_share) + np.float32(style.wall_share)
    settle += np.float32(0.5) * np.exp(-hits.floor_gap * np.float32(25.0))
    # Little sticks to a ceiling (smoothly, for a round duct's upper half).
    settle *= np.float32(1.0) - np.float32(0.7) * np.clip(-hits.up, 0.0, 1.0)
    pattern = np.float32(1.0) + np.float32(style.patchiness) * (samples.dust - np.float32(0.5))
    alpha = np.clip(np.float32(amount) * pattern * settle, 0.0, 0.97)
    texture = np.float32(0.65) + np.float32(0.7) * samples.grain
    for channel, value in enumerate(style.colour):
        albedo[channel] += (np.float32(value) * texture - albedo[channel]) * alpha
    spec *= np.float32(1.0) - alpha


class _Walls:
    """Places points on the duct walls and projects wall-plane outlines into the image."""

    def __init__(self, scene: DuctScene, rng: np.random.Generator) -> None:
        self.scene = scene
        self.rng = rng
        cos_r, sin_r = math.cos(scene.roll), math.sin(scene.roll)
        self._unroll = np.array([[cos_r, sin_r], [-sin_r, cos_r]])

    def points(
        self, count: int, floor_bias: float, depth_range: tuple[float, float]
    ) -> tuple[F64, F64]:
        """``count`` points on the walls (camera frame) and the wall's across-duct tangents."""
        s, rng = self.scene, self.rng
        lo, hi = math.log(depth_range[0]), math.log(min(depth_range[1], s.z_end * 0.95))
        depth = np.exp(rng.uniform(lo, hi, count))
        pick = rng.random(count)
        side_sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
        height_share = rng.power(0.35, count)
        width_share = rng.power(0.5, count)
        spread = rng.normal(0.0, 1.0, count)
        tangent = np.zeros((count, 3))
        if s.shape == "rect":
            on_floor = pick < floor_bias
            on_side = (~on_floor) & (pick < floor_bias + (1 - floor_bias) * 0.8)
            # Dirt on a side wall sits low; on the floor it gathers towards the corners.
            low = s.half_h - s.half_h * 2 * height_share
            wide = side_sign * s.half_w * (1 - width_share * 0.98)
            x = np.where(on_side, side_sign * s.half_w, wide)
            y = np.where(on_floor, s.half_h, np.where(on_side, low, -s.half_h))
            tangent[:, 0] = np.where(on_side, 0.0, 1.0)
            tangent[:, 1] = np.where(on_side, 1.0, 0.0)
        else:
            theta = math.pi / 2 + np.where(pick < floor_bias, 0.5, 1.6) * spread
            x = s.half_w * np.cos(theta)
            y = s.half_w * np.sin(theta)
            tangent[:, 0] = -np.sin(theta)
            tangent[:, 1] = np.cos(theta)
        return np.stack([x - s.cam_x, y - s.cam_y, depth], axis=1), tangent

    def outline(self, centres: F64, tangents: F64, shapes_m: F64) -> F64:
        """Outlines (n, k, 2) in metres on the wall planes around ``centres``, as pixels."""
        points = centres[:, None, :] + shapes_m[..., :1] * tangents[:, None, :]
        points[..., 2] += shapes_m[..., 1]
        return self.project(points)

    def project(self, points: F64) -> F64:
        """Camera-frame points (..., 3) to pixel coordinates (..., 2)."""
        z = np.maximum(points[..., 2], 1e-3)
        plane = np.stack([points[..., 0] / z, points[..., 1] / z], axis=-1) @ self._unroll.T
        return np.asarray(plane * self.scene.focal_px + np.array([self.scene.cx, self.scene.cy]))

    def pixels_per_metre(self, points: F64) -> F64:
        return np.asarray(self.scene.focal_px / np.maximum(points[..., 2], 1e-3))

    def visible(self, pixels: F64) -> NDArray[np.bool_]:
        """Which outlines (n, k, 2) have a vertex near the frame."""
        margin = 4.0
        inside = (
            (pixels[..., 0] > -margin)
            & (pixels[..., 0] < self.scene.width + margin)
            & (pixels[..., 1] > -margin)
            & (pixels[..., 1] < self.scene.height + margin)
        )
        return np.asarray(inside.any(axis=-1))


def _blobs(rng: np.random.Generator, count: int, vertices: int, roughness: float) -> F64:
    """Irregular closed outlines of unit radius, shape (count, vertices, 2)."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, (count, vertices)), axis=1)
    radii = 1.0 + roughness * rng.uniform(-1.0, 1.0, (count, vertices))
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=-1)


def _fixed(pixels: F64) -> NDArray[np.int32]:
    return np.round(pixels * _SUB).astype(np.int32)


def _bgr(colour: F64, opacity: float = 1.0) -> tuple[int, int, int]:
    value = np.clip(colour * opacity * 255.0, 0, 255)
    return int(value[0]), int(value[1]), int(value[2])


def _bgr_table(colours: F64, opacity: float) -> list[tuple[int, int, int]]:
    """Premultiplied 8-bit colours for many deposits at once (per-item numpy calls are slow)."""
    values = np.clip(colours * opacity * 255.0, 0, 255).astype(int).reshape(-1, 3)
    return [(int(b), int(g), int(r)) for b, g, r in values.tolist()]


@dataclass
class _Layer:
    """Deposits drawn in image space, as premultiplied colour (albedo) and coverage.

    Both are drawn anti-aliased with the same shapes, so an edge pixel holds colour*coverage and
    coverage: compositing ``albedo * (1 - cover) + colour`` is exact at the edges.
    """

    colour: NDArray[np.uint8]
    cover: NDArray[np.uint8]

    def fill(
        self, outline: NDArray[np.int32], premultiplied: tuple[int, int, int], opacity: float
    ) -> None:
        cv2.fillConvexPoly(self.colour, outline, premultiplied, cv2.LINE_AA, _SHIFT)
        cv2.fillConvexPoly(self.cover, outline, int(255 * opacity), cv2.LINE_AA, _SHIFT)


@dataclass(frozen=True, slots=True)
class Deposits:
    """Deposits drawn in image space for the whole frame, applied band by band."""

    layer: _Layer
    grease: NDArray[np.uint8] | None
    """Grease coverage, soft-edged, or None when this frame has none."""

    def apply(self, rows: slice, albedo: F32, spec: F32) -> None:
        """Lay the deposits of rows ``rows`` over the band's planar ``albedo`` and ``spec``."""
        if self.grease is not None:
            # Grease soaks in: it darkens and glosses whatever lies beneath.
            soft = self.grease[rows].astype(np.float32)
            soft *= np.float32(1 / 255)
            albedo *= np.float32(1.0) - np.float32(0.75) * soft
            albedo[2] += np.float32(0.05) * soft
            albedo[1] += np.float32(0.025) * soft
            spec += np.float32(1.2) * soft
        cover_band = self.layer.cover[rows]
        if not cover_band.any():
            return
        cover = cover_band.astype(np.float32)
        cover *= np.float32(1 / 255)
        albedo *= np.float32(1.0) - cover
        colour = self.layer.colour[rows]
        for channel in range(3):
            albedo[channel] += colour[..., channel].astype(np.float32) * np.float32(1 / 255)
        spec *= np.float32(1.0) - cover


def draw_deposits(rng: np.random.Generator, scene: DuctScene, dirt: float) -> Deposits:
    """Debris, lint, grease and mould, in a fixed seeded order so that more dirt means more."""
    walls = _Walls(scene, rng)
    debris_weight = float(rng.uniform(0.35, 1.0))
    lint_weight = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.6 else 0.0
    grease_weight = float(rng.uniform(0.4, 1.0)) if rng.random() < 0.35 else 0.0
    mould_weight = float(rng.uniform(0.4, 1.0)) if rng.random() < 0.4 else 0.0
    # Every layout is drawn from the stream whatever ``dirt`` is: the stream must not depend on it.
    grease_plan = _GreasePlan.draw(walls)
    debris_plan = _DebrisPlan.draw(walls)
    lint_plan = _LintPlan.draw(walls)
    mould_plan = _MouldPlan.draw(walls)

    shape = (scene.height, scene.width)
    layer = _Layer(colour=np.zeros((*shape, 3), np.uint8), cover=np.zeros(shape, np.uint8))
    grease = np.zeros(shape, np.uint8)
    grease_plan.render(walls, grease, level(GREASE_KNOTS, dirt) * grease_weight)
    debris_plan.render(walls, layer, level(DEBRIS_KNOTS, dirt), debris_weight)
    lint_plan.render(walls, layer, level(LINT_KNOTS, dirt) * lint_weight)
    mould_plan.render(walls, layer, level(MOULD_KNOTS, dirt) * mould_weight)
    soft: NDArray[np.uint8] | None = None
    if grease.any():
        soft = np.asarray(
            cv2.GaussianBlur(grease, (0, 0), max(0.8, scene.width / 400)), dtype=np.uint8
        )
    return Deposits(layer=layer, grease=soft)


@dataclass(frozen=True, slots=True)
class _GreasePlan:
    centres: F64
    tangents: F64
    shapes: F64
    """Unit outlines times the full-grown size (m)."""

    @classmethod
    def draw(cls, walls: _Walls) -> _GreasePlan:
        centres, tangents = walls.points(_MAX_GREASE, 0.7, (0.3, 4.0))
        size = walls.rng.uniform(0.02, 0.09, _MAX_GREASE)
        return cls(centres, tangents, _blobs(walls.rng, _MAX_GREASE, 14, 0.3) * size[:, None, None])

    def render(self, walls: _Walls, mask: NDArray[np.uint8], amount: float) -> None:
        count = math.ceil(amount * _MAX_GREASE) if amount > 0 else 0
        if count == 0:
            return
        pixels = walls.outline(
            self.centres[:count], self.tangents[:count], self.shapes[:count] * (0.5 + 0.5 * amount)
        )
        value = int(255 * min(1.0, 0.45 + 0.5 * amount))
        for outline in _fixed(pixels[walls.visible(pixels)]):
            cv2.fillConvexPoly(mask, outline, value, cv2.LINE_AA, _SHIFT)


@dataclass(frozen=True, slots=True)
class _DebrisPlan:
    centres: F64
    tangents: F64
    shapes: F64
    tones: F64

    @classmethod
    def draw(cls, walls: _Walls) -> _DebrisPlan:
        rng = walls.rng
        centres, tangents = walls.points(_MAX_DEBRIS, 0.8, (0.15, 6.0))
        size = np.exp(rng.uniform(math.log(0.0015), math.log(0.016), _MAX_DEBRIS))
        shapes = _blobs(rng, _MAX_DEBRIS, _DEBRIS_VERTICES, 0.3) * size[:, None, None]
        tones = _DEBRIS_PALETTE[rng.choice(len(_DEBRIS_PALETTE), _MAX_DEBRIS, p=_DEBRIS_ODDS)]
        tones = tones * rng.uniform(0.7, 1.2, (_MAX_DEBRIS, 1))
        return cls(centres, tangents, shapes, tones)

    def render(self, walls: _Walls, layer: _Layer, amount: float, weight: float) -> None:
        count = round(amount * weight * _MAX_DEBRIS)
        if count == 0:
            return
        # A slightly soiled duct has specks; the grains grow into chunks as it fouls.
        shapes = self.shapes[:count] * (0.35 + 0.65 * amount)
        pixels = walls.outline(self.centres[:count], self.tangents[:count], shapes)
        radius_px = walls.pixels_per_metre(self.centres[:count]) * np.abs(shapes[:, 0, 0])
        keep = walls.visible(pixels) & (radius_px > 0.25)
        outlines = _fixed(pixels)
        colours = _bgr_table(self.tones[:count], 0.95)
        for i in np.flatnonzero(keep).tolist():
            layer.fill(outlines[i], colours[i], 0.95)


@dataclass(frozen=True, slots=True)
class _LintPlan:
    centres: F64
    tangents: F64
    strands: NDArray[np.int64]
    paths: F64
    """Strand paths (clump, strand, step, 2) in metres."""
    bodies: F64
    tones: F64

    @classmethod
    def draw(cls, walls: _Walls) -> _LintPlan:
        rng = walls.rng
        centres, tangents = walls.points(_MAX_LINT, 0.75, (0.2, 4.0))
        strands = rng.integers(1, _MAX_STRANDS + 1, _MAX_LINT)
        lengths = rng.uniform(0.01, 0.06, _MAX_LINT)
        shape = (_MAX_LINT, _MAX_STRANDS, _STRAND_STEPS)
        heading = rng.uniform(0, 2 * math.pi, shape[:2])[..., None]
        heading = heading + np.cumsum(rng.normal(0, 0.5, shape), axis=-1)
        step = (lengths / _STRAND_STEPS)[:, None, None, None]
        paths = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=-1) * step, axis=2)
        bodies = _blobs(rng, _MAX_LINT, 12, 0.3) * (lengths * 0.3)[:, None, None]
        tones = _LINT_PALETTE[rng.integers(0, len(_LINT_PALETTE), _MAX_LINT)]
        tones = tones * rng.uniform(0.8, 1.1, (_MAX_LINT, 1))
        return cls(centres, tangents, strands, paths, bodies, tones)

    def render(self, walls: _Walls, layer: _Layer, amount: float) -> None:
        count = round(amount * _MAX_LINT)
        if count == 0:
            return
        bodies = walls.outline(self.centres[:count], self.tangents[:count], self.bodies[:count])
        paths = walls.outline(
            self.centres[:count],
            self.tangents[:count],
            self.paths[:count].reshape(count, -1, 2),
        ).reshape(count, _MAX_STRANDS, _STRAND_STEPS, 2)
        ppm = walls.pixels_per_metre(self.centres[:count])
        shown = walls.visible(bodies) | walls.visible(paths.reshape(count, -1, 2))
        for i in np.flatnonzero(shown):
            if self.strands[i] > 5:  # a clump (dust bunny): a fuzzy body the strands grow from
                layer.fill(_fixed(bodies[i]), _bgr(self.tones[i] * 0.85, 0.85), 0.85)
            fibre_px = 0.0008 * float(ppm[i])
            opacity = min(0.9, max(0.15, fibre_px))
            width = max(1, round(fibre_px))
            curves = list(_fixed(paths[i, : self.strands[i]]))
            cv2.polylines(
                layer.colour,
                curves,
                False,
                _bgr(self.tones[i], opacity),
                width,
                cv2.LINE_AA,
                _SHIFT,
            )
            cv2.polylines(
                layer.cover, curves, False, int(255 * opacity), width, cv2.LINE_AA, _SHIFT
            )


@dataclass(frozen=True, slots=True)
class _MouldPlan:
    centres: F64
    tangents: F64
    spread: F64
    offsets: F64
    """Dot offsets (cluster, dot, 2) in units of the cluster's spread."""
    radii: F64
    tones: F64
    """Dot colours (cluster, dot, 3): dark green to black."""

    @classmethod
    def draw(cls, walls: _Walls) -> _MouldPlan:
        rng = walls.rng
        n, k = _MAX_MOULD_CLUSTERS, _MOULD_DOTS
        centres, tangents = walls.points(n, 0.5, (0.2, 3.0))
        spread = rng.uniform(0.01, 0.05, n)
        offsets = rng.normal(0, 1, (n, k, 2))
        radii = np.exp(rng.uniform(math.log(0.0006), math.log(0.004), (n, k)))
        green = np.array([0.12, 0.22, 0.1]) * rng.uniform(0.6, 1.4, (n, 1, 1))
        black = np.array([0.04, 0.05, 0.04])
        tones = black + (green - black) * rng.random((n, k, 1))
        return cls(centres, tangents, spread, offsets, radii, tones)

    def render(self, walls: _Walls, layer: _Layer, amount: float) -> None:
        clusters = math.ceil(amount * _MAX_MOULD_CLUSTERS) if amount > 0 else 0
        if clusters == 0:
            return
        dots = round(_MOULD_DOTS * (0.25 + 0.75 * amount))
        centres, tangents = self.centres[:clusters], self.tangents[:clusters]
        spread = self.spread[:clusters, None, None] * (0.5 + 0.5 * amount)
        dot_pixels = walls.outline(centres, tangents, self.offsets[:clusters, :dots] * spread)
        ppm = walls.pixels_per_metre(centres)
        centre_pixels = walls.project(centres)
        stain = np.zeros_like(layer.cover)
        for i in range(clusters):
            stain_r = round(self.spread[i] * ppm[i] * _SUB * 1.5)
            if stain_r > 0:
                centre = _fixed(centre_pixels[i])
                cv2.circle(
                    stain, (int(centre[0]), int(centre[1])), stain_r, 90, -1, cv2.LINE_AA, _SHIFT
                )
            radius_px = self.radii[i, :dots] * ppm[i]
            shown = np.flatnonzero(radius_px > 0.3)
            colours = _bgr_table(self.tones[i, shown], 0.9)
            centres = _fixed(dot_pixels[i, shown]).tolist()
            radii = np.round(radius_px[shown] * _SUB).astype(int).tolist()
            for (x, y), r, colour in zip(centres, radii, colours, strict=True):
                cv2.circle(layer.colour, (x, y), r, colour, -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(layer.cover, (x, y), r, 230, -1, cv2.LINE_AA, _SHIFT)
        if stain.any():
            # A faint greenish-grey discolouration around the colonies, under the dots.
            soft = cv2.GaussianBlur(stain, (0, 0), max(1.0, walls.scene.width / 160))
            fresh = (layer.cover == 0) & (soft > 0)
            weight = soft[fresh].astype(np.float32) * np.float32(0.6 / 255)
            layer.cover[fresh] = (weight * 255).astype(np.uint8)
            for channel, value in enumerate((0.2, 0.26, 0.2)):
                layer.colour[..., channel][fresh] = (weight * value * 255).astype(np.uint8)
