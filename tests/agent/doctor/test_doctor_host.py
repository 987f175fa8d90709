"""Doctor's host checks: the storage directory and its free space."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent import doctor
from agent.config import Config


def test_storage_reports_free_space_and_a_missing_directory(
    tmp_path: Path, config_file: Callable[[str], Config]
) -> None:
    config = config_file("")
    checks = {c.name: c for c in doctor.check_storage(config)}
    assert checks["storage dir"].status == "WARN"  # not created yet
    assert "MB free on" in checks["free space"].detail
    (tmp_path / "state").mkdir()
    checks = {c.name: c for c in doctor.check_storage(config)}
    assert checks["storage dir"].status == "PASS"
