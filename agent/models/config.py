"""The ``[models]`` section: which keys a board trusts, what its store keeps, how a new model is
tested and watched. :mod:`agent.models.settings` turns it into the runtime's settings; the
defaults live here so that the store, the installer and the probation share them."""

from __future__ import annotations

from collections.abc import Iterator

from agent.config_base import Problem, SecretPath, Section, setting

DEFAULT_KEEP = 3
DEFAULT_LATENCY_BUDGET_MS = 2000.0
DEFAULT_DOWNLOAD_TIMEOUT_S = 30.0
DEFAULT_DOWNLOAD_DEADLINE_S = 900.0
DEFAULT_MAX_MODEL_MB = 256.0
DEFAULT_PROBATION_VERDICTS = 5
DEFAULT_PROBATION_FAILURES = 3


class ModelsConfig(Section):
    """Signed models: the keys this board trusts, its model store, install and rollback limits."""

    trusted_keys: list[SecretPath] = setting(
        default_factory=list,
        description="Ed25519 public keys (signing.pub of remotair model keygen) whose model"
        " signatures this board accepts. Set: an unsigned or badly signed model is refused at"
        " start and on install. Empty: models run unverified and cmd/model_install is refused",
        example=["credential:model-signing.pub"],
        secret=True,
    )
    keep: int = setting(
        DEFAULT_KEEP, "models kept in the store (the active and previous one always)", ge=1
    )
    latency_budget_ms: float = setting(
        DEFAULT_LATENCY_BUDGET_MS,
        "a new model's median time on its reference images must stay under this",
        gt=0,
    )
    download_timeout_s: float = setting(
        DEFAULT_DOWNLOAD_TIMEOUT_S,
        "longest wait for a connection or for the next bytes of a model download",
        gt=0,
    )
    download_deadline_s: float = setting(
        DEFAULT_DOWNLOAD_DEADLINE_S,
        "longest time for a whole model download, retries included",
        gt=0,
    )
    max_model_mb: float = setting(
        DEFAULT_MAX_MODEL_MB,
        "download cap for a manifest that does not state its file's size",
        gt=0,
    )
    probation_verdicts: int = setting(
        DEFAULT_PROBATION_VERDICTS,
        "good classifications after which a switch to a new model is final",
        ge=1,
    )
    probation_failures: int = setting(
        DEFAULT_PROBATION_FAILURES,
        "classifications failing in a row after a switch that roll back to the previous model",
        ge=1,
    )

    def problems(self) -> Iterator[Problem]:
        """Each trusted key is an Ed25519 public key (found at ``config check``, not at the first
        install)."""
        from agent.models import KeyFileError
        from agent.models.signing import load_public_key

        for index, path in enumerate(self.trusted_keys):
            if path.is_file():
                try:
                    load_public_key(path)
                except KeyFileError as exc:
                    yield ("trusted_keys", index), str(exc)
