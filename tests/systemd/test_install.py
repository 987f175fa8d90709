"""``systemd/install.sh`` in a throwaway root, with the system's tools stubbed on the PATH.

``REMOTAIR_INSTALL_ROOT`` prefixes every path the installer writes or checks. ``apt-get``,
``systemctl``, the user tools and ``id`` are stubs that log their arguments; ``python3 -m venv``
makes a venv whose ``pip`` only logs and whose ``remotair`` runs this checkout, so the
configuration the installer writes and checks is the real one. The PATH holds the stubs and
the plain file tools only: a command the installer starts to use without a stub here fails the
test ("command not found") instead of changing the machine that runs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "systemd" / "install.sh"

_LOGGING_STUB = '#!/bin/sh\necho "$(basename "$0") $*" >> "$STUB_LOG"\n'
_STUBS = {
    "apt-get": _LOGGING_STUB,
    "systemctl": _LOGGING_STUB,
    "groupadd": _LOGGING_STUB,
    "useradd": _LOGGING_STUB,
    "usermod": _LOGGING_STUB,
    "getent": _LOGGING_STUB + "exit 2\n",  # no such group yet
    # `id -u`: root; `id remotair`: no such user yet.
    "id": _LOGGING_STUB + '[ "$1" = -u ] && { echo 0; exit 0; }\nexit 1\n',
    "python3": _LOGGING_STUB
    + """if [ "$1" = -m ] && [ "$2" = venv ]; then
  for venv; do :; done
  mkdir -p "$venv/bin"
  printf '#!/bin/sh\\necho "pip $*" >> "$STUB_LOG"\\n' > "$venv/bin/pip"
  printf '#!/bin/sh\\nPYTHONPATH="$REPO" exec "$REAL_PYTHON" -m agent "$@"\\n' \\
    > "$venv/bin/remotair"
  chmod +x "$venv/bin/pip" "$venv/bin/remotair"
  ln -sf "$REAL_PYTHON" "$venv/bin/python"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
""",
}

FILE_TOOLS = (
    "basename", "cat", "chmod", "cmp", "cp", "dirname", "env", "grep", "install", "ln", "mkdir",
    "printf", "sed", "sh",
)  # fmt: skip

REAL_BOARD = """
[device]
id = "duct-7"

[board]
kind = "pi"

[[board.sensors]]
name = "co2"
chip = "scd4x"

[mqtt]
host = "broker.example"
"""


@dataclass
class Installed:
    root: Path
    returncode: int
    output: str
    calls: list[str]

    @property
    def config(self) -> Path:
        return self.root / "etc" / "remotair" / "agent.toml"

    def called(self, prefix: str) -> list[str]:
        return [call for call in self.calls if call.startswith(prefix)]


@pytest.fixture
def install(tmp_path: Path) -> Callable[..., Installed]:
    """Run the installer into ``tmp_path/root``: ``install("--with-cloud")``."""
    root = tmp_path / "root"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in _STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    for tool in FILE_TOOLS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not installed"
        (stubs / tool).symlink_to(found)
    log = tmp_path / "calls.log"

    def run(*args: str) -> Installed:
        log.write_text("")
        env = {
            "PATH": str(stubs),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "REMOTAIR_INSTALL_ROOT": str(root),
            "STUB_LOG": str(log),
            "REPO": str(REPO),
            "REAL_PYTHON": sys.executable,
        }
        done = subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(INSTALL), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Installed(
            root, done.returncode, done.stdout + done.stderr, log.read_text().splitlines()
        )

    return run


def test_a_fresh_board_gets_a_real_board_config_and_no_running_service(
    install: Callable[..., Installed],
) -> None:
    done = install()
    assert done.returncode == 0, done.output
    text = done.config.read_text()
    assert 'kind = "pi"' in text
    assert 'kind = "sim"' not in text, "the installer never writes a simulated board"
    assert "not started: " in done.output and "unedited example" in done.output
    for edit in ("[device]", "[[board.sensors]]", "[mqtt]", "systemctl restart"):
        assert edit in done.output, edit
    assert "systemctl daemon-reload" in done.calls
    assert "systemctl enable remotair-agent.service" in done.calls
    assert not [
        c for c in done.calls if c.split()[:2] in (["systemctl", "start"], ["systemctl", "restart"])
    ]
    unit = done.root / "etc" / "systemd" / "system" / "remotair-agent.service"
    assert unit.read_text() == (REPO / "systemd" / "remotair-agent.service").read_text()
    assert done.called("apt-get install")


def test_remotair_lands_on_the_path_and_cloud_is_opt_in(
    install: Callable[..., Installed],
) -> None:
    plain = install()
    link = plain.root / "usr" / "local" / "bin" / "remotair"
    assert link.is_symlink()
    assert link.resolve() == (plain.root / "opt" / "remotair" / "venv" / "bin" / "remotair")
    assert f"pip install --quiet {REPO}" in plain.calls
    assert not [c for c in plain.calls if "[cloud]" in c]
    cloud = install("--with-cloud")
    assert cloud.returncode == 0, cloud.output
    assert f"pip install --quiet {REPO}[cloud]" in cloud.calls


def test_an_edited_real_board_config_is_started(install: Callable[..., Installed]) -> None:
    install().config.write_text(REAL_BOARD)
    done = install()
    assert done.returncode == 0, done.output
    assert "systemctl restart remotair-agent.service" in done.calls
    assert "started: " in done.output
    assert done.config.read_text() == REAL_BOARD, "an edited config is never overwritten"


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ('[board]\nkind = "sim"\n', "does not describe a real board"),
        ('[board]\nkind = "pi"\n', "does not pass 'remotair config check'"),
    ],
)
def test_a_simulated_or_broken_config_is_not_started(
    install: Callable[..., Installed], config: str, said: str
) -> None:
    first = install()
    first.config.write_text(config)
    done = install()
    assert done.returncode == 0, done.output
    assert said in done.output
    assert not done.called("systemctl restart")


@pytest.mark.parametrize(
    ("boot_config", "nodes", "i2c", "serial"),
    [
        ("", [], False, False),
        ("dtparam=i2c_arm=on\nenable_uart=1\n", [], True, True),
        ("# dtparam=i2c_arm=on\n", ["dev/i2c-1"], True, False),
        (None, ["dev/serial0"], False, True),
    ],
)
def test_i2c_and_serial_are_checked(
    install: Callable[..., Installed],
    tmp_path: Path,
    boot_config: str | None,
    nodes: list[str],
    i2c: bool,
    serial: bool,
) -> None:
    root = tmp_path / "root"
    if boot_config is not None:
        (root / "boot" / "firmware").mkdir(parents=True)
        (root / "boot" / "firmware" / "config.txt").write_text(boot_config)
    for node in nodes:
        (root / node).parent.mkdir(parents=True, exist_ok=True)
        (root / node).touch()
    done = install()
    assert done.returncode == 0, done.output
    assert ("I2C is enabled" in done.output) is i2c
    assert ("do_i2c 0" in done.output) is not i2c
    assert ("serial port is enabled" in done.output) is serial
    assert ("do_serial_hw 0" in done.output) is not serial


def test_an_unknown_option_is_a_usage_error(install: Callable[..., Installed]) -> None:
    done = install("--with-clowd")
    assert done.returncode == 2
    assert "unknown option '--with-clowd'" in done.output and "--with-cloud" in done.output
    assert done.calls == [], "nothing was done"
