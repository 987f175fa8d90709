"""The model the agent runs: chosen from the store, verified, hot-swapped, watched, rolled back.

:class:`ModelRuntime` is the one object the daemon talks to about models. At start it picks the
store's active model (or the configured one while the store is empty), refuses it when trusted
keys are configured and its signature does not hold, and rolls back by itself when the last run
died with a model on probation. It runs installs (:mod:`agent.models.install`), rollbacks and
reloads, and swaps the classifier inside :class:`ActiveModel` so that the camera loops keep their
reference and simply classify with the new model from the next snapshot on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__ as AGENT_VERSION
from agent.models import ModelRolloutError, StoreError
from agent.models.config import DEFAULT_KEEP
from agent.models.install import (
    InstallPolicy,
    InstallReport,
    InstallRequest,
    InstallState,
    ModelInstaller,
)
from agent.models.probation import Decision, Probation, ProbationPolicy
from agent.models.release import Release
from agent.models.signing import read_manifest_json, verify_release
from agent.models.store import ModelStore, StoredModel, write_json_durably
from agent.vision import BgrImage, Classifier, CloudError, Verdict, VisionError
from agent.vision.manifest import manifest_path_for, sha256_file

log = logging.getLogger(__name__)

LAST_INSTALL = "last_install.json"
_UNFINISHED = {
    s.value for s in (InstallState.DOWNLOADING, InstallState.VERIFYING, InstallState.TESTING)
}


class ModelRefusedError(ModelRolloutError):
    """Trusted keys are configured and the model to run does not pass its signature checks."""

    check = "refused"


Build = Callable[[Path], Classifier | None]
"""Builds the configured classifier (onnx, cascade...) around a model file."""


class ActiveModel:
    """A :class:`~agent.vision.Classifier` whose model can be replaced while the agent runs.

    Every classification is counted for the probation of a newly switched model. Attributes it
    does not define (``cloud``, ``manifest``...) are those of the classifier inside, so code that
    looks for a cascade's cloud backend keeps working.
    """

    def __init__(self, inner: Classifier, on_outcome: Callable[[bool, str], None]) -> None:
        self._inner = inner
        self._on_outcome = on_outcome
        self._lock = threading.Lock()

    @property
    def inner(self) -> Classifier:
        with self._lock:
            return self._inner

    @property
    def name(self) -> str:
        return self.inner.name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    def swap(self, new: Classifier) -> None:
        """Classify with ``new`` from now on. The old classifier is not closed here: another
        camera's thread may be inside it; it is freed when the last reference goes."""
        with self._lock:
            self._inner = new

    def classify(self, image: BgrImage) -> Verdict:
        return self._counted(lambda c: c.classify(image))

    def classify_file(self, path: Path) -> Verdict:
        return self._counted(lambda c: c.classify_file(path))

    def _counted(self, run: Callable[[Classifier], Verdict]) -> Verdict:
        try:
            verdict = run(self.inner)
        except CloudError:
            raise  # the cloud being away says nothing about the local model
        except Exception as exc:
            self._on_outcome(False, f"{type(exc).__name__}: {exc}")
            raise
        self._on_outcome(True, "")
        return verdict

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Everything :class:`ModelRuntime` needs from the config, as plain values."""

    store_dir: Path
    fallback_model: Path
    """The configured model, run while the store has no active one."""
    install: InstallPolicy
    keep: int = DEFAULT_KEEP
    probation: ProbationPolicy = field(default_factory=ProbationPolicy)


class ModelRuntime:
    def __init__(
        self,
        settings: ModelSettings,
        build: Build,
        *,
        report: Callable[[dict[str, Any]], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        agent_version: str = AGENT_VERSION,
    ) -> None:
        self.settings = settings
        self.store = ModelStore(settings.store_dir, keep=settings.keep)
        self.probation = Probation(settings.store_dir, settings.probation)
        self.build = build
        self._publish = report
        self._unpublished: list[dict[str, Any]] = []
        """Reports made before :meth:`publish_to` (a rollback at start, before MQTT is up)."""
        self._now = now
        self._agent_version = agent_version
        self.refused: str | None = None
        """Why no model runs (signature refused, load failed); None when one runs."""
        self.classifier: ActiveModel | None = None
        self._switch_lock = threading.Lock()
        self.last_install: dict[str, Any] | None = self._read_last_install()
        self.installer = ModelInstaller(
            self.store,
            settings.install,
            load=self._load_for_test,
            switch=self._switch_to,
            active_version=self.active_version,
            report=self._on_install_report,
            now=now,
            agent_version=agent_version,
            baseline=settings.fallback_model,
        )

    # ---- start and reload ----------------------------------------------------------------------

    def start(self) -> ActiveModel | None:
        """The classifier to run; ``None`` (and :attr:`refused` says why) when there is none."""
        self._finish_interrupted_install()
        decision = self.probation.after_start(self.store.pointers().active)
        if decision is not None:
            self._roll_back(decision)
        return self.reload()

    def reload(self) -> ActiveModel | None:
        """Load the active model again (``cmd/reload``, SIGHUP, ``remotair model use``)."""
        with self._switch_lock:
            try:
                classifier = self._verified_build(self.model_path())
            except (ModelRolloutError, VisionError, OSError) as exc:
                self.refused = str(exc)
                log.error("model refused error=%s", exc)
                if self.classifier is not None:
                    return self.classifier  # keep what runs rather than nothing
                return None
            self.refused = None
            if classifier is None:
                return None
            if self.classifier is None:
                self.classifier = ActiveModel(classifier, self._on_outcome)
            else:
                self.classifier.swap(classifier)
            return self.classifier

    def model_path(self) -> Path:
        active = self.store.active()
        return active.model_path if active is not None else self.settings.fallback_model

    def _verified_build(self, model: Path) -> Classifier | None:
        if self.settings.install.trusted:
            try:
                verify_release(
                    read_manifest_json(manifest_path_for(model)),
                    self.settings.install.trusted,
                    now=None,
                    file_sha256=sha256_file(model),
                    agent_version=self._agent_version,
                )
            except ModelRolloutError as exc:
                raise ModelRefusedError(f"model {model} refused: {exc}") from exc
        return self.build(model)

    # ---- install, rollback -------------------------------------------------------------------

    def install(self, request: InstallRequest) -> InstallReport:
        return self.installer.install(request)

    def rollback(self, request_id: str) -> InstallReport:
        """``model_rollback`` without a manifest: back to the previous model now."""
        try:
            pointers = self.store.rollback()
        except StoreError as exc:
            report = InstallReport(request_id, InstallState.FAILED, check="store", reason=str(exc))
            self._on_install_report(report)
            return report
        self.probation.end()
        self.reload()
        return self._report_active(
            request_id, InstallState.ROLLED_BACK, "rollback requested", pointers.active
        )

    def _roll_back(self, decision: Decision) -> None:
        log.error("model rollback sha=%s reason=%s", decision.sha256[:12], decision.reason)
        try:
            pointers = self.store.rollback()
        except StoreError as exc:
            log.error("model rollback impossible error=%s", exc)
            return
        self._report_active(
            decision.request_id,
            InstallState.ROLLED_BACK,
            decision.reason,
            pointers.active,
            rolled_back=decision.sha256,
        )

    def _report_active(
        self, request_id: str, state: InstallState, reason: str, sha: str | None, **extra: Any
    ) -> InstallReport:
        release = self._release_of(sha)
        report = InstallReport(
            request_id,
            state,
            sha256=sha,
            model_version=release.model_version if release else None,
            signer=release.key_id if release else None,
            reason=reason,
            detail=extra,
        )
        self._on_install_report(report)
        return report

    def _on_outcome(self, ok: bool, error: str) -> None:
        decision = self.probation.record(ok, error)
        if decision is None:
            return
        if not decision.rollback:
            log.info("model committed sha=%s after=%s", decision.sha256[:12], decision.reason)
            return
        self._roll_back(decision)
        self.reload()

    def _load_for_test(self, stored: StoredModel) -> Classifier:
        from agent.vision.onnx_backend import OnnxClassifier

        return OnnxClassifier(stored.model_path, threads=1)

    def _switch_to(self, stored: StoredModel, request_id: str) -> None:
        self.probation.begin(stored.sha256, request_id)
        self.reload()
        if self.refused is not None:
            raise StoreError(f"the agent could not load the new model: {self.refused}")

    # ---- what status shows ---------------------------------------------------------------------

    def active_version(self) -> int | None:
        release = self._release_of(self.store.pointers().active)
        if release is None:
            try:
                release = Release.from_manifest(
                    read_manifest_json(manifest_path_for(self.settings.fallback_model))
                )
            except ModelRolloutError:
                return None
        return release.model_version

    def _release_of(self, sha: str | None) -> Release | None:
        if sha is None:
            return None
        try:
            return Release.from_manifest(self.store.get(sha).manifest())
        except ModelRolloutError:
            return None

    def status(self) -> dict[str, Any]:
        path = self.model_path()
        try:
            release: dict[str, Any] = Release.from_manifest(
                read_manifest_json(manifest_path_for(path))
            ).to_dict()
        except ModelRolloutError as exc:
            release = {"error": str(exc)}
        pointers = self.store.pointers()
        return {
            "file": str(path),
            "from_store": pointers.active is not None,
            **pointers.to_dict(),
            **release,
            "signature_required": bool(self.settings.install.trusted),
            "refused": self.refused,
            "probation": self.probation.active,
            "last_install": self.last_install,
        }

    def publish_to(self, publish: Callable[[dict[str, Any]], None]) -> None:
        """Where install states go from now on (the reports made until now go first)."""
        self._publish = publish
        pending, self._unpublished = self._unpublished, []
        for data in pending:
            publish(data)

    def configure(self, settings: ModelSettings, build: Build) -> None:
        """New settings and classifier builder (a reloaded config); :meth:`reload` applies them."""
        self.settings = settings
        self.build = build
        self.installer.policy = settings.install
        self.installer.baseline = settings.fallback_model
        self.store.keep = settings.keep
        self.probation.policy = settings.probation

    def note_clean_exit(self) -> None:
        self.probation.note_clean_exit()

    # ---- the last install, kept across restarts -----------------------------------------------

    def _on_install_report(self, report: InstallReport) -> None:
        data = report.to_dict() | {"at": self._now().isoformat(timespec="seconds")}
        if report.state is not InstallState.FAILED or report.check != "busy":
            self.last_install = data
            try:
                self.store.root.mkdir(parents=True, exist_ok=True)
                write_json_durably(self.store.root / LAST_INSTALL, data)
            except OSError as exc:
                log.warning("last install not saved error=%s", exc)
        if self._publish is None:
            self._unpublished.append(data)
        else:
            self._publish(data)

    def _read_last_install(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.store.root / LAST_INSTALL).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _finish_interrupted_install(self) -> None:
        last = self.last_install
        if last and last.get("state") in _UNFINISHED:
            self._on_install_report(
                InstallReport(
                    str(last.get("id", "")),
                    InstallState.FAILED,
                    sha256=last.get("sha256"),
                    check="interrupted",
                    reason=f"the agent restarted while the install was {last['state']}",
                )
            )


def stored_model_status(settings: ModelSettings) -> dict[str, Any]:
    """What :meth:`ModelRuntime.status` would say, read from the state directory alone (for
    ``remotair status`` while the agent is not running); loads no model."""
    return ModelRuntime(settings, lambda model: None).status()
