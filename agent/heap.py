"""The agent's glibc heap on a small board: large buffers mmap'd, freed heap handed back.

A snapshot allocates a few image buffers of megabytes (render, frame, JPEG, preprocessing) once
every few minutes. glibc serves an allocation of at least its mmap threshold with its own mmap and
unmaps it when freed, but raises that threshold (up to 32 MB) after the first such buffer is freed,
so every later snapshot's buffers come from the heap, which glibc keeps and fragments: on the
simulated board that is about 15 MB more resident memory, steady and at the peak
(``bench/agent_resources.py``). A fixed threshold keeps large buffers mmap'd for the life of the
agent; an explicit ``MALLOC_MMAP_THRESHOLD_`` in the environment still wins. Other C libraries
(musl) have neither call, and nothing changes there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Any

M_MMAP_THRESHOLD = -3
"""mallopt parameter number (glibc malloc.h)."""
LARGE_BUFFER_BYTES = 256 * 1024
"""Allocations of this size or more are mmap'd and given back when freed (glibc's initial
threshold is 128 KiB; 256 KiB keeps the many mid-size numpy temporaries on the heap)."""


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def keep_large_buffers_mapped() -> bool:
    """Fix glibc's mmap threshold at :data:`LARGE_BUFFER_BYTES`; False where it cannot be (not
    glibc, or the environment sets ``MALLOC_MMAP_THRESHOLD_``)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))


def release_freed_memory() -> None:
    """Hand the heap that a snapshot's large arrays used back to the OS (glibc only).

    A snapshot allocates tens of MB of image buffers once every few minutes; glibc keeps the freed
    heap, which on a 512 MB board reads as a 300 MB agent. ``malloc_trim(0)`` returns it.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
