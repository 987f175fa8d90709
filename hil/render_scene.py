"""The duct a synthetic camera looks into: geometry, galvanised metal, joints, LED lighting.

Every pixel's ray is cast into the duct (vectorised): it hits a wall, which gives a depth, the
incidence angle and surface coordinates. Textures are sampled in surface coordinates (so spangle
and joints foreshorten correctly at any resolution) and fade to their mean where one pixel covers
many texels, instead of aliasing into moire. Used by :mod:`hil.render`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
_TILE_M = 0.6
"""Metres of wall covered by one texture tile."""
_TILE_FULL = 256
_TILE_SMALL = 128
"""Texels on a tile's side: small renders (the model trains at 128-224 px) cannot show more."""
_NEAR_M = 0.04
"""Closest distance a wall point is lit from (keeps the inverse-square law finite)."""

WALL_LEFT, WALL_RIGHT, WALL_CEILING, WALL_FLOOR, WALL_END = range(5)


@dataclass(frozen=True, slots=True)
class DuctScene:
    """One duct and the camera in it, drawn from a seed."""

    width: int
    height: int
    shape: str
    """"rect", "round" or "spiral"."""
    half_w: float
    half_h: float
    """Rectangular cross-section half sizes (m); the radius of a round duct is ``half_w``."""
    cam_x: float
    cam_y: float
    """Camera offset from the duct axis (m); y points down."""
    focal_px: float
    cx: float
    cy: float
    roll: float
    z_end: float
    """Depth of the far end (m): an elbow wall or a dark opening."""
    end_is_wall: bool
    joint_pitch: float
    joint_phase: float
    joint_width: float
    seam_pitch: float
    """Spiral seam pitch (m) for spiral ducts."""
    metal_gain: float
    metal_tint: tuple[float, float, float]
    tile: int
    """Texels on the side of this render's texture tiles."""
    spangle_px: float
    """Spangle crystal size in texels of a full-size tile."""
    spangle_contrast: float
    brushed: float
    shininess: float
    specular: float
    beam_power: float
    ambient: float
    led_bgr: tuple[float, float, float]
    wall_offsets: tuple[float, float, float, float]
    beam_axis: tuple[float, float] = (0.0, 0.0)
    """Where the LED points, as (x, y) slopes off the duct axis."""
    second_light: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """A second LED's axis slopes (x, y) and its power relative to the first (0: none)."""


def draw_scene(
    rng: np.random.Generator, width: int, height: int, shape: str | None = None
) -> DuctScene:
    """A duct and camera pose; ``shape`` forces the cross-section (the draws stay the same)."""
    drawn = str(rng.choice(["rect", "round", "spiral"], p=[0.7, 0.18, 0.12]))
    shape = drawn if shape is None else shape
    if shape == "rect":
        half_w = float(rng.uniform(0.15, 0.5))
        half_h = float(rng.uniform(0.1, 0.32))
        cam_x = float(rng.uniform(-0.5, 0.5)) * half_w
        cam_y = float(rng.uniform(-0.6, 0.4)) * half_h
    else:
        half_w = half_h = float(rng.uniform(0.1, 0.32))
        angle = float(rng.uniform(0, 2 * math.pi))
        offset = float(rng.uniform(0, 0.45)) * half_w
        cam_x, cam_y = offset * math.cos(angle), offset * math.sin(angle)
    hfov = math.radians(float(rng.uniform(55.0, 105.0)))
    focal = (width / 2) / math.tan(hfov / 2)
    return DuctScene(
        width=width,
        height=height,
        shape=shape,
        half_w=half_w,
        half_h=half_h,
        cam_x=cam_x,
        cam_y=cam_y,
        focal_px=focal,
        cx=width * float(0.5 + rng.uniform(-0.12, 0.12)),
        cy=height * float(0.5 + rng.uniform(-0.12, 0.12)),
        roll=float(rng.normal(0.0, 0.08)) if rng.random() < 0.8 else float(rng.uniform(-0.6, 0.6)),
        z_end=float(rng.uniform(2.5, 14.0)),
        end_is_wall=bool(rng.random() < 0.4),
        joint_pitch=float(rng.uniform(0.9, 1.6)),
        joint_phase=float(rng.uniform(0.0, 1.6)),
        joint_width=float(rng.uniform(0.006, 0.02)),
        seam_pitch=float(rng.uniform(0.1, 0.16)),
        metal_gain=float(rng.uniform(0.45, 0.8)),
        metal_tint=(
            float(rng.uniform(0.97, 1.06)),
            float(rng.uniform(0.97, 1.03)),
            float(rng.uniform(0.92, 1.01)),
        ),
        tile=_TILE_FULL if max(width, height) > 400 else _TILE_SMALL,
        spangle_px=float(rng.uniform(4.0, 16.0)),
        spangle_contrast=float(rng.uniform(0.05, 0.2)),
        brushed=float(rng.uniform(0.0, 0.12)),
        shininess=float(rng.uniform(3.0, 25.0)),
        specular=float(rng.uniform(0.15, 0.9)),
        beam_power=float(rng.uniform(0.5, 5.0)),
        ambient=float(rng.uniform(0.0, 0.004)),
        led_bgr=(float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.92, 1.0)), 1.0)
        if rng.random() < 0.5
        else (1.0, float(rng.uniform(0.95, 1.0)), float(rng.uniform(0.85, 1.0))),
        wall_offsets=(
            float(rng.uniform(0, 1)),
            float(rng.uniform(0, 1)),
            float(rng.uniform(0, 1)),
            float(rng.uniform(0, 1)),
        ),
    )


