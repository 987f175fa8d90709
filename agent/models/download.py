"""Fetching a model file for installation: bounded, resumable, and honest about failures.

A board on a cellular link loses connections mid-download; starting a 12 MB file again each time
may never finish. The partial file is kept (``<name>.part``) and the next attempt asks for the rest
with an HTTP ``Range`` header, as any good firmware updater does. The manifest says how big the
file is, so the download stops as soon as a server sends more (a wrong or hostile URL cannot fill
the disk), and the free space is checked before the first byte. ``file://`` serves tests and USB
sticks; plain ``http://`` is accepted for loopback addresses only (a local test server), since the
signature protects the content but not the board's privacy or its link budget.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent.models import CheckFailed

_CHUNK = 64 * 1024
FREE_SPACE_MARGIN_BYTES = 16 * 1024 * 1024
"""Left free beyond the model itself: the outbox and the logs share the disk."""

Progress = Callable[[int, int], None]
"""Called with (bytes so far, total bytes) after each chunk."""


class DownloadError(CheckFailed):
    """The model file could not be fetched; ``reason`` is one short phrase for the install state."""


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    size_bytes: int
    """The file's size from the signed manifest: the cap, and how much free space is needed."""
    timeout_s: float = 30.0
    """Longest wait for a connection or for the next bytes."""
    deadline_s: float = 900.0
    """Longest time for the whole download, retries included."""
    attempts: int = 5
    """Connections tried in all (each after the first resumes where the last one stopped)."""
    retry_pause_s: float = 1.0


def download(
    url: str,
    target: Path,
    limits: DownloadLimits,
    *,
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Fetch ``url`` into ``target`` (via ``target.part``); :class:`DownloadError` on failure."""
    scheme = _check_url(url)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > limits.size_bytes:
        part.unlink()
        have = 0
    check_free_space(target.parent, limits.size_bytes - have)
    report = on_progress or (lambda done, total: None)
    if scheme == "file":
        _copy_file(urllib.parse.urlparse(url), part, limits, report)
    else:
        _fetch_http(url, part, limits, report, clock, sleep)
    if part.stat().st_size != limits.size_bytes:
        raise DownloadError(
            "size mismatch",
            f"got {part.stat().st_size} bytes, the manifest says {limits.size_bytes}",
        )
    part.replace(target)
    return target


def check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed + FREE_SPACE_MARGIN_BYTES:
        raise DownloadError(
            "disk full",
            f"{directory} has {free // 1024**2} MB free, the model needs {needed // 1024**2} MB"
            f" plus {FREE_SPACE_MARGIN_BYTES // 1024**2} MB margin",
        )


def _check_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("https", "file"):
        return parsed.scheme
    if parsed.scheme == "http" and _is_loopback(parsed.hostname or ""):
        return parsed.scheme
    raise DownloadError(
        "bad url", f"{url!r}: use https:// (or file://; http:// only on a loopback address)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _copy_file(
    parsed: urllib.parse.ParseResult, part: Path, limits: DownloadLimits, report: Progress
) -> None:
    source = Path(urllib.request.url2pathname(parsed.path))
    try:
        size = source.stat().st_size
        if size > limits.size_bytes:
            raise DownloadError(
                "too large", f"{source} is {size} bytes, the manifest says {limits.size_bytes}"
            )
        with source.open("rb") as src, part.open("wb") as dst:
            _pump(src, dst, 0, limits.size_bytes, report)
    except OSError as exc:
        raise _os_error(exc, str(source)) from exc


def _fetch_http(
    url: str,
    part: Path,
    limits: DownloadLimits,
    report: Progress,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    deadline = clock() + limits.deadline_s
    last: Exception | None = None
    for attempt in range(limits.attempts):
        if attempt:
            sleep(limits.retry_pause_s)
        if clock() > deadline:
            raise DownloadError("timeout", f"{url} did not finish in {limits.deadline_s:g} s")
        have = part.stat().st_size if part.exists() else 0
        if have == limits.size_bytes:
            return
        try:
            _one_request(url, part, have, limits, report)
            return
        except DownloadError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise _os_error(exc, str(part)) from exc
            last = exc
    raise DownloadError(
        "download failed",
        f"{url}: {_describe(last)} after {limits.attempts} attempts"
        f" ({part.stat().st_size if part.exists() else 0} of {limits.size_bytes} bytes kept)",
    )


def _one_request(url: str, part: Path, have: int, limits: DownloadLimits, report: Progress) -> None:
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=limits.timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have == limits.size_bytes:
            return
        if 400 <= exc.code < 500:
            raise DownloadError("download refused", f"{url}: HTTP {exc.code} {exc.reason}") from exc
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range: start again
        length = response.headers.get("Content-Length")
        if length is not None and have + int(length) > limits.size_bytes:
            raise DownloadError(
                "too large",
                f"{url} sends {have + int(length)} bytes, the manifest says {limits.size_bytes}",
            )
        with part.open("ab" if have else "wb") as dst:
            _pump(response, dst, have, limits.size_bytes, report)
        if length is not None and part.stat().st_size < have + int(length):
            raise http.client.IncompleteRead(b"", have + int(length) - part.stat().st_size)


def _pump(src: BinaryIO, dst: BinaryIO, have: int, total: int, report: Progress) -> None:
    while chunk := src.read(_CHUNK):
        have += len(chunk)
        if have > total:
            raise DownloadError("too large", f"more than the {total} bytes the manifest says")
        dst.write(chunk)
        report(have, total)
    dst.flush()


def _os_error(exc: OSError, where: str) -> DownloadError:
    if exc.errno == errno.ENOSPC:
        return DownloadError("disk full", f"no space left writing {where}")
    return DownloadError("download failed", f"{where}: {exc.strerror or exc}")


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if exc else "no answer"
