"""Training augmentations that mimic how a camera in a duct varies from shot to shot.

Crop and flip live in :mod:`models.train`; this adds what changes between two cameras or two
snapshots of the same duct: white balance, exposure and contrast, saturation, defocus and shake,
a small change of viewpoint (perspective), part of the view hidden (a smooth occluder, so that
erasing never paints a deposit-like blotch onto a clean duct) and JPEG compression.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


def camera_augment(image: Image, rng: np.random.Generator) -> Image:
    """A randomly altered copy of a BGR ``uint8`` image (same size)."""
    height, width = image.shape[:2]
    out: NDArray[Any] = image
    if rng.random() < 0.3:  # viewpoint: each corner moves by up to 6 % of the side
        src = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        jitter = rng.uniform(-0.06, 0.06, (4, 2)) * np.array([width, height])
        matrix = cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))
        out = cv2.warpPerspective(out, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.25:  # a smooth occluder (cable, lens smear) over 2-10 % of the view
        area = rng.uniform(0.02, 0.1) * width * height
        aspect = rng.uniform(0.4, 2.5)
        w = int(min(width, max(2, np.sqrt(area * aspect))))
        h = int(min(height, max(2, area / max(w, 1))))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        out = out.copy()
        region = out[y : y + h, x : x + w]
        out[y : y + h, x : x + w] = cv2.blur(region, (max(1, w // 2) | 1, max(1, h // 2) | 1))
    choice = rng.random()
    if choice < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.4, 1.4)))
    elif choice < 0.3:
        length = int(rng.integers(2, 6))
        kernel = np.zeros((length, length), np.float32)
        if rng.random() < 0.5:
            kernel[length // 2] = 1.0
        else:
            kernel[:, length // 2] = 1.0
        out = cv2.filter2D(out, -1, kernel / kernel.sum())
    pixels = out.astype(np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * np.float32(rng.uniform(0.6, 1.4))  # saturation
    mean = float(pixels.mean())
    pixels = (pixels - mean) * np.float32(rng.uniform(0.75, 1.25)) + mean  # contrast
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.88, 1.12, size=3)  # exposure, white balance
    pixels *= gain.astype(np.float32)
    np.clip(pixels, 0, 255, out=pixels)
    gamma = float(rng.uniform(0.8, 1.25))
    out = (255.0 * (pixels / 255.0) ** gamma).astype(np.uint8)
    if rng.random() < 0.3:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded
    return np.ascontiguousarray(out, dtype=np.uint8)
