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

from agent.control import (
    AgentNotRunning,
    ControlError,
    ControlServer,
    RequestError,
    request,
)
from agent.errors import ExitCode


def echo(req: dict[str, Any]) -> dict[str, Any]:
    return {"echo": req}


def picky(req: dict[str, Any]) -> dict[str, Any]:
    raise RequestError("limit must be an integer")


def broken(req: dict[str, Any]) -> dict[str, Any]:
    raise ZeroDivisionError("division by zero")


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    short = Path(tempfile.mkdtemp(prefix="rt-ctl-", dir="/tmp"))
    yield short / "control.sock"
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def server(sock_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(sock_path, {"echo": echo, "picky": picky, "broken": broken}, timeout_s=0.5)
    srv.start()
    yield srv
    srv.stop()


def test_round_trip_and_permissions(server: ControlServer, sock_path: Path) -> None:
    result = request(sock_path, "echo", 2.0, args={"peek": 3})
    assert result == {"echo": {"peek": 3, "request": "echo"}}
    mode = sock_path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_errors_come_back_as_control_errors(server: ControlServer, sock_path: Path) -> None:
    with pytest.raises(ControlError, match="unknown request 'nope'; known: broken, echo, picky"):
        request(sock_path, "nope")
    with pytest.raises(ControlError, match="limit must be an integer"):
        request(sock_path, "picky")
    with pytest.raises(ControlError, match="ZeroDivisionError: division by zero"):
        request(sock_path, "broken")
    # The server survived its handler's exception.
    assert request(sock_path, "echo")["echo"]["request"] == "echo"


def test_malformed_lines_get_an_error_answer(server: ControlServer) -> None:
    assert server.dispatch(b"not json")["ok"] is False
    assert "must be an object" in server.dispatch(b"[1, 2]")["error"]
    assert server.dispatch(b'{"request": "echo"}') == {
        "ok": True,
        "result": {"echo": {"request": "echo"}},
    }


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
    srv = ControlServer(sock_path, {"echo": echo})
    srv.start()
    try:
        assert request(sock_path, "echo", 2.0)["echo"]["request"] == "echo"
    finally:
        srv.stop()
    assert not sock_path.exists()


def test_a_live_agent_is_not_replaced(server: ControlServer, sock_path: Path) -> None:
    second = ControlServer(sock_path, {"echo": echo})
    with pytest.raises(ControlError, match="already listening"):
        second.start()
    assert request(sock_path, "echo", 2.0)["echo"]["request"] == "echo"


def test_a_regular_file_at_the_path_is_left_alone(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(sock_path, {"echo": echo}).start()
    assert sock_path.read_text() == "precious"


def test_a_silent_client_does_not_block_others(server: ControlServer, sock_path: Path) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(sock_path))
    try:
        assert request(sock_path, "echo", 2.0)["echo"]["request"] == "echo"
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
