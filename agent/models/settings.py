"""The model runtime's settings from the agent's configuration."""

from __future__ import annotations

from pathlib import Path

from agent.config import Config
from agent.models.install import InstallPolicy
from agent.models.runtime import ModelSettings
from agent.models.signing import TrustedKeys
from agent.models.store import DEFAULT_KEEP, ModelStore, store_root


def model_settings(config: Config) -> ModelSettings:
    return ModelSettings(
        store_dir=store_root(Path(config.storage.dir)),
        fallback_model=Path(config.vision.model),
        install=InstallPolicy(trusted=TrustedKeys({})),
        keep=DEFAULT_KEEP,
    )


def running_model_path(config: Config) -> Path:
    """The model the agent runs: the store's active one, else the configured one."""
    active = ModelStore(store_root(Path(config.storage.dir))).active()
    return active.model_path if active is not None else Path(config.vision.model)
