"""Domain randomisation of the scene around the dirt: duct material, LEDs, occluders, lens.

:func:`dress_scene` turns a drawn duct into one of the :data:`hil.render_domain.MATERIALS` lit by
the look's LEDs; :func:`stage` then adds what lies between the walls and the sensor (a branch
opening, damper blades or turning vanes, a hard shadow, specular glare) and the lens (wide-angle
or fisheye distortion, defocus, motion blur), all in linear radiance before the camera exposes.
Used by :mod:`hil.render` when a :class:`hil.render_domain.Domain` is given.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
from numpy.typing import NDArray

from hil.render_domain import Look, led_bgr
from hil.render_scene import F32, DuctScene

F64 = NDArray[np.float64]


def _hsv_bgr(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    """BGR in [0, 1] of a hue in degrees, saturation and value in [0, 1]."""
    hsv = np.array([[[hue / 2.0, saturation * 255.0, value * 255.0]]], np.float32)
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0] / 255.0
    return float(bgr[0]), float(bgr[1]), float(bgr[2])


def dress_scene(scene: DuctScene, look: Look, rng: np.random.Generator) -> DuctScene:
    """The look's material, LEDs and geometry features applied to a drawn duct."""
    u = rng.uniform
    material = look.material
    if material in ("galvanised", "spangle"):
        spangled = material == "spangle"
        scene = replace(
            scene,
            spangle_contrast=float(u(0.08, 0.25) if spangled else u(0.0, 0.03)),
            spangle_px=float(u(5.0, 24.0)),
            brushed=float(u(0.0, 0.12)),
            metal_gain=float(u(0.4, 0.85)),
        )
    elif material == "painted":
        tint = _hsv_bgr(float(u(0, 360)), float(u(0.0, 0.7)), float(u(0.45, 1.0)))
        scene = replace(
            scene,
            metal_tint=tint,
            metal_gain=float(u(0.35, 0.85)),
            spangle_contrast=float(u(0.0, 0.02)),
            brushed=0.0,
            specular=float(u(0.05, 0.45)),
            shininess=float(u(2.0, 12.0)),
        )
    elif material == "stainless":
        scene = replace(
            scene,
            metal_tint=(float(u(0.98, 1.06)), float(u(0.98, 1.03)), float(u(0.95, 1.0))),
            metal_gain=float(u(0.45, 0.8)),
            spangle_contrast=0.0,
            brushed=float(u(0.08, 0.25)),
            specular=float(u(0.5, 1.3)),
            shininess=float(u(15.0, 60.0)),
        )
    elif material == "lined":
        grey = float(u(0.1, 0.35))
        tint = _hsv_bgr(float(u(0, 360)), float(u(0.0, 0.3)), 1.0)
        scene = replace(
            scene,
            metal_tint=tint,
            metal_gain=grey,
            spangle_px=float(u(4.0, 8.0)),
            spangle_contrast=float(u(0.04, 0.12)),
            brushed=float(u(0.04, 0.15)),
            specular=float(u(0.0, 0.06)),
            shininess=2.0,
        )
    else:  # flex: aluminium foil over a helical wire, crinkled
        scene = replace(
            scene,
            metal_tint=(float(u(0.96, 1.04)), float(u(0.97, 1.03)), float(u(0.97, 1.06))),
            metal_gain=float(u(0.45, 0.85)),
            spangle_px=float(u(5.0, 10.0)),
            spangle_contrast=float(u(0.05, 0.15)),
            brushed=float(u(0.05, 0.25)),
            specular=float(u(0.6, 1.4)),
            shininess=float(u(8.0, 40.0)),
            seam_pitch=float(u(0.025, 0.07)),
            joint_pitch=float(u(3.0, 6.0)),
        )
    second = (float(u(-0.6, 0.6)), float(u(-0.6, 0.6)), float(u(0.3, 1.0)))
    scene = replace(
        scene,
        led_bgr=led_bgr(look.led_kelvin),
        beam_axis=(float(u(-0.25, 0.25)), float(u(-0.25, 0.25))),
        second_light=second if "two_lights" in look.lighting else (0.0, 0.0, 0.0),
    )
    bend_depth = float(u(1.5, 4.0))
    if "bend" in look.features:
        scene = replace(scene, end_is_wall=True, z_end=bend_depth)
    return scene


def _project(scene: DuctScene, points: F64) -> F64:
    """Duct-frame points (camera at the origin, ..., 3) to pixel coordinates (..., 2)."""
    z = np.maximum(points[..., 2], 1e-3)
    plane = np.stack([points[..., 0] / z, points[..., 1] / z], axis=-1)
    cos_r, sin_r = math.cos(scene.roll), math.sin(scene.roll)
    unroll = np.array([[cos_r, sin_r], [-sin_r, cos_r]])
    return np.asarray(plane @ unroll.T * scene.focal_px + np.array([scene.cx, scene.cy]))


def _lit(scene: DuctScene, depth: float, albedo: float) -> NDArray[np.float32]:
    """Radiance (B, G, R) of a surface facing the camera at ``depth`` (m)."""
    value = albedo / max(depth, 0.05) ** 2
    return np.array(scene.led_bgr, np.float32) * np.float32(value)


