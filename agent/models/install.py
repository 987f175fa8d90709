"""Installing a signed model on a running board: verify, download, test, switch, report.

The steps follow what firmware updaters learned to do (AWS IoT Jobs, Mender, The Update Framework):
check the signed manifest before fetching anything (signature, expiry, version only going up,
agent new enough), download within the manifest's size, verify the file, load it and run its
reference images *while the old model still runs*, and only then swap the active pointer. Each
step is reported (``downloading`` with a percentage, ``verifying``, ``testing``, then ``active``
or ``failed`` with the check that failed), so an operator watching MQTT sees where a rollout is.
One install runs at a time; a second one is refused at once rather than queued behind a download.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import __version__ as AGENT_VERSION
from agent.models import ModelRolloutError, StoreError, VerificationError
from agent.models.config import (
    DEFAULT_DOWNLOAD_DEADLINE_S,
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    DEFAULT_LATENCY_BUDGET_MS,
    DEFAULT_MAX_MODEL_MB,
)
from agent.models.download import DownloadLimits, check_free_space, download
from agent.models.reference import ReferenceCheckError, ReferenceReport, check_reference
from agent.models.release import Release
from agent.models.signing import TrustedKeys, verify_release
from agent.models.store import ModelStore, StoredModel
from agent.vision import Classifier, VisionError
from agent.vision.manifest import sha256_file

log = logging.getLogger(__name__)

DOWNLOADS = ".downloads"


class InstallState(enum.StrEnum):
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    TESTING = "testing"
    ACTIVE = "active"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class InstallPolicy:
    """What a board accepts, from the ``[models]`` config section."""

    trusted: TrustedKeys
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    download_timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S
    download_deadline_s: float = DEFAULT_DOWNLOAD_DEADLINE_S
    max_model_bytes: int = int(DEFAULT_MAX_MODEL_MB * 1024 * 1024)
    """The cap for a manifest that does not state its file's size."""


@dataclass(frozen=True, slots=True)
class InstallRequest:
    id: str
    manifest: Mapping[str, Any]
    url: str
    allow_downgrade: bool = False
    """True for ``model_rollback`` with a manifest: an older release, deliberately."""


