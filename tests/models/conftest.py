"""Field-set builders for the model tooling tests (tiny, distinct images in any layout), and the
check that a command failed with one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

SetWriter = Callable[..., list[Path]]


def write_image(path: Path, key: int, label: int, *, size: int = 16) -> Path:
    """A picture unique to (``key`` < 2**16, ``label``), even through JPEG: the key's bits are
    black or white blocks, the label the blue level. Same arguments, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bits = np.array([(key >> b) & 1 for b in range(16)], np.uint8).reshape(4, 4) * 255
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[:, :, 1] = cv2.resize(bits, (size, size), interpolation=cv2.INTER_NEAREST)
    pixels[:, :, 0] = 40 + 150 * label
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cannot write {path}")
    return path


def write_label_folders(
    root: Path, clean: int, dirty: int, *, start: int = 0, ext: str = ".png", size: int = 16
) -> list[Path]:
    """``root/clean/`` and ``root/dirty/`` with ``clean`` and ``dirty`` distinct images."""
    paths = []
    for label, (name, count) in enumerate((("clean", clean), ("dirty", dirty))):
        for key in range(start, start + count):
            paths.append(write_image(root / name / f"img{key:05d}{ext}", key, label, size=size))
    return paths


@pytest.fixture
def label_folders() -> SetWriter:
    return write_label_folders


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a models.* command wrote to stderr (no traceback, no second line)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]
