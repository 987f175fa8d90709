"""The [models] section: trusted keys by path or credential name, checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config
from agent.models.settings import model_settings
from agent.models.signing import dev_public_key_path, generate_keypair, key_id, load_public_key


def test_defaults_trust_no_key() -> None:
    config = parse_config("", env={})
    settings = model_settings(config)
    assert not settings.install.trusted
    assert (settings.keep, settings.probation.failures_to_rollback) == (3, 3)


def test_a_credential_name_reads_the_systemd_credentials_directory(tmp_path: Path) -> None:
    _, public = generate_keypair(tmp_path / "creds")
    public.rename(tmp_path / "creds" / "model-signing.pub")
    keys = f'["credential:model-signing.pub", "{dev_public_key_path()}"]'
    config = parse_config(
        f"[models]\ntrusted_keys = {keys}\nkeep = 5\n",
        env={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")},
    )
    settings = model_settings(config)
    expected = {
        key_id(load_public_key(tmp_path / "creds" / "model-signing.pub")),
        key_id(load_public_key(dev_public_key_path())),
    }
    assert set(settings.install.trusted.keys) == expected
    assert settings.keep == 5


def test_a_file_that_is_not_a_public_key_is_a_config_error(tmp_path: Path) -> None:
    private, _ = generate_keypair(tmp_path)
    with pytest.raises(ConfigError) as refused:
        parse_config(f'[models]\ntrusted_keys = ["{private}"]\n', source="agent.toml", env={})
    assert refused.value.errors == (
        f"agent.toml: models.trusted_keys[0]: {private} is not a PEM public key"
        " (the signing.pub of remotair model keygen)",
    )


def test_a_missing_credential_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"credential file .*model-signing\.pub does not exist"):
        parse_config(
            '[models]\ntrusted_keys = ["credential:model-signing.pub"]\n',
            env={"CREDENTIALS_DIRECTORY": str(tmp_path)},
        )
