"""Synthetic deposits: dirt of no kind the renderer draws, painted onto clean training views.

The leave-one-family-out runs showed that a model learns the deposit kinds it was shown, not
"something foreign lies on the wall": a model that never saw lint fibres or mould colonies calls
those ducts clean (MODEL_CARD.md). A real duct will hold deposits no renderer family matches. So,
as anomaly-synthesis methods do (DRAEM, CutPaste), training can paint a deposit of no particular
kind onto a clean view and label that view dirty, with the painted pixels as its deposit map:

- the shape is a smooth random field at a random scale (from a few large blotches to fine specks),
  cut either above a level (patches) or along a level (thin, winding ridges), and kept inside a
  random soft window, since deposits gather in one place rather than spread evenly;
- its colour is random (dark, light or tinted), with its own fine texture, laid over the wall at
  a random opacity, edges feathered;
- it covers 1.5-12 % of the view: more than the 1 % of changed pixels from which the data set
  generator calls a rendered duct dirty (models.dataset), so the new label is never a lie.

Nothing here knows the renderer's families; the leave-out runs measure whether it helps on the
ones they hold out.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.uint8]
Field = NDArray[np.float32]

MIN_COVER = 0.015
"""Smallest share of the view a painted deposit covers (the generator's dirty rule is 1 %)."""
MAX_COVER = 0.12
"""Largest share: beyond it the view stops looking like a duct."""
VISIBLE = 0.1
"""An edge fainter than this share of the paint is cut, so that the mask holds every pixel
the paint changes."""


def _smooth_field(height: int, width: int, cells: int, rng: np.random.Generator) -> Field:
    """Gaussian noise on a ``cells``-wide grid, upsampled: features about width/cells wide."""
    rows = max(2, round(cells * height / width))
    coarse = rng.standard_normal((rows, cells)).astype(np.float32)
    return np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))


def _window(height: int, width: int, rng: np.random.Generator) -> Field:
    """A soft elliptical window somewhere in the view: 1 at its centre, falling to 0."""
    cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
    ry, rx = rng.uniform(0.2, 0.7) * height, rng.uniform(0.2, 0.7) * width
    y, x = np.ogrid[:height, :width]
    distance = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    return np.asarray(np.exp(-distance), np.float32)


def _shape(height: int, width: int, cover: float, rng: np.random.Generator) -> Field:
    """A 0..1 deposit shape covering about ``cover`` of the view."""
    field = _smooth_field(height, width, int(rng.integers(3, 28)), rng)
    window = _window(height, width, rng)
    if rng.random() < 0.65:  # patches: the field's highest values inside the window
        score = field + 2.5 * window
    else:  # ridges: the pixels closest to one level of the field, inside the window
        score = -np.abs(field - rng.normal(0.0, 0.5)) / (0.15 + window)
    level, solid = np.quantile(score, [1.0 - cover, 1.0 - cover / 2])
    # Half the covered pixels at full strength, the rest fading out: a soft edge that never
    # spreads past the ``cover`` share, as a spatial blur would.
    return np.asarray(np.clip((score - level) / max(solid - level, 1e-6), 0.0, 1.0), np.float32)


def _colour(image: Image, rng: np.random.Generator) -> Field:
    """The deposit's BGR colour per pixel: dark, light or tinted, with a fine texture."""
    wall = float(image.mean())
    kind = rng.random()
    if kind < 0.45:  # darker than the wall: soot, dust, grime
        base = np.full(3, wall * rng.uniform(0.15, 0.65))
    elif kind < 0.7:  # lighter: lint, fibres, insulation
        base = np.full(3, wall + (255 - wall) * rng.uniform(0.3, 0.9))
    else:  # tinted: any hue
        base = rng.uniform(20, 235, 3)
    base = base * rng.uniform(0.85, 1.15, 3)
    height, width = image.shape[:2]
    grain = _smooth_field(height, width, int(rng.integers(20, 60)), rng)
    texture = 1.0 + rng.uniform(0.05, 0.3) * grain[..., None]
    return np.asarray(base[None, None, :] * texture, np.float32)


def paint_deposit(image: Image, rng: np.random.Generator) -> tuple[Image, Mask]:
    """A copy of a clean BGR ``uint8`` view with a synthetic deposit, and its mask (0/255).

    The mask covers at least :data:`MIN_COVER` of the view (a shape whose faint edge, once cut,
    leaves less is drawn again)."""
    height, width = image.shape[:2]
    while True:
        shape = _shape(height, width, float(rng.uniform(MIN_COVER, MAX_COVER)), rng)
        shape[shape < VISIBLE] = 0.0  # the mask then holds every pixel the paint changes
        mask = np.where(shape > 0, 255, 0).astype(np.uint8)
        if np.count_nonzero(mask) >= MIN_COVER * height * width:
            break
    blend = (shape * np.float32(rng.uniform(0.55, 0.95)))[..., None]
    out = image.astype(np.float32) * (1.0 - blend) + _colour(image, rng) * blend
    return np.clip(out, 0, 255).astype(np.uint8), mask
