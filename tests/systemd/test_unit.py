"""The systemd unit passes ``systemd-analyze verify`` (where that tool exists)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "systemd" / "remotair-agent.service"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # ExecStart must name an existing executable for verify; the install path does not exist here.
    unit = tmp_path / "remotair-agent.service"
    unit.write_text(text.replace("/opt/remotair/venv/bin/remotair", sys.executable))
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


@needs_systemd
def test_unit_verifies(tmp_path: Path) -> None:
    done = verify(UNIT.read_text(), tmp_path)
    assert done.returncode == 0, done.stderr


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    done = verify(UNIT.read_text().replace("Type=notify", "Type=notifyy"), tmp_path)
    assert "notifyy" in done.stderr


def test_unit_has_what_the_agent_relies_on() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "StateDirectory=remotair",
        "RuntimeDirectory=remotair",
        "LoadCredential=",
        "SupplementaryGroups=i2c video dialout",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ):
        assert line in text, line
