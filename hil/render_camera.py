"""What a small duct camera does to the light: auto-exposure, glare, tone curve, 8-bit output,
and, when asked, its imperfections: exposure error, colour cast, vignetting, shake or defocus,
sensor noise and JPEG artefacts. Used by :mod:`hil.render`.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

_METER_TARGET = 0.28
"""Where auto-exposure puts the 75th percentile of linear luminance."""
_LUT_SIZE = 1 << 14
"""Steps of the linear-to-8-bit tone table: fine enough that shadows do not band."""


@functools.cache
def _tone_curve() -> NDArray[np.uint8]:
    """Linear [0, 1] to 8-bit: a soft shoulder, then gamma 2 (close enough to a camera's sRGB)."""
    linear = np.linspace(0.0, 1.0, _LUT_SIZE)
    shouldered = np.minimum(1.0, 1.25 * linear / (1.0 + 0.25 * linear))
    return np.round(np.sqrt(shouldered) * 255.0).astype(np.uint8)


ALL_FLAWS = frozenset(
    {"defocus", "motion_blur", "noise", "white_balance", "exposure_error", "jpeg"}
)


def expose(
    radiance: F32,
    rng: np.random.Generator | None,
    flaws: frozenset[str] = ALL_FLAWS,
    *,
    wide: bool = False,
) -> NDArray[np.uint8]:
    """Planar linear BGR radiance (3, H, W) to an 8-bit BGR image (H, W, 3).

    Auto-exposure, lens glare and the tone curve always; the camera's imperfections only when
    ``rng`` is given, and of those only the ``flaws`` named (the draws are the same whichever are
    named). ``wide`` widens the exposure error and colour cast (domain randomisation). Works on
    planes: numpy broadcasting over a trailing axis of 3 is slow.
    """
    _, height, width = radiance.shape
    step = max(1, min(height, width) // 64)
    luminance = radiance[:, ::step, ::step].mean(axis=0)
    # Meter on the upper part of the histogram: the tunnel's dark centre must not blow out walls.
    meter = float(np.percentile(luminance, 75))
    gain = _METER_TARGET / max(meter, 1e-9)
    if rng is None:
        radiance *= np.float32(gain)
    else:
        error = float(np.clip(rng.normal(0.0, 0.45), -1.0, 1.0))
        cast = [rng.uniform(0.88, 1.12), rng.uniform(0.95, 1.05), rng.uniform(0.88, 1.12)]
        if wide:  # up to -2..+1.5 stops and a strong tint
            error = error * 2.0 if error < 0 else error * 1.5
            cast = [1.0 + (c - 1.0) * 2.5 for c in cast]
        if "exposure_error" in flaws:
            gain *= 2.0**error
        if "white_balance" not in flaws:
            cast = [1.0, 1.0, 1.0]
        strength = float(rng.uniform(0.0, 0.55))
        ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
        xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
        aspect = np.float32(height / width)
        # In place, one full-size plane instead of four, freed before the noise is drawn.
        vignette = xs * xs + ys * ys * aspect * aspect
        vignette /= 1 + aspect * aspect
        vignette *= np.float32(strength)
        np.subtract(np.float32(1.0), vignette, out=vignette)
        for channel in range(3):
            radiance[channel] *= vignette * np.float32(gain * cast[channel])
        del vignette
    # Glare: light scattered in the lens spreads around blown-out areas (green ~ luminance).
    small = cv2.resize(
        radiance[1], (max(1, width // 8), max(1, height // 8)), interpolation=cv2.INTER_AREA
    )
    hot = np.maximum(small - np.float32(0.9), 0.0)
    if hot.any():
        bloom = cv2.GaussianBlur(hot, (0, 0), max(1.0, width / 160))
        radiance += cv2.resize(bloom, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(
            0.35
        )
    if rng is not None:
        _optical_blur(radiance, rng, flaws)
        if "noise" in flaws:
            _sensor_noise(radiance, rng)
    # Tone curve through a lookup table: index = linear value in [0, 1] (1 is full white).
    lut = _tone_curve()
    radiance *= np.float32(_LUT_SIZE - 1)
    radiance += np.float32(0.5)
    np.clip(radiance, 0.0, np.float32(_LUT_SIZE - 1), out=radiance)
    out = cv2.merge([lut[plane.astype(np.uint16)] for plane in radiance])
    if rng is not None and rng.random() < 0.85 and "jpeg" in flaws:
        quality = int(rng.integers(30, 96))
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return np.asarray(out, dtype=np.uint8)


def _optical_blur(image: F32, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    """Camera shake (a short straight smear) or defocus, in place on planar ``image``."""
    width = image.shape[2]
    choice = rng.random()
    if choice < 0.25 and "motion_blur" in flaws:
        length = max(2, round(rng.uniform(0.004, 0.015) * width))
        kernel = np.zeros((length, length), np.float32)
        angle = rng.uniform(0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        mid = (length - 1) / 2
        start = (round(mid - c * mid), round(mid - s * mid))
        end = (round(mid + c * mid), round(mid + s * mid))
        cv2.line(kernel, start, end, 1.0, 1)
        kernel /= kernel.sum()
        for plane in image:
            cv2.filter2D(plane, -1, kernel, dst=plane)
    elif 0.25 <= choice < 0.5 and "defocus" in flaws:
        sigma = float(rng.uniform(0.5, 2.0)) * width / 640
        for plane in image:
            cv2.GaussianBlur(plane, (0, 0), sigma, dst=plane)


def _sensor_noise(image: F32, rng: np.random.Generator) -> None:
    """Read noise plus shot noise (grows with the signal), in linear units, in place.

    Added before the tone curve, as on a sensor, so the gamma lifts it in the shadows. Drawn at
    half resolution and upsampled: demosaicing correlates a real sensor's noise over about two
    pixels. The unit noise is the sum of two uniform bytes (triangular, close enough to normal
    for sensor grain), several times cheaper to draw than normal deviates.
    """
    _, height, width = image.shape
    read = float(rng.uniform(0.0005, 0.004))
    shot = float(rng.uniform(0.0, 4e-4))
    shape = (3, (height + 1) // 2, (width + 1) // 2)
    count = shape[0] * shape[1] * shape[2]
    raw = np.frombuffer(rng.bytes(2 * count), np.uint8)
    half = raw[:count].astype(np.float32).reshape(shape)
    half += raw[count:].reshape(shape)
    del raw
    # Sum of two uniform 0..255 bytes: mean 255, standard deviation 255 / sqrt(6).
    half -= np.float32(255.0)
    half *= np.float32(math.sqrt(6.0) / 255.0)
    for channel in range(3):
        plane = image[channel]
        sigma = np.maximum(plane, np.float32(0.0))
        sigma *= np.float32(shot)
        sigma += np.float32(read * read)
        np.sqrt(sigma, out=sigma)
        sigma *= cv2.resize(half[channel], (width, height), interpolation=cv2.INTER_LINEAR)
        plane += sigma
