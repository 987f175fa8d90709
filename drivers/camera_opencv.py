"""USB (UVC) cameras through OpenCV's ``VideoCapture``; also reads video files, which tests use.

On Linux an integer device opens ``/dev/video<n>`` with the V4L2 backend. A read runs in a worker
thread with a deadline, because a wedged USB camera can block ``read`` far longer than the agent
may wait.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import cv2
import numpy as np
from numpy.typing import NDArray

from drivers.camera import Frame
from drivers.errors import CameraError

log = logging.getLogger(__name__)


class OpenCVCamera:
    """A camera or video source opened with ``cv2.VideoCapture``.

    ``device`` is a V4L2 index (``0`` for ``/dev/video0``), a device path, or a file/stream URL.
    ``width`` x ``height`` is requested from the device; a camera that cannot do it delivers its
    nearest mode, and the frame reports the size it really has. ``warmup_frames`` are read and
    dropped after opening: the first frames of a UVC camera are dark or stale while its
    auto-exposure starts. Each later capture also drops the frames the driver buffered meanwhile.
    """

    backend = "opencv"

    def __init__(
        self,
        name: str,
        device: int | str,
        width: int,
        height: int,
        warmup_frames: int = 3,
        *,
        read_timeout_s: float = 5.0,
        stale_frames: int = 1,
    ) -> None:
        self._name = name
        self.device = device
        self.read_timeout_s = read_timeout_s
        self.stale_frames = stale_frames
        self._requested = (width, height)
        api = cv2.CAP_V4L2 if isinstance(device, int) and sys.platform.startswith("linux") else 0
        capture = cv2.VideoCapture(device, api)
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                f"cannot open video device {device!r} (unplugged, busy, or no permission:"
                " is the user in the 'video' group?)",
                camera=name,
            )
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture: cv2.VideoCapture | None = capture
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"camera-{name}")
        self._pending: Future[tuple[bool, NDArray[np.uint8] | None]] | None = None
        for _ in range(warmup_frames):
            self._read()
        log.info("opencv camera opened camera=%s device=%s", name, device)

    @property
    def name(self) -> str:
        return self._name

    def _read(self) -> NDArray[np.uint8]:
        capture = self._capture
        if capture is None:
            raise CameraError("camera is closed", camera=self._name)
        if self._pending is not None and not self._pending.done():
            raise CameraError("an earlier read is still hung; reopen the camera", camera=self._name)

        def read() -> tuple[bool, NDArray[np.uint8] | None]:
            ok, image = capture.read()
            return bool(ok), None if image is None else np.asarray(image, dtype=np.uint8)

        self._pending = self._reader.submit(read)
        try:
            ok, image = self._pending.result(timeout=self.read_timeout_s)
        except FutureTimeout as exc:
            raise CameraError(
                f"no frame from {self.device!r} within {self.read_timeout_s:g} s", camera=self._name
            ) from exc
        if not ok or image is None:
            raise CameraError(
                f"no frame from {self.device!r} (end of stream, or the device went away)",
                camera=self._name,
            )
        return _as_bgr(image)

    def capture(self) -> Frame:
        for _ in range(self.stale_frames):
            self._read()
        image = self._read()
        metadata: dict[str, object] = {"device": str(self.device)}
        if (image.shape[1], image.shape[0]) != self._requested:
            metadata["requested_size"] = f"{self._requested[0]}x{self._requested[1]}"
        # V4L2 reports the exposure control's value, not what auto-exposure used: not a measurement.
        return Frame.of(self._name, image, backend=self.backend, metadata=metadata)

    def close(self) -> None:
        """Release the device (idempotent)."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
        self._reader.shutdown(wait=False, cancel_futures=True)


def _as_bgr(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return np.ascontiguousarray(image, dtype=np.uint8)
