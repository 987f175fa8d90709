"""The model store on the board: one folder per model, an atomically swapped active pointer.

Layout under ``<state dir>/models``::

    <sha256>/<model>.onnx     the model file, folder named by the file's sha256
    <sha256>/<model>.json     its (signed) manifest
    pointers.json             {"active": "<sha256>", "previous": "<sha256>"}

Why one pointer file and not two symlinks: the active and previous pointers must change together,
and one ``rename`` is the only step a POSIX file system makes atomically. Every change follows the
same order (write a temporary file, fsync it, rename it over the old one, fsync the directory), and
a model folder is complete and fsynced *before* its name appears, so after a power cut at any
instant the pointer file is either the old one or the new one and names complete folders only.
Leftovers of an interrupted change (``.incoming-*``, ``.trash-*``, ``pointers.json.tmp``) are
removed by the next writer, under the store's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.models import StoreError, VerificationError
from agent.models.config import DEFAULT_KEEP
from agent.models.signing import read_manifest_json

logger = logging.getLogger(__name__)

POINTERS = "pointers.json"
LOCK = ".lock"
INCOMING = ".incoming-"
TRASH = ".trash-"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20

CrashPoint = Callable[[str], None]
"""Called with the name of each durable step as it completes; tests make it crash there."""


def _no_crash(step: str) -> None:
    del step


@dataclass(frozen=True, slots=True)
class Pointers:
    active: str | None = None
    previous: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"active": self.active, "previous": self.previous}


@dataclass(frozen=True, slots=True)
class StoredModel:
    """One model folder of the store."""

    sha256: str
    model_path: Path
    manifest_path: Path
    installed_ns: int
    """When the folder was completed (its mtime), the order in which models are pruned."""

    @property
    def directory(self) -> Path:
        return self.model_path.parent

    def manifest(self) -> dict[str, Any]:
        return read_manifest_json(self.manifest_path)


class ModelStore:
    """Models by sha256 under ``root``; keeps the newest ``keep`` plus the active and previous."""

    def __init__(
        self, root: Path, *, keep: int = DEFAULT_KEEP, crash_point: CrashPoint = _no_crash
    ):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.root = root
        self.keep = keep
        self._step = crash_point

    # ---- reading -----------------------------------------------------------------------------

    def pointers(self) -> Pointers:
        path = self.root / POINTERS
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Pointers()
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"{path} is unreadable ({exc}); remove it and run remotair model use"
            ) from exc
        return Pointers(active=data.get("active"), previous=data.get("previous"))

    def models(self) -> list[StoredModel]:
        """Every complete model folder, newest first."""
        if not self.root.is_dir():
            return []
        found = [m for d in self.root.iterdir() if (m := self._read_folder(d)) is not None]
        return sorted(found, key=lambda m: (m.installed_ns, m.sha256), reverse=True)

    def get(self, sha256: str) -> StoredModel:
        model = self._read_folder(self.root / sha256)
        if model is None:
            raise StoreError(f"model {sha256[:12]} is not in the store {self.root}")
        return model

    def find(self, prefix: str) -> StoredModel:
        """The model whose sha256 starts with ``prefix`` (as ``git`` resolves short hashes)."""
        prefix = prefix.lower()
        matches = [m for m in self.models() if m.sha256.startswith(prefix)]
        if len(matches) != 1:
            what = "no model" if not matches else f"{len(matches)} models"
            raise StoreError(f"{what} in {self.root} match {prefix!r}; see remotair model list")
        return matches[0]

    def active(self) -> StoredModel | None:
        """The active model; ``None`` when nothing was ever activated (the shipped model runs)."""
        pointers = self.pointers()
        for sha in (pointers.active, pointers.previous):
            if sha and (model := self._read_folder(self.root / sha)) is not None:
                if sha != pointers.active:
                    logger.warning(
                        "active model %s is missing; using previous %s", pointers.active, sha
                    )
                return model
        return None

    def _read_folder(self, directory: Path) -> StoredModel | None:
        if not _SHA256.fullmatch(directory.name) or not directory.is_dir():
            return None
        manifests = sorted(directory.glob("*.json"))
        if len(manifests) != 1:
            return None
        try:
            model_file = str(read_manifest_json(manifests[0]).get("model_file", ""))
            model_path = directory / model_file
            if not model_file or "/" in model_file or not model_path.is_file():
                return None
            return StoredModel(
                directory.name, model_path, manifests[0], directory.stat().st_mtime_ns
            )
        except (VerificationError, OSError):
            return None

    # ---- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock for a change; the holder first clears a crashed writer's leftovers."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._clear_leftovers()
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def add(self, model_path: Path, manifest: dict[str, Any]) -> StoredModel:
        """Copy a model and its manifest into the store (hash checked while copying).

        A model already stored keeps its file; only its manifest is replaced (atomically), so a
        re-signed release of the same bytes does not copy megabytes again.
        """
        with self.locked():
            return self._add(model_path, manifest)

    def _add(self, model_path: Path, manifest: dict[str, Any]) -> StoredModel:
        model_file = str(manifest.get("model_file", ""))
        expected = str(manifest.get("sha256", "")).lower()
        if not model_file or "/" in model_file or not _SHA256.fullmatch(expected):
            raise VerificationError(
                "invalid manifest", "model_file and a 64-digit sha256 are required"
            )
        manifest_name = Path(model_file).with_suffix(".json").name
        target = self.root / expected
        if target.is_dir():
            existing = self._read_folder(target)
            if existing is not None and existing.model_path.name == model_file:
                _write_durably(existing.manifest_path, _manifest_bytes(manifest), self._step)
                return existing
            raise StoreError(f"{target} holds a different or damaged model; remove that folder")
        incoming = self.root / f"{INCOMING}{uuid.uuid4().hex[:8]}"
        incoming.mkdir()
        try:
            actual = _copy_hashing(model_path, incoming / model_file)
            self._step("model-copied")
            if actual != expected:
                raise VerificationError(
                    "file changed",
                    f"the model's sha256 is {actual[:16]}..., the manifest says {expected[:16]}...",
                )
            _write_synced(incoming / manifest_name, _manifest_bytes(manifest))
            self._step("manifest-written")
            _fsync_dir(incoming)
            incoming.rename(target)
            self._step("folder-renamed")
            _fsync_dir(self.root)
            self._step("folder-committed")
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        return self.get(expected)

    def adopt(self, model_path: Path) -> StoredModel | None:
        """While nothing is active, store ``model_path`` (the configured model) and make it
        active, so that the first switch has a previous model to roll back to."""
        if self.pointers().active is not None:
            return None
        manifest = read_manifest_json(model_path.with_suffix(".json"))
        with self.locked():
            if self.pointers().active is not None:
                return None
            adopted = self._add(model_path, manifest)
            self._write_pointers(Pointers(active=adopted.sha256))
        logger.info("configured model adopted into the store sha=%s", adopted.sha256[:12])
        return adopted

    def activate(self, sha256: str) -> Pointers:
        """Make ``sha256`` active; the model active until now becomes ``previous``."""
        with self.locked():
            self.get(sha256)
            current = self.pointers()
            if current.active == sha256:
                return current
            new = Pointers(active=sha256, previous=current.active or current.previous)
            self._write_pointers(new)
            self._prune(new)
            return new

    def rollback(self) -> Pointers:
        """Swap active and previous (the one-step undo of the last switch)."""
        with self.locked():
            current = self.pointers()
            if not current.previous:
                raise StoreError("no previous model to roll back to")
            self.get(current.previous)
            new = Pointers(active=current.previous, previous=current.active)
            self._write_pointers(new)
            return new

    def _write_pointers(self, pointers: Pointers) -> None:
        data = (json.dumps(pointers.to_dict()) + "\n").encode("utf-8")
        _write_durably(self.root / POINTERS, data, self._step, prefix="pointers")
        logger.info("model pointers active=%s previous=%s", pointers.active, pointers.previous)

    def prune(self) -> list[str]:
        """Delete all but the newest ``keep`` models, never the active or the previous one."""
        with self.locked():
            return self._prune(self.pointers())

    def _prune(self, pointers: Pointers) -> list[str]:
        protected = {pointers.active, pointers.previous}
        removed: list[str] = []
        for model in self.models()[self.keep :]:
            if model.sha256 in protected:
                continue
            trash = self.root / f"{TRASH}{model.sha256}"
            model.directory.rename(trash)
            self._step("prune-renamed")
            shutil.rmtree(trash)
            removed.append(model.sha256)
        if removed:
            _fsync_dir(self.root)
            logger.info("models pruned %s", ",".join(s[:12] for s in removed))
        return removed

    def _clear_leftovers(self) -> None:
        for path in self.root.iterdir():
            if path.name.startswith((INCOMING, TRASH)):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_json_durably(path: Path, data: object) -> None:
    """Replace a small JSON state file so that a crash leaves the old or the new one."""
    _write_durably(path, (json.dumps(data) + "\n").encode("utf-8"), _no_crash, prefix="state")


def _write_durably(path: Path, data: bytes, step: CrashPoint, *, prefix: str = "manifest") -> None:
    """Replace ``path`` atomically: temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    _write_synced(tmp, data)
    step(f"{prefix}-tmp-synced")
    tmp.replace(path)
    step(f"{prefix}-renamed")
    _fsync_dir(path.parent)
    step(f"{prefix}-committed")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_root(state_dir: Path) -> Path:
    """Where the store lives inside the agent's state directory."""
    return state_dir / "models"
