"""A config file in the test's directory, for doctor's in-process checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import Config, load_config


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Config]:
    """``config_file(body)``: the config with ``body`` and storage under ``tmp_path/state``."""

    def write(body: str) -> Config:
        path = tmp_path / "agent.toml"
        path.write_text(f'[storage]\ndir = "{tmp_path / "state"}"\n{body}')
        return load_config(path)

    return write