@dataclass(frozen=True, slots=True)
class InstallReport:
    """One step of one install, as published on ``model`` and returned as the command's result."""

    id: str
    state: InstallState
    sha256: str | None = None
    model_version: int | None = None
    signer: str | None = None
    percent: int | None = None
    reason: str | None = None
    check: str | None = None
    """The failed check's short name (``wrong key``, ``downgrade``, ``disk full``...)."""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state is not InstallState.FAILED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "state": self.state.value}
        for key in ("sha256", "model_version", "signer", "percent", "check", "reason"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data | self.detail


Reporter = Callable[[InstallReport], None]
Loader = Callable[[StoredModel], Classifier]
"""Builds a classifier from a stored model, as the agent would run it."""


class InstallBusyError(ModelRolloutError):
    """Another install is running."""


class ModelInstaller:
    """Runs installs against ``store``; ``switch`` makes the agent use a newly active model."""

    def __init__(
        self,
        store: ModelStore,
        policy: InstallPolicy,
        *,
        load: Loader,
        switch: Callable[[StoredModel, str], None],
        active_version: Callable[[], int | None],
        report: Reporter,
        now: Callable[[], datetime],
        agent_version: str = AGENT_VERSION,
        baseline: Path | None = None,
    ) -> None:
        self.store = store
        self.baseline = baseline
        """The configured model: adopted into the store before the first switch (the target of
        the first rollback)."""
        self.policy = policy
        self._load = load
        self._switch = switch
        self._active_version = active_version
        self._report = report
        self._now = now
        self._agent_version = agent_version
        self._busy = threading.Lock()
        self._current: str | None = None

    def install(self, request: InstallRequest) -> InstallReport:
        """Run one install to its end; the final report says how it ended (never raises)."""
        with self._exclusive(request.id) as busy_with:
            if busy_with is not None:
                return InstallReport(
                    request.id,
                    InstallState.FAILED,
                    check="busy",
                    reason=f"install {busy_with} is still running; try again when it ends",
                )
            try:
                return self._install(request)
            except (ModelRolloutError, OSError) as exc:
                check = exc.check if isinstance(exc, ModelRolloutError) else "failed"
                return self._emit(
                    request,
                    InstallState.FAILED,
                    check=check,
                    reason=str(getattr(exc, "reason", None) or exc),
                    sha256=str(request.manifest.get("sha256", "")) or None,
                )

    @contextlib.contextmanager
    def _exclusive(self, request_id: str) -> Iterator[str | None]:
        if not self._busy.acquire(blocking=False):
            yield self._current or "?"
            return
        self._current = request_id
        try:
            yield None
        finally:
            self._current = None
            self._busy.release()

    def _install(self, request: InstallRequest) -> InstallReport:
        manifest = dict(request.manifest)
        sha = str(manifest.get("sha256", "")).lower()
        self._emit(request, InstallState.VERIFYING, sha256=sha)
        release = self._check_release(request, manifest)
        facts: dict[str, Any] = {
            "sha256": sha,
            "model_version": release.model_version,
            "signer": release.key_id,
        }
        size = release.size_bytes or self.policy.max_model_bytes
        downloads = self.store.root / DOWNLOADS
        downloads.mkdir(parents=True, exist_ok=True)
        check_free_space(downloads, 2 * size)  # the download, then its copy in the store
        target = downloads / f"{sha}.onnx"
        last_percent = [-1]

        def progress(done: int, total: int) -> None:
            percent = done * 100 // max(total, 1)
            if percent >= last_percent[0] + 5 or done == total:
                last_percent[0] = percent
                self._emit(request, InstallState.DOWNLOADING, percent=percent, **facts)

        self._emit(request, InstallState.DOWNLOADING, percent=0, **facts)
        download(
            request.url,
            target,
            DownloadLimits(
                size_bytes=size,
                timeout_s=self.policy.download_timeout_s,
                deadline_s=self.policy.download_deadline_s,
            ),
            on_progress=progress,
        )
        self._emit(request, InstallState.VERIFYING, **facts)
        try:
            actual = sha256_file(target)
            if actual != sha:
                raise VerificationError(
                    "file changed",
                    f"the downloaded file's sha256 is {actual[:16]}..., the manifest says"
                    f" {sha[:16]}...",
                )
            stored = self.store.add(target, manifest)
        finally:
            target.unlink(missing_ok=True)
        self._emit(request, InstallState.TESTING, **facts)
        tested = self._test(stored)
        if self.baseline is not None:
            with contextlib.suppress(ModelRolloutError, OSError):
                self.store.adopt(self.baseline)
        previous = self.store.pointers().active
        self.store.activate(stored.sha256)
        try:
            self._switch(stored, request.id)
        except Exception:
            self._restore(previous)
            raise
        return self._emit(
            request,
            InstallState.ACTIVE,
            **facts,
            detail={"previous": previous, "reference": tested.to_dict()},
        )

    def _check_release(self, request: InstallRequest, manifest: dict[str, Any]) -> Release:
        if not self.policy.trusted:
            raise VerificationError(
                "no trusted keys",
                "a remote install needs signed models: set [models] trusted_keys on the board",
            )
        release = verify_release(
            manifest, self.policy.trusted, now=self._now(), agent_version=self._agent_version
        )
        if release.model_version is None:
            raise VerificationError("invalid manifest", "the release has no model_version")
        active = self._active_version()
        if not request.allow_downgrade and active is not None and release.model_version <= active:
            raise VerificationError(
                "downgrade",
                f"version {release.model_version} is not newer than the active version {active}"
                " (use model_rollback to go back on purpose)",
            )
        return release

    def _test(self, stored: StoredModel) -> ReferenceReport:
        try:
            classifier = self._load(stored)
        except (VisionError, OSError) as exc:
            raise ReferenceCheckError("does not load", str(exc)) from exc
        try:
            return check_reference(
                classifier, stored.manifest(), latency_budget_ms=self.policy.latency_budget_ms
            )
        finally:
            classifier.close()

    def _restore(self, previous: str | None) -> None:
        if previous is not None:
            with contextlib.suppress(StoreError):
                self.store.activate(previous)

    def _emit(
        self,
        request: InstallRequest,
        state: InstallState,
        *,
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> InstallReport:
        report = InstallReport(request.id, state, detail=detail or {}, **fields)
        log.info(
            "model install id=%s %s",
            request.id,
            " ".join(
                f"{k}={v}" for k, v in report.to_dict().items() if k not in ("id", "reference")
            ),
        )
        self._report(report)
        return report
