"""Replace a file's content atomically: a reader (or a power cut) sees the old or the new bytes,
never half of them. Write a hidden temporary file beside it, fsync it, rename it over the target."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
