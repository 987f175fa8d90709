"""A camera that replays a folder of JPEG/PNG files: for demos, tests and re-running field data.

Snapshots written by :func:`drivers.camera.save_snapshot` replay with their exposure, read from
their JSON sidecars.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from drivers.camera import Frame
from drivers.errors import CameraError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


class ReplayCamera:
    """Serves the images of ``directory`` in file-name order, starting again at the end if
    ``loop``, otherwise raising :class:`CameraError` once all are shown."""

    backend = "replay"

    def __init__(self, name: str, directory: str | os.PathLike[str], loop: bool = True) -> None:
        self._name = name
        self.directory = Path(directory)
        self.loop = loop
        if not self.directory.is_dir():
            raise CameraError(f"replay directory {self.directory} does not exist", camera=name)
        self.files = sorted(
            path
            for path in self.directory.iterdir()
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        )
        if not self.files:
            raise CameraError(
                f"replay directory {self.directory} holds no .jpg/.jpeg/.png file", camera=name
            )
        self._next = 0
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    def capture(self) -> Frame:
        if self._closed:
            raise CameraError("camera is closed", camera=self._name)
        if self._next >= len(self.files):
            if not self.loop:
                raise CameraError(
                    f"replay finished: all {len(self.files)} images of {self.directory} shown",
                    camera=self._name,
                )
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraError(f"cannot decode image file {path}", camera=self._name)
        exposure, extras = _sidecar(path)
        return Frame.of(
            self._name,
            np.ascontiguousarray(image, dtype=np.uint8),
            backend=self.backend,
            exposure_us=exposure,
            metadata={"source": str(path), **extras},
        )

    def close(self) -> None:
        self._closed = True


def _sidecar(image: Path) -> tuple[int | None, dict[str, object]]:
    """Exposure and original capture details from a snapshot's ``.json`` sidecar, if any."""
    sidecar = image.with_suffix(".json")
    if not sidecar.is_file():
        return None, {}
    try:
        document = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        log.warning("replay sidecar unreadable path=%s error=%s", sidecar, exc)
        return None, {}
    if not isinstance(document, dict):
        return None, {}
    exposure = document.get("exposure_us")
    extras: dict[str, object] = {}
    for key in ("camera", "captured_at", "backend"):
        if key in document:
            extras[f"original_{key}"] = document[key]
    return (exposure if isinstance(exposure, int) else None), extras