def _fill(radiance: F32, outline: F64, colour: NDArray[np.float32], blend: float = 1.0) -> None:
    """Paint a convex pixel outline over planar radiance, anti-aliased."""
    height, width = radiance.shape[1:]
    mask = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(mask, np.round(outline * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    band = slice(int(rows[0]), int(rows[-1]) + 1)
    alpha = mask[band].astype(np.float32) * np.float32(blend / 255.0)
    for channel in range(3):
        plane = radiance[channel, band]
        plane += (colour[channel] - plane) * alpha


def stage(radiance: F32, scene: DuctScene, look: Look, rng: np.random.Generator) -> F32:
    """Occluders, shadow, glare and lens effects of ``look``; returns the new radiance."""
    u = rng.uniform
    left, right = -scene.half_w - scene.cam_x, scene.half_w - scene.cam_x
    top, bottom = -scene.half_h - scene.cam_y, scene.half_h - scene.cam_y
    depth = float(u(0.8, max(1.0, min(scene.z_end * 0.8, 4.0))))
    if "tee" in look.features:  # a branch opening in a side wall: a dark hole
        x = left if rng.random() < 0.5 else right
        span = float(u(0.15, 0.5))
        y0, y1 = top + (bottom - top) * float(u(0.0, 0.3)), bottom - (bottom - top) * 0.05
        corners = np.array([[x, y0, depth], [x, y0, depth + span], [x, y1, depth + span]])
        corners = np.vstack([corners, [[x, y1, depth]]])
        _fill(radiance, _project(scene, corners), _lit(scene, depth, 0.004))
    if "damper" in look.features or "vanes" in look.features:
        vertical = "vanes" in look.features
        blades = int(rng.integers(2, 6))
        tilt = float(u(0.02, 0.12))
        albedo = float(u(0.2, 0.6))
        lo, hi = (left, right) if vertical else (top, bottom)
        for k in range(blades):
            at = lo + (hi - lo) * (k + 0.5) / blades
            half = (hi - lo) / blades * float(u(0.15, 0.4))
            if vertical:
                quad = [[at - half, top, depth - tilt], [at + half, top, depth + tilt]]
                quad += [[at + half, bottom, depth + tilt], [at - half, bottom, depth - tilt]]
            else:
                quad = [[left, at - half, depth - tilt], [right, at - half, depth + tilt]]
                quad += [[right, at + half, depth + tilt], [left, at + half, depth - tilt]]
            shade = albedo * (0.6 + 0.4 * (k % 2))
            _fill(radiance, _project(scene, np.array(quad)), _lit(scene, depth, shade))
    if "shadow" in look.lighting:  # a bracket or cable between an LED and the wall
        height, width = radiance.shape[1:]
        centre = np.array([u(0, width), u(0, height)])
        angle = float(u(0, math.pi))
        along = np.array([math.cos(angle), math.sin(angle)]) * width
        across = np.array([-math.sin(angle), math.cos(angle)]) * width * float(u(0.02, 0.1))
        outline = np.array(
            [centre - along - across, centre + along - across, centre + along + across]
        )
        outline = np.vstack([outline, [centre - along + across]])
        strength = float(u(0.3, 0.7))
        shadow = np.ones((height, width), np.float32)
        cv2.fillConvexPoly(
            shadow, np.round(outline * 16).astype(np.int32), 1.0 - strength, cv2.LINE_AA, 4
        )
        radiance *= shadow[None]
    if "glare" in look.lighting:  # a specular hot spot: blooms once exposed
        height, width = radiance.shape[1:]
        step = max(1, min(height, width) // 64)
        level = float(np.percentile(radiance[:, ::step, ::step].mean(axis=0), 75))
        spot = np.zeros((height, width), np.float32)
        spot_at = (int(u(0.1, 0.9) * width), int(u(0.1, 0.9) * height))
        axes = (max(1, int(u(0.02, 0.1) * width)), max(1, int(u(0.01, 0.05) * width)))
        cv2.ellipse(spot, spot_at, axes, float(u(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        soft = np.asarray(cv2.GaussianBlur(spot, (0, 0), max(1.0, axes[1] / 2)), np.float32)
        radiance += soft[None] * np.float32(level * u(3.0, 12.0))
    if "fisheye" in look.camera:
        radiance = _distort(radiance, float(u(0.08, 0.45)))
    if "defocus" in look.camera:
        sigma = float(u(0.6, 2.5)) * radiance.shape[2] / 640
        for plane in radiance:
            cv2.GaussianBlur(plane, (0, 0), sigma, dst=plane)
    if "motion_blur" in look.camera:
        _smear(radiance, rng)
    return radiance


def _distort(radiance: F32, strength: float) -> F32:
    """Barrel distortion ``r' = r (1 + k r^2)`` sampled back: a wide-angle or fisheye lens."""
    _, height, width = radiance.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    half = np.float32(math.hypot(width, height) / 2)
    nx, ny = (xs - width / 2) / half, (ys - height / 2) / half
    # Where each output pixel looks in the undistorted image; scaled so the corners stay in view.
    scale = np.float32(1.0 + strength * (nx * nx + ny * ny)) / np.float32(1.0 + strength)
    map_x = (nx * scale * half + width / 2).astype(np.float32)
    map_y = (ny * scale * half + height / 2).astype(np.float32)
    return np.stack(
        [
            cv2.remap(plane, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            for plane in radiance
        ]
    )


def _smear(radiance: F32, rng: np.random.Generator) -> None:
    """A straight motion smear of 0.5-3 % of the width, in place."""
    width = radiance.shape[2]
    length = max(2, round(float(rng.uniform(0.005, 0.03)) * width))
    kernel = np.zeros((length, length), np.float32)
    angle = float(rng.uniform(0, math.pi))
    mid = (length - 1) / 2
    start = (round(mid - math.cos(angle) * mid), round(mid - math.sin(angle) * mid))
    end = (round(mid + math.cos(angle) * mid), round(mid + math.sin(angle) * mid))
    cv2.line(kernel, start, end, 1.0, 1)
    kernel /= kernel.sum()
    for plane in radiance:
        cv2.filter2D(plane, -1, kernel, dst=plane)
