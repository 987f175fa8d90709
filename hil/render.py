"""Synthetic images of the inside of a galvanised sheet-metal duct, clean or soiled.

The simulated cameras show these and the vision model is trained on them, so they must be varied
enough that a model learns the dirt, not the renderer. A seed draws a duct (rectangular, round or
spiral; its size, the camera's pose and lens, joint spacing, metal finish, LED; see
:mod:`hil.render_scene`), a dirt layout (which deposits this duct collects, where, in which colours;
see :mod:`hil.render_dirt`) and the camera's imperfections (:mod:`hil.render_camera`). ``dirt``
only decides how much of the seed's layout is shown, so for one seed the soiling grows
monotonically and in place.

Label convention, used by the model trainer: ``dirt <= CLEAN_MAX_DIRT`` looks clean (at most a
faint dust film), ``dirt >= DIRTY_MIN_DIRT`` looks clearly dirty (deposits that NADCA ACR would
call for cleaning); in between is ambiguous on purpose.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from hil.render_camera import expose
from hil.render_deposits import draw_random_deposits
from hil.render_dirt import DustStyle, apply_dust, draw_deposits, draw_dust_style
from hil.render_domain import Domain, Look, draw_look
from hil.render_scene import (
    F32,
    DuctScene,
    Tiles,
    cast_rays,
    clean_surface,
    draw_scene,
    light,
    sample_tiles,
    texture_tiles,
)
from hil.render_stage import dress_scene, stage

CLEAN_MAX_DIRT = 0.25
"""At or below this dirt level an image looks clean (a faint dust film at most)."""
DIRTY_MIN_DIRT = 0.5
"""At or above this dirt level an image looks clearly dirty."""

MIN_SIZE = 16
"""Smallest image side the renderer accepts."""

_BAND_PIXELS = 48 * 1024
"""Pixels per band of the per-pixel chain: its float32 arrays then fit a CPU's L2 cache."""

_STREAM_GEOMETRY = 0
_STREAM_DIRT = 1
_STREAM_NUISANCE = 2
_STREAM_LOOK = 3
_STREAM_DRESS = 4
_STREAM_STAGE = 5


def render_duct(
    seed: int,
    dirt: float,
    width: int = 640,
    height: int = 480,
    *,
    nuisance: bool = True,
    nuisance_seed: int | None = None,
    domain: Domain | None = None,
) -> NDArray[np.uint8]:
    """Render the inside of a duct as a BGR ``uint8`` image of shape ``(height, width, 3)``.

    ``seed`` draws the duct, its dirt layout and (unless ``nuisance_seed`` is given) the camera's
    imperfections; ``dirt`` in [0, 1] decides how soiled it looks. The same arguments always give
    the same image. ``nuisance_seed`` lets a simulated camera keep its duct and draw fresh noise per
    frame. With ``nuisance=False`` the image is the plain optical render: auto-exposed, but without
    exposure error, vignetting, colour cast, blur, sensor noise or JPEG artefacts.

    ``domain`` switches on domain randomisation (:mod:`hil.render_domain`): the seed then also
    draws a duct material, deposit kinds, LEDs, occluders and lens from the domain's families,
    see :func:`look_for`. Without it the image is the original galvanised renderer's.
    """
    if not 0.0 <= dirt <= 1.0:  # also rejects NaN
        raise ValueError(f"dirt must be in [0, 1], got {dirt!r}")
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"image size must be at least {MIN_SIZE}x{MIN_SIZE}, got {width}x{height}")
    if domain is not None:
        return _render_randomised(seed, dirt, width, height, nuisance, nuisance_seed, domain)
    geometry_rng = _stream(seed, _STREAM_GEOMETRY)
    scene = draw_scene(geometry_rng, width, height)
    tiles = texture_tiles(geometry_rng, scene)
    dirt_rng = _stream(seed, _STREAM_DIRT)
    dust = draw_dust_style(dirt_rng)
    deposits = draw_deposits(dirt_rng, scene, dirt)

    radiance = _shade(scene, tiles, dust, dirt, deposits)
    if not nuisance:
        return expose(radiance, None)
    nuisance_rng = _stream(seed if nuisance_seed is None else nuisance_seed, _STREAM_NUISANCE)
    return expose(radiance, nuisance_rng)


class _Soiling(Protocol):
    def apply(self, rows: slice, albedo: F32, spec: F32) -> None: ...


def _shade(
    scene: DuctScene, tiles: Tiles, dust: DustStyle | None, dirt: float, deposits: _Soiling
) -> F32:
    """Linear radiance of the whole frame: clean surface, dust film, deposits, LED light.

    Band by band: each band's arrays stay in the CPU cache through the whole per-pixel chain.
    """
    radiance = np.empty((3, scene.height, scene.width), np.float32)
    band = max(8, _BAND_PIXELS // scene.width)
    for top in range(0, scene.height, band):
        rows = slice(top, min(scene.height, top + band))
        hits = cast_rays(scene, rows)
        samples = sample_tiles(tiles, hits, scene)
        albedo, spec, lips = clean_surface(scene, hits, samples)
        if dust is not None:
            apply_dust(dust, dirt, hits, samples, albedo, spec)
        deposits.apply(rows, albedo, spec)
        radiance[:, rows] = light(scene, hits, albedo, spec, lips)
    return radiance


def look_for(seed: int, domain: Domain) -> Look:
    """What ``render_duct(seed, ..., domain=domain)`` shows: material, deposit kinds, lights..."""
    return draw_look(_stream(seed, _STREAM_LOOK), domain)


def _render_randomised(
    seed: int,
    dirt: float,
    width: int,
    height: int,
    nuisance: bool,
    nuisance_seed: int | None,
    domain: Domain,
) -> NDArray[np.uint8]:
    look = look_for(seed, domain)
    geometry_rng = _stream(seed, _STREAM_GEOMETRY)
    scene = draw_scene(geometry_rng, width, height, shape=look.section)
    scene = dress_scene(scene, look, _stream(seed, _STREAM_DRESS))
    tiles = texture_tiles(geometry_rng, scene)
    deposits = draw_random_deposits(_stream(seed, _STREAM_DIRT), scene, dirt, look)
    radiance = _shade(scene, tiles, deposits.film, dirt, deposits)
    radiance = stage(radiance, scene, look, _stream(seed, _STREAM_STAGE))
    if not nuisance:
        return expose(radiance, None)
    flaws = frozenset(look.camera) - {"defocus", "motion_blur"}  # applied by stage()
    nuisance_rng = _stream(seed if nuisance_seed is None else nuisance_seed, _STREAM_NUISANCE)
    return expose(radiance, nuisance_rng, flaws, wide=True)


def _stream(seed: int, stream: int) -> np.random.Generator:
    """An independent random stream per purpose, so that drawing one never shifts another."""
    return np.random.default_rng(np.random.SeedSequence([abs(int(seed)), int(seed < 0), stream]))
