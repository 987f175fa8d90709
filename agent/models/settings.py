"""The model runtime's settings from the agent's configuration."""

from __future__ import annotations

from pathlib import Path

from agent.config import Config
from agent.models.install import InstallPolicy
from agent.models.probation import ProbationPolicy
from agent.models.runtime import ModelSettings
from agent.models.signing import TrustedKeys
from agent.models.store import ModelStore, store_root


def model_settings(config: Config) -> ModelSettings:
    """The runtime's settings; :class:`~agent.models.KeyFileError` for an unusable key file."""
    models = config.models
    return ModelSettings(
        store_dir=store_root(Path(config.storage.dir)),
        fallback_model=Path(config.vision.model),
        install=InstallPolicy(
            trusted=TrustedKeys.load(models.trusted_keys),
            latency_budget_ms=models.latency_budget_ms,
            download_timeout_s=models.download_timeout_s,
            download_deadline_s=models.download_deadline_s,
            max_model_bytes=int(models.max_model_mb * 1024 * 1024),
        ),
        keep=models.keep,
        probation=ProbationPolicy(
            verdicts_to_commit=models.probation_verdicts,
            failures_to_rollback=models.probation_failures,
        ),
    )


def running_model_path(config: Config) -> Path:
    """The model the agent runs: the store's active one, else the configured one."""
    active = ModelStore(store_root(Path(config.storage.dir))).active()
    return active.model_path if active is not None else Path(config.vision.model)