@dataclass(frozen=True, slots=True)
class RayHits:
    """Per-pixel result of casting every pixel's ray into the duct."""

    ray_x: F32
    ray_y: F32
    ray_norm: F32
    """Length of the ray (x, y, 1): distance = depth * ray_norm."""
    depth: F32
    across: F32
    """Surface coordinate across the wall (m), continuous around a round duct."""
    wall: NDArray[np.uint8]
    """0 left, 1 right, 2 ceiling, 3 floor, 4 far end (rect); round: 3 lower half, 2 upper half."""
    cos_incidence: F32
    perpendicular: F32
    """Distance from the camera to the tangent plane of the hit: sets texel footprint."""
    up: F32
    """How much the surface faces up (1 floor, 0 wall, negative ceiling): where dust settles."""
    floor_gap: F32
    """Height of the hit above the lowest point of the cross-section (m)."""


def cast_rays(scene: DuctScene, rows: slice) -> RayHits:
    """Cast the rays of image rows ``rows`` (a band: the renderer works band by band so that
    its arrays stay in the CPU cache)."""
    first, last, _ = rows.indices(scene.height)
    cols = (np.arange(scene.width, dtype=np.float32) + 0.5 - scene.cx) / scene.focal_px
    rows_y = (np.arange(first, last, dtype=np.float32) + 0.5 - scene.cy) / scene.focal_px
    cos_r, sin_r = np.float32(math.cos(scene.roll)), np.float32(math.sin(scene.roll))
    ray_x = cols[None, :] * cos_r - rows_y[:, None] * sin_r
    ray_y = cols[None, :] * sin_r + rows_y[:, None] * cos_r
    ray_norm = np.sqrt(1.0 + ray_x * ray_x + ray_y * ray_y)
    if scene.shape == "rect":
        return _cast_rect(scene, ray_x, ray_y, ray_norm)
    return _cast_round(scene, ray_x, ray_y, ray_norm)


def _safe(values: F32) -> F32:
    """Values pushed away from zero, so that dividing by them stays finite."""
    return np.where(np.abs(values) < 1e-6, np.float32(1e-6), values).astype(np.float32)


