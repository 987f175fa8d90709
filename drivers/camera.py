"""The camera interface every backend implements, snapshot storage, and frame sanity checks.

A backend (Pi camera, USB camera, a folder of images, the simulated duct) turns one capture into a
:class:`Frame`: a BGR ``uint8`` image plus what a technician or the data team needs to trust it
(which camera, resolution, exposure, when, which backend). :func:`save_snapshot` stores it as a
JPEG with a JSON sidecar; :func:`frame_problem` tells a broken camera (black or frozen frames) from
a working one, for the agent and for ``remotair doctor``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from drivers.errors import CameraError

log = logging.getLogger(__name__)

BLACK_MEAN_MAX = 10.0
"""A frame whose mean brightness (0-255) is below this, and ..."""
BLACK_P99_MAX = 30.0
"""... whose 99th-percentile brightness is below this, is black: lens covered, LED dead. A dark
but working duct still has its lit near walls well above both."""


def _empty_metadata() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image and what is known about it.

    ``image`` is BGR ``uint8`` of shape (height, width, 3), OpenCV's convention. ``exposure_us`` is
    None when the backend cannot tell. ``captured_at`` is timezone-aware UTC. ``metadata`` holds
    backend extras (analogue gain, colour temperature, source file...), read-only.
    """

    camera: str
    image: NDArray[np.uint8]
    width: int
    height: int
    exposure_us: int | None
    captured_at: datetime
    backend: str
    metadata: Mapping[str, object] = field(default_factory=_empty_metadata)

    def __post_init__(self) -> None:
        image = self.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"camera {self.camera}: frame must be BGR uint8 (H, W, 3),"
                f" got {image.dtype} {image.shape}"
            )
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"camera {self.camera}: frame is {image.shape[1]}x{image.shape[0]},"
                f" declared {self.width}x{self.height}"
            )
        if self.captured_at.tzinfo is None:
            raise ValueError(f"camera {self.camera}: captured_at must be timezone-aware (UTC)")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @classmethod
    def of(
        cls,
        camera: str,
        image: NDArray[np.uint8],
        *,
        backend: str,
        exposure_us: int | None = None,
        metadata: Mapping[str, object] | None = None,
        captured_at: datetime | None = None,
    ) -> Frame:
        """A frame whose size comes from ``image`` and whose time is now (UTC) unless given."""
        return cls(
            camera=camera,
            image=image,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            exposure_us=exposure_us,
            captured_at=captured_at or datetime.now(UTC),
            backend=backend,
            metadata=metadata or {},
        )


@runtime_checkable
class Camera(Protocol):
    """What the agent needs of a camera. ``capture`` raises :class:`CameraError` on failure."""

    @property
    def name(self) -> str: ...

    def capture(self) -> Frame: ...

    def close(self) -> None: ...


def snapshot_stem(frame: Frame) -> str:
    """``<camera>-<UTC timestamp>``, e.g. ``upstream-20261125T210512.123Z``.

    No colons (FAT file systems and S3 keys dislike them); the camera name is reduced to letters,
    digits, ``-``, ``_`` and ``.`` so that it cannot leave the directory.
    """
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", frame.camera).strip(".") or "camera"
    at = frame.captured_at.astimezone(UTC)
    return f"{safe_name}-{at:%Y%m%dT%H%M%S}.{at.microsecond // 1000:03d}Z"


def save_snapshot(frame: Frame, directory: str | os.PathLike[str], *, quality: int = 90) -> Path:
    """Store ``frame`` as ``<camera>-<UTC time>.jpg`` with a ``.json`` sidecar; return the JPEG.

    Both files are written to a temporary name, flushed to disk and renamed, so a reader never
    sees half a file; the sidecar lands first, so a JPEG that exists always has its metadata. The
    directory is created if needed. A file-system failure (full disk, read-only mount, no
    permission) raises ``OSError`` naming the path, its errno kept (``ENOSPC`` for a full disk);
    an image the encoder refuses raises :class:`CameraError`.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1-100, got {quality}")
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _with_path(exc, folder) from exc
    import cv2  # ~37 MB and 0.4 s: not for every command that only imports this module

    ok, encoded = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CameraError("JPEG encoding failed", camera=frame.camera)
    stem = snapshot_stem(frame)
    jpeg = folder / f"{stem}.jpg"
    suffix = 1
    while jpeg.exists() or jpeg.with_suffix(".json").exists():
        suffix += 1
        jpeg = folder / f"{stem}-{suffix}.jpg"
    sidecar = jpeg.with_suffix(".json")
    _write_atomically(sidecar, _sidecar_json(frame, jpeg.name, quality).encode())
    _write_atomically(jpeg, encoded.tobytes())
    log.info(
        "snapshot saved camera=%s path=%s bytes=%d exposure_us=%s",
        frame.camera,
        jpeg,
        encoded.size,
        frame.exposure_us,
    )
    return jpeg


def _sidecar_json(frame: Frame, image_name: str, quality: int) -> str:
    at = frame.captured_at.astimezone(UTC)
    document = {
        "image": image_name,
        "camera": frame.camera,
        "width": frame.width,
        "height": frame.height,
        "exposure_us": frame.exposure_us,
        "captured_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "backend": frame.backend,
        "jpeg_quality": quality,
        "metadata": dict(frame.metadata),
    }
    # default=str: backend metadata may hold tuples of numpy numbers or enums; keep them readable.
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise _with_path(exc, path) from exc


def _with_path(exc: OSError, path: Path) -> OSError:
    """The same error (errno kept, so ENOSPC stays ENOSPC) naming the file we were writing."""
    if exc.errno is None:
        return OSError(f"{exc}: {path}")
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def frame_digest(image: NDArray[np.uint8]) -> bytes:
    """A 16-byte fingerprint of ``image`` (shape, dtype and every byte): what a caller keeps to
    tell a frozen frame instead of keeping the whole frame (about 6 MB at 1640x1232)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).data.cast("B"))
    return digest.digest()


def frame_problem(
    image: NDArray[np.uint8], previous: NDArray[np.uint8] | bytes | None = None
) -> str | None:
    """Why ``image`` cannot be a good frame, or None when nothing is wrong.

    Black: both the mean and the 99th-percentile brightness are very low (a dark duct still shows
    its lit near walls). Frozen: identical to ``previous`` (the previous frame or its
    :func:`frame_digest`), byte for byte; a live sensor's noise makes two real frames differ.
    """
    if image.size == 0:
        return "empty frame"
    step = max(1, min(image.shape[0], image.shape[1]) // 240)
    sample = image[::step, ::step]
    brightness = sample.max(axis=2) if sample.ndim == 3 else sample
    mean = float(brightness.mean())
    p99 = float(np.percentile(brightness, 99))
    if mean < BLACK_MEAN_MAX and p99 < BLACK_P99_MAX:
        return f"black frame (mean brightness {mean:.1f}, 99th percentile {p99:.0f} of 255)"
    if isinstance(previous, bytes):
        frozen = previous == frame_digest(image)
    else:
        frozen = (
            previous is not None
            and previous.shape == image.shape
            and np.array_equal(previous, image)
        )
    if frozen:
        return "frozen frame (identical to the previous one)"
    return None
