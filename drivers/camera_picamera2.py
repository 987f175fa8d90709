"""Raspberry Pi camera modules through picamera2 (libcamera), two cameras by index.

picamera2 comes from the OS packages on Raspberry Pi OS (``sudo apt install python3-picamera2``),
not from PyPI, so it is imported only when a camera is opened: this module imports anywhere.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from drivers.camera import Frame
from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import CameraError

log = logging.getLogger(__name__)

STILL_FORMAT = "RGB888"
"""libcamera's RGB888 stores each pixel as [B, G, R]: already OpenCV's BGR, no copy needed."""

_EXTRA_METADATA = (
    "AnalogueGain",
    "DigitalGain",
    "ColourTemperature",
    "Lux",
    "FrameDuration",
    "SensorTimestamp",
    "AeLocked",
)

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2`"
    " and create the virtualenv with --system-site-packages"
)


def to_bgr(array: NDArray[np.uint8], pixel_format: str) -> NDArray[np.uint8]:
    """A picamera2 array in ``pixel_format`` as a contiguous BGR (H, W, 3) image.

    libcamera names formats by their little-endian word, so "RGB888" is [B, G, R] in memory and
    "BGR888" is [R, G, B] (picamera2 manual, appendix A).
    """
    if pixel_format == "RGB888":
        bgr = array
    elif pixel_format == "BGR888":
        bgr = array[..., ::-1]
    elif pixel_format == "XRGB8888":
        bgr = array[..., :3]
    elif pixel_format == "XBGR8888":
        bgr = array[..., 2::-1]
    else:
        raise ValueError(f"unsupported picamera2 pixel format {pixel_format!r}")
    return np.ascontiguousarray(bgr, dtype=np.uint8)


class Picamera2Camera:
    """A Pi camera (CSI) opened by index, configured for stills at ``width`` x ``height``.

    The camera is started once, then given ``settle_s`` for auto-exposure and white balance to
    converge before the first capture; later captures reuse the running pipeline. A capture that
    brings no frame within ``capture_timeout_s`` raises :class:`CameraError`.
    """

    backend = "picamera2"

    def __init__(
        self,
        name: str,
        index: int,
        width: int,
        height: int,
        settle_s: float = 1.0,
        *,
        capture_timeout_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._name = name
        self.index = index
        self.capture_timeout_s = capture_timeout_s
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError(INSTALL_HINT, camera=name) from exc
        camera: Any = None
        try:
            camera = Picamera2(index)
            config = camera.create_still_configuration(
                main={"size": (width, height), "format": STILL_FORMAT}
            )
            camera.configure(config)
            self._format = str(config["main"]["format"])
            camera.start()
        except Exception as exc:  # libcamera reports a missing/busy camera in many exception types
            if camera is not None:
                with contextlib.suppress(Exception):
                    camera.close()
            raise CameraError(f"cannot start Pi camera index {index}: {exc}", camera=name) from exc
        self._camera: Any = camera
        log.info(
            "pi camera started camera=%s index=%d size=%dx%d settle_s=%.1f",
            name,
            index,
            width,
            height,
            settle_s,
        )
        clock.sleep(settle_s)

    @property
    def name(self) -> str:
        return self._name

    def capture(self) -> Frame:
        if self._camera is None:
            raise CameraError("camera is closed", camera=self._name)
        try:
            job = self._camera.capture_request(wait=False)
            request = self._camera.wait(job, timeout=self.capture_timeout_s)
        except TimeoutError as exc:
            raise CameraError(
                f"no frame within {self.capture_timeout_s:g} s (index {self.index})",
                camera=self._name,
            ) from exc
        except Exception as exc:
            raise CameraError(f"capture failed: {exc}", camera=self._name) from exc
        try:
            array = request.make_array("main")
            metadata = dict(request.get_metadata())
        except Exception as exc:
            raise CameraError(
                f"reading the captured frame failed: {exc}", camera=self._name
            ) from exc
        finally:
            request.release()
        exposure = metadata.get("ExposureTime")
        extras: dict[str, object] = {"index": self.index, "format": self._format}
        extras.update({key: metadata[key] for key in _EXTRA_METADATA if key in metadata})
        return Frame.of(
            self._name,
            to_bgr(np.asarray(array, dtype=np.uint8), self._format),
            backend=self.backend,
            exposure_us=int(exposure) if exposure is not None else None,
            metadata=extras,
        )

    def close(self) -> None:
        """Stop and release the camera (idempotent)."""
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in (camera.stop, camera.close):
            try:
                step()
            except Exception as exc:  # closing must not raise on a camera that already failed
                log.warning("pi camera close camera=%s step=%s error=%s", self._name, step, exc)