def _cast_rect(scene: DuctScene, ray_x: F32, ray_y: F32, ray_norm: F32) -> RayHits:
    right, left = scene.half_w - scene.cam_x, -scene.half_w - scene.cam_x
    floor, ceiling = scene.half_h - scene.cam_y, -scene.half_h - scene.cam_y
    sx, sy = _safe(ray_x), _safe(ray_y)
    depth_x = np.where(sx > 0, np.float32(right), np.float32(left)) / sx
    depth_y = np.where(sy > 0, np.float32(floor), np.float32(ceiling)) / sy
    side = depth_x < depth_y
    depth = np.minimum(depth_x, depth_y)
    end = depth > scene.z_end
    depth = np.minimum(depth, np.float32(scene.z_end))
    wall = np.where(side, (sx > 0).astype(np.uint8), (sy > 0).astype(np.uint8) + 2)
    wall[end] = WALL_END
    hit_x = ray_x * depth
    hit_y = ray_y * depth
    across = np.where(side, hit_y, hit_x)
    facing = np.where(side, np.abs(ray_x), np.abs(ray_y))
    facing[end] = 1.0
    perpendicular = np.where(side, np.float32(abs(right)), np.float32(abs(floor)))
    perpendicular = np.where(side & (sx < 0), np.float32(abs(left)), perpendicular)
    perpendicular = np.where(~side & (sy < 0), np.float32(abs(ceiling)), perpendicular)
    perpendicular[end] = scene.z_end
    up = np.zeros_like(depth)
    up[wall == WALL_FLOOR] = 1.0
    up[wall == WALL_CEILING] = -1.0
    return RayHits(
        ray_x=ray_x,
        ray_y=ray_y,
        ray_norm=ray_norm,
        depth=depth,
        across=across.astype(np.float32),
        wall=wall.astype(np.uint8),
        cos_incidence=(facing / ray_norm).astype(np.float32),
        perpendicular=perpendicular.astype(np.float32),
        up=up,
        floor_gap=(np.float32(floor) - hit_y).astype(np.float32),
    )


def round_circumference(scene: DuctScene) -> float:
    """The circumference used for surface coordinates of a round duct: the true one rounded to
    whole texture tiles, so that the texture closes on itself without a seam."""
    return max(1, round(2 * math.pi * scene.half_w / _TILE_M)) * _TILE_M


def _cast_round(scene: DuctScene, ray_x: F32, ray_y: F32, ray_norm: F32) -> RayHits:
    radius = scene.half_w
    # Duct axis at (-cam_x, -cam_y) from the camera: solve |camera_offset + ray * depth| = radius.
    a = ray_x * ray_x + ray_y * ray_y + np.float32(1e-9)
    b = ray_x * scene.cam_x + ray_y * scene.cam_y
    c = scene.cam_x**2 + scene.cam_y**2 - radius**2
    depth = (-b + np.sqrt(b * b - a * c)) / a
    end = depth > scene.z_end
    depth = np.minimum(depth, np.float32(scene.z_end)).astype(np.float32)
    qx = scene.cam_x + ray_x * depth
    qy = scene.cam_y + ray_y * depth
    theta = np.arctan2(qy, qx)
    across = (theta * np.float32(round_circumference(scene) / (2 * math.pi))).astype(np.float32)
    facing = np.abs(qx * ray_x + qy * ray_y) / np.float32(radius)
    facing[end] = 1.0
    perpendicular = np.abs(qx * (qx - scene.cam_x) + qy * (qy - scene.cam_y)) / np.float32(radius)
    perpendicular = np.maximum(perpendicular, np.float32(0.02))
    perpendicular[end] = scene.z_end
    up = (qy / np.float32(radius)).astype(np.float32)
    up[end] = 0.0
    wall = np.where(qy > 0, np.uint8(WALL_FLOOR), np.uint8(WALL_CEILING))
    wall[end] = WALL_END
    return RayHits(
        ray_x=ray_x,
        ray_y=ray_y,
        ray_norm=ray_norm,
        depth=depth,
        across=across,
        wall=wall.astype(np.uint8),
        cos_incidence=(facing / ray_norm).astype(np.float32),
        perpendicular=perpendicular.astype(np.float32),
        up=up,
        floor_gap=(np.float32(radius) - qy).astype(np.float32),
    )


# --------------------------------------------------------------------------------------------
# Textures


