"""The ``remotair config check`` example of docs/configuration.md is what the command prints.

The page shows a file, the command and its output; this test writes the file, runs the command
(in process, through the real CLI entry point) and compares every line and the exit code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.cli import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def console_example() -> tuple[str, list[str], int]:
    """(the file, the lines ``config check`` prints, the exit code) from the page."""
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(
        r"```console\n\$ cat agent\.toml\n(.*?)\$ remotair config check agent\.toml\n(.*?)"
        r"\$ echo \$\?\n(\d+)\n```",
        text,
        re.DOTALL,
    )
    assert match, "docs/configuration.md: no 'cat agent.toml / config check / echo $?' example"
    return match[1], match[2].splitlines(), int(match[3])


def test_the_config_check_example_is_what_the_command_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    document, printed, code = console_example()
    (tmp_path / "agent.toml").write_text(document, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for variable in ("REMOTAIR_DEVICE_ID", "REMOTAIR_MQTT_HOST", "REMOTAIR_MQTT_PORT"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["config", "check", "agent.toml"]) == code
    captured = capsys.readouterr()
    assert (captured.out + captured.err).splitlines() == printed
