"""The control socket: one JSON line in, one out; stale sockets replaced; typed client errors."""

from __future__ import annotations

import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.command_table import Command, CommandArgs, CommandError, CommandTable, NoArgs
from agent.control import AgentNotRunning, ControlError, ControlServer, request
from agent.errors import ExitCode


class EchoArgs(CommandArgs):
    peek: int = 0


def echo(args: EchoArgs) -> dict[str, Any]:
    return {"echo": args.model_dump()}


def picky(args: NoArgs) -> dict[str, Any]:
    raise CommandError("limit must be an integer")


def broken(args: NoArgs) -> dict[str, Any]:
    raise ZeroDivisionError("division by zero")


def table(*, with_echo_only: bool = False) -> CommandTable:
    rows: list[Command[Any]] = [Command("echo", EchoArgs, echo, "says back its arguments")]
    if not with_echo_only:
        rows += [
            Command("picky", NoArgs, picky, "always refuses"),
            Command("broken", NoArgs, broken, "has a bug"),
        ]
    return CommandTable(rows)


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    short = Path(tempfile.mkdtemp(prefix="rt-ctl-", dir="/tmp"))
    yield short / "control.sock"
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def server(sock_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(sock_path, table(), timeout_s=0.5)
    srv.start()
    yield srv
    srv.stop()


def test_round_trip_and_permissions(server: ControlServer, sock_path: Path) -> None:
    result = request(sock_path, "echo", 2.0, args={"peek": 3})
    assert result == {"echo": {"peek": 3}}
    mode = sock_path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_errors_come_back_as_control_errors(server: ControlServer, sock_path: Path) -> None:
    with pytest.raises(ControlError, match="unknown command 'nope'; known: broken, echo, picky"):
        request(sock_path, "nope")
    with pytest.raises(ControlError, match="limit must be an integer"):
        request(sock_path, "picky")
    with pytest.raises(ControlError, match="ZeroDivisionError: division by zero"):
        request(sock_path, "broken")
    # The server survived its handler's exception.
    assert request(sock_path, "echo")["echo"] == {"peek": 0}


def test_malformed_lines_get_an_error_answer(server: ControlServer) -> None:
    assert server.dispatch(b"not json")["ok"] is False
    assert "must be an object" in server.dispatch(b"[1, 2]")["error"]
    assert server.dispatch(b'{"request": "echo"}') == {"ok": True, "result": {"echo": {"peek": 0}}}
    refused = server.dispatch(b'{"request": "echo", "peek": "3", "limit": 1}')
    assert refused["ok"] is False and refused["code"] == "bad_arguments"
    assert "peek:" in refused["error"] and "limit: not an argument of echo" in refused["error"]


def test_nobody_listening_is_agent_not_running(sock_path: Path) -> None:
    with pytest.raises(AgentNotRunning) as caught:
        request(sock_path, "status", 1.0)
    assert caught.value.exit_code == ExitCode.UNAVAILABLE
    assert str(sock_path) in str(caught.value)


def test_a_stale_socket_from_a_crashed_agent_is_replaced(sock_path: Path) -> None:
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(sock_path))
    crashed.close()  # the file stays behind, nobody listens
    with pytest.raises(AgentNotRunning):
        request(sock_path, "echo", 1.0)
    srv = ControlServer(sock_path, table(with_echo_only=True))
    srv.start()
    try:
        assert request(sock_path, "echo", 2.0)["echo"] == {"peek": 0}
    finally:
        srv.stop()
    assert not sock_path.exists()


def test_a_live_agent_is_not_replaced(server: ControlServer, sock_path: Path) -> None:
    second = ControlServer(sock_path, table(with_echo_only=True))
    with pytest.raises(ControlError, match="already listening"):
        second.start()
    assert request(sock_path, "echo", 2.0)["echo"] == {"peek": 0}


def test_a_regular_file_at_the_path_is_left_alone(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(sock_path, table(with_echo_only=True)).start()
    assert sock_path.read_text() == "precious"


def test_a_silent_client_does_not_block_others(server: ControlServer, sock_path: Path) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(sock_path))
    try:
        assert request(sock_path, "echo", 2.0)["echo"] == {"peek": 0}
        # The server gives up on the silent one after its timeout and says why.
        silent.settimeout(3.0)
        answer = silent.recv(4096)
        assert b'"ok": false' in answer and b"bad request" in answer
    finally:
        silent.close()


def test_an_unanswered_request_times_out(sock_path: Path) -> None:
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(sock_path))
    mute.listen(1)  # accepts at the kernel level, never answers
    try:
        started = time.monotonic()
        with pytest.raises(ControlError, match="did not answer"):
            request(sock_path, "status", 0.3)
        assert time.monotonic() - started < 2.0
    finally:
        mute.close()