def _tileable_noise(
    rng: np.random.Generator, size: int, cells: int, along_cells: int | None = None
) -> F32:
    """Smooth value noise on a ``size`` square that wraps seamlessly at its edges.

    Rows run along the duct; ``along_cells`` < ``cells`` stretches the noise into streaks along
    the air flow. The random grid is drawn at full size whatever ``size`` is, so the stream of
    draws (and everything drawn after it) does not depend on the render size.
    """
    rows = cells if along_cells is None else along_cells
    grid = rng.random((rows, cells), dtype=np.float32)
    cells, rows = min(cells, size), min(rows, size)
    pad = 2
    padded = np.pad(grid[:rows, :cells], pad, mode="wrap")
    scale_x, scale_y = size // cells, size // rows
    big = cv2.resize(
        padded,
        ((cells + 2 * pad) * scale_x, (rows + 2 * pad) * scale_y),
        interpolation=cv2.INTER_CUBIC,
    )
    return np.asarray(
        big[pad * scale_y : pad * scale_y + size, pad * scale_x : pad * scale_x + size],
        dtype=np.float32,
    )


def _spangle(rng: np.random.Generator, size: int, cell_px: float, contrast: float) -> F32:
    """Hot-dip galvanising spangle: Voronoi crystals, each with its own brightness and sheen."""
    count = max(8, int((size / cell_px) ** 2))
    points = rng.random((count, 2)) * size
    level = rng.normal(0.0, contrast, count)
    slope = rng.normal(0.0, contrast * 0.6 / cell_px, (count, 2))
    # Copies of the crystals around the tile make the Voronoi cells wrap across its edges.
    pad = int(min(size // 4, 4 * cell_px))
    shifts = [(dx, dy) for dx in (-size, 0, size) for dy in (-size, 0, size)]
    copies = np.concatenate([points + np.array(s) for s in shifts])
    parent = np.tile(np.arange(count), len(shifts))
    inside = np.all((copies >= -pad) & (copies < size + pad), axis=1)
    copies, parent = copies[inside], parent[inside]
    side = size + 2 * pad
    seeds = np.ones((side, side), np.uint8)
    pix = np.clip((copies + pad).astype(np.int32), 0, side - 1)
    seeds[pix[:, 1], pix[:, 0]] = 0
    _, labels = cv2.distanceTransformWithLabels(
        seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_CCOMP
    )
    label_parent = np.zeros(int(labels.max()) + 1, np.int64)
    label_x = np.zeros(label_parent.shape, np.float32)
    label_y = np.zeros(label_parent.shape, np.float32)
    seed_labels = labels[pix[:, 1], pix[:, 0]]
    label_parent[seed_labels] = parent
    label_x[seed_labels] = pix[:, 0]
    label_y[seed_labels] = pix[:, 1]
    labels = labels[pad : pad + size, pad : pad + size]
    yy, xx = np.mgrid[pad : pad + size, pad : pad + size].astype(np.float32)
    owner = label_parent[labels]
    value = (
        level[owner]
        + slope[owner, 0] * (xx - label_x[labels])
        + slope[owner, 1] * (yy - label_y[labels])
    )
    return np.asarray(value, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Tiles:
    """Tileable textures, ``scene.tile`` texels square, in surface coordinates (rows along the
    duct)."""

    metal: F32
    dust: F32
    """Where dust gathers first: blotches and streaks along the air flow, in [0, 1]."""
    grain: F32


def texture_tiles(rng: np.random.Generator, scene: DuctScene) -> Tiles:
    """Draw this duct's metal finish, dust pattern and fine grain."""
    size = scene.tile
    scale = size / _TILE_FULL
    spangle = _spangle(rng, size, scene.spangle_px * scale, scene.spangle_contrast)
    # Rolling leaves fine streaks along the sheet (the duct's axis): noise smeared along rows.
    streaks = rng.random((size, size), dtype=np.float32) - np.float32(0.5)
    reach = max(3, int(31 * scale) | 1)
    streaks = np.pad(streaks, ((reach, reach), (0, 0)), mode="wrap")
    streaks = cv2.blur(streaks, (1, reach))[reach:-reach] * np.float32(scene.brushed * 8.5)
    metal = 1.0 + spangle + streaks
    dust = (
        0.4 * _tileable_noise(rng, size, 4)
        + 0.3 * _tileable_noise(rng, size, 16, 4)
        + 0.2 * _tileable_noise(rng, size, 32)
        + 0.1 * _tileable_noise(rng, size, 64, 16)
    )
    dust = (dust - dust.min()) / max(float(dust.max() - dust.min()), 1e-6)
    return Tiles(
        metal=np.asarray(metal, dtype=np.float32),
        dust=np.asarray(dust, dtype=np.float32),
        grain=_tileable_noise(rng, size, 128),
    )


@dataclass(frozen=True, slots=True)
class SurfaceSamples:
    metal: F32
    dust: F32
    grain: F32
    footprint: F32
    """Wall length (m) that one pixel covers along the duct: drives anti-aliasing."""


def sample_tiles(tiles: Tiles, hits: RayHits, scene: DuctScene) -> SurfaceSamples:
    size = scene.tile
    texels_per_m = size / _TILE_M
    table = (*scene.wall_offsets, 0.0)
    if scene.shape != "rect":  # one continuous sheet around a round duct
        table = (table[0],) * 5
    offsets = np.array(table, np.float32)[hits.wall] * np.float32(size)
    # Wrapped here: remap's own BORDER_WRAP is slow for coordinates many tiles away.
    map_x = _wrap(hits.across * np.float32(texels_per_m) + offsets, size)
    map_y = _wrap(hits.depth * np.float32(texels_per_m), size)

    def sample(tile: F32) -> F32:
        return np.asarray(
            cv2.remap(tile, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        )

    footprint = hits.depth * hits.depth / (np.float32(scene.focal_px) * hits.perpendicular)
    texels = footprint * np.float32(texels_per_m)
    # Far away a pixel covers many texels: fade the texture to its mean (1) instead of letting it
    # alias into moire.
    fade = texels - np.float32(0.7)
    fade *= np.float32(0.35)
    np.clip(fade, 0.0, 1.0, out=fade)
    metal = sample(tiles.metal)
    metal += (np.float32(1.0) - metal) * fade
    grain = sample(tiles.grain)
    grain += (np.float32(0.5) - grain) * fade
    return SurfaceSamples(metal=metal, dust=sample(tiles.dust), grain=grain, footprint=footprint)


# --------------------------------------------------------------------------------------------
# Clean metal: albedo and specular strength per pixel


def _wrap(values: F32, period: float) -> F32:
    """``values`` modulo ``period`` in [0, period): np.mod is several times slower on floats."""
    turns = values * np.float32(1.0 / period)
    turns -= np.floor(turns)
    turns *= np.float32(period)
    return turns


def _pulse(distance: F32, half_width: float, footprint: F32) -> F32:
    """A line of ``half_width`` (m) seen through pixels of ``footprint`` (m), energy-preserving."""
    width = np.maximum(np.float32(half_width), footprint)
    return (np.clip(1.0 - distance / width, 0.0, 1.0) * (np.float32(half_width) / width)).astype(
        np.float32
    )


def clean_surface(scene: DuctScene, hits: RayHits, samples: SurfaceSamples) -> tuple[F32, F32, F32]:
    """Albedo (planar BGR, 3 x rows x width), specular strength, and how much each pixel is a
    joint lip facing the LED."""
    metal = samples.metal * np.float32(scene.metal_gain)
    spec = np.full_like(metal, np.float32(scene.specular))
    spec *= np.float32(0.7) + np.float32(0.3) * samples.metal

    # Transverse joints (slip joints / flanges): a dark gap beside a raised, bright lip.
    along = _wrap(hits.depth - np.float32(scene.joint_phase), scene.joint_pitch)
    gap_dist = np.minimum(along, np.float32(scene.joint_pitch) - along)
    gap = _pulse(gap_dist, scene.joint_width * 0.35, samples.footprint)
    lip = _pulse(
        np.abs(along - np.float32(scene.joint_width)), scene.joint_width, samples.footprint
    )
    if scene.shape == "spiral":
        turns = hits.across / np.float32(round_circumference(scene))
        helix = _wrap(hits.depth - turns * np.float32(scene.seam_pitch), scene.seam_pitch)
        seam_dist = np.minimum(helix, np.float32(scene.seam_pitch) - helix)
        seam = _pulse(seam_dist, 0.004, samples.footprint)
        gap = np.maximum(gap, seam * np.float32(0.6))
        lip = np.maximum(lip, _pulse(np.abs(seam_dist - 0.008), 0.004, samples.footprint))
    metal *= np.float32(1.0) - np.float32(0.85) * gap
    metal += np.float32(0.2) * lip

    if scene.shape == "rect":
        # Corner seams (Pittsburgh locks): darker in the corner, a bright fold line beside it.
        half = np.where(hits.wall < 2, np.float32(scene.half_h), np.float32(scene.half_w))
        centre = np.where(hits.wall < 2, np.float32(-scene.cam_y), np.float32(-scene.cam_x))
        to_corner = np.maximum(half - np.abs(hits.across - centre), 0.0)
        metal *= np.float32(1.0) - np.float32(0.25) * np.exp(-to_corner * np.float32(40.0))
        metal += np.float32(0.15) * _pulse(np.abs(to_corner - 0.012), 0.003, samples.footprint)

    albedo = np.empty((3, *metal.shape), np.float32)
    for channel, tint in enumerate(scene.metal_tint):
        np.multiply(metal, np.float32(tint), out=albedo[channel])
    return albedo, spec, lip


# --------------------------------------------------------------------------------------------
# Light


def light(scene: DuctScene, hits: RayHits, albedo: F32, spec: F32, lips: F32) -> F32:
    """LED at the camera: inverse-square fall-off, beam cone, diffuse plus a broad sheen.

    ``albedo`` is planar BGR (3, H, W); so is the returned linear radiance.

    Joint lips stand up from the wall and face the camera, so they catch the LED head-on: the
    bright rings that mark every joint in a real duct photograph.
    """
    distance = np.maximum(hits.depth * hits.ray_norm, np.float32(_NEAR_M))
    # beam = cos(angle off axis) ** power, via exp/log: numpy's vectorised exp/log beat power.
    if scene.beam_axis == (0.0, 0.0):
        beam = np.exp(np.log(hits.ray_norm) * np.float32(-scene.beam_power))
    else:
        beam = _beam(hits, scene.beam_axis, scene.beam_power)
    if scene.second_light[2] > 0.0:
        beam += np.float32(scene.second_light[2]) * _beam(
            hits, scene.second_light[:2], scene.beam_power
        )
    irradiance = beam / (distance * distance)
    if not scene.end_is_wall:
        irradiance[hits.wall == WALL_END] *= np.float32(0.03)
    cos_i = hits.cos_incidence + (np.float32(0.9) / hits.ray_norm - hits.cos_incidence) * lips
    diffuse = irradiance * cos_i
    sheen = np.exp(np.log(np.maximum(cos_i, np.float32(1e-6))) * np.float32(scene.shininess))
    sheen *= irradiance
    sheen *= spec
    diffuse += np.float32(scene.ambient * 4.0)
    radiance: F32 = albedo * diffuse
    radiance += sheen
    radiance *= np.array(scene.led_bgr, np.float32)[:, None, None]
    return radiance


def _beam(hits: RayHits, axis: tuple[float, ...], power: float) -> F32:
    """cos(angle between each ray and an LED's ``axis`` slopes) ** ``power``, 0 behind it."""
    norm = math.sqrt(1.0 + axis[0] ** 2 + axis[1] ** 2)
    cos = hits.ray_x * np.float32(axis[0]) + hits.ray_y * np.float32(axis[1]) + np.float32(1.0)
    cos /= hits.ray_norm * np.float32(norm)
    np.maximum(cos, np.float32(1e-4), out=cos)
    return np.asarray(np.exp(np.log(cos) * np.float32(power)), dtype=np.float32)
