"""agent.heap: glibc's mmap threshold fixed, unless the environment sets it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent import heap

ROOT = Path(__file__).resolve().parents[2]

# A freed 1 MiB buffer raises glibc's dynamic threshold past 1 MiB; the next 1 MiB buffer then
# comes from the heap (the brk end moves) unless the threshold was fixed below it.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from agent import heap
    libc = ctypes.CDLL(None)
    libc.sbrk.restype = ctypes.c_void_p
    libc.malloc.restype = ctypes.c_void_p
    print(heap.keep_large_buffers_mapped())
    libc.free(ctypes.c_void_p(libc.malloc(1 << 20)))
    before = libc.sbrk(0)
    buffer = libc.malloc(1 << 20)
    print(libc.sbrk(0) - before >= 1 << 20)
    """
)


def _probe(env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), **env},
        timeout=60,
    )
    return result.stdout.split()


@pytest.mark.skipif(heap._libc() is None or not hasattr(heap._libc(), "mallopt"), reason="no glibc")
def test_large_buffers_stay_mapped_after_the_first_is_freed() -> None:
    assert _probe({}) == ["True", "False"]


@pytest.mark.skipif(heap._libc() is None or not hasattr(heap._libc(), "mallopt"), reason="no glibc")
def test_an_explicit_environment_threshold_wins() -> None:
    assert _probe({"MALLOC_MMAP_THRESHOLD_": str(4 << 20)}) == ["False", "True"]
