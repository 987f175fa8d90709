"""The local control socket: how ``remotair status`` and friends ask the running agent.

A Unix stream socket (default ``/run/remotair/control.sock``, systemd's ``RuntimeDirectory``),
mode 0660 so that only the service user and its group may connect. The protocol is one JSON
request line answered by one JSON response line, then the connection closes::

    -> {"request": "outbox", "peek": 5}
    <- {"ok": true, "result": {...}}
    <- {"ok": false, "code": "unknown_command", "error": "unknown command 'x'; known: ..."}

What the request names is looked up in the agent's :class:`~agent.command_table.CommandTable`,
the same table MQTT's ``cmd/<name>`` goes through.

The server runs in a background thread; every connection gets its own short-lived thread and a
bounded read/write timeout, so a client that connects and says nothing cannot hold anything up.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.command_table import CommandReply, CommandTable, Transport
from agent.config_base import ConfigPath, Section, setting
from agent.errors import ExitCode, RemotairError

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
DEFAULT_TIMEOUT_S = 3.0
MAX_REQUEST_BYTES = 64 * 1024
MAX_CONNECTIONS = 8
_ACCEPT_POLL_S = 0.5


class ControlError(RemotairError):
    """The control socket exists but the exchange failed (permission, timeout, bad answer)."""

    exit_code = ExitCode.FAILURE


class AgentNotRunning(RemotairError):
    """Nobody listens on the control socket: the agent is not running (or uses another path)."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the agent is not running (no one listens on {path});"
            " start it with 'sudo systemctl start remotair-agent' or 'remotair run'"
        )
        self.path = path


class ControlServer:
    """Serves ``commands`` on a Unix socket."""

    def __init__(
        self,
        path: Path,
        commands: CommandTable,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        mode: int = SOCKET_MODE,
    ) -> None:
        self.path = Path(path)
        self.commands = commands
        self.timeout_s = timeout_s
        self.mode = mode
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind (replacing a stale socket left by a crashed agent) and start serving.

        Raises :class:`ControlError` if the path is held by a live agent or is not a socket,
        or ``OSError`` if the directory cannot be used.
        """
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, self.mode)
            sock.listen(MAX_CONNECTIONS)
            sock.settimeout(_ACCEPT_POLL_S)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control socket listening path=%s mode=%o", self.path, self.mode)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _clear_stale(self) -> None:
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError(
                f"control socket path {self.path} exists and is not a socket; remove it or set"
                " [control] socket to another path"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise
            log.info("replacing stale control socket path=%s", self.path)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        finally:
            probe.close()
        raise ControlError(f"another agent is already listening on {self.path}")

    def _serve(self) -> None:
        assert self._sock is not None
        listener = self._sock
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                log.warning("control accept failed error=%s", exc)
                continue
            if not self._slots.acquire(blocking=False):
                self._reply(conn, {"ok": False, "error": "agent busy; try again"})
                conn.close()
                continue
            threading.Thread(
                target=self._handle, args=(conn,), name="control-conn", daemon=True
            ).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.timeout_s)
            try:
                line = _read_line(conn)
            except (OSError, ValueError) as exc:
                self._reply(conn, {"ok": False, "error": f"bad request: {exc}"})
                return
            self._reply(conn, self.dispatch(line))
        finally:
            conn.close()
            self._slots.release()

    def dispatch(self, line: bytes) -> dict[str, Any]:
        """One request line -> the response object (never raises)."""
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return CommandReply.malformed("", f"request is not JSON: {exc}").to_body()
        if not isinstance(request, dict) or not isinstance(request.get("request"), str):
            error = 'request must be an object with "request": NAME'
            return CommandReply.malformed("", error).to_body()
        arguments = dict(request)
        name = arguments.pop("request")
        reply = self.commands.call(
            name, arguments, transport=Transport.LOCAL, payload_bytes=len(line)
        )
        return reply.to_body()

    @staticmethod
    def _reply(conn: socket.socket, response: Mapping[str, Any]) -> None:
        try:
            conn.sendall(json.dumps(response, default=str).encode() + b"\n")
        except OSError as exc:
            log.debug("control reply not delivered error=%s", exc)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"longer than {MAX_REQUEST_BYTES} bytes")
    if not data.strip():
        raise ValueError("empty request")
    return data.split(b"\n", 1)[0]


def request(
    path: Path,
    name: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    args: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Send one request to the agent and return its ``result``.

    Raises :class:`AgentNotRunning` when no one listens, :class:`ControlError` for anything
    else (no permission, no answer within ``timeout_s``, an error answer).
    """
    path = Path(path)
    message = json.dumps({**(args or {}), "request": name}).encode() + b"\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentNotRunning(path) from exc
        except PermissionError as exc:
            raise ControlError(
                f"permission denied on {path}: run as the service user, with sudo, or join the"
                " service's group"
            ) from exc
        sock.sendall(message)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError as exc:
        raise ControlError(f"the agent did not answer on {path} within {timeout_s:g} s") from exc
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    try:
        response = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"the agent's answer on {path} is not JSON ({len(data)} bytes)") from exc
    if not isinstance(response, dict):
        raise ControlError(f"the agent's answer on {path} is not an object")
    if not response.get("ok"):
        raise ControlError(f"the agent refused {name!r}: {response.get('error')}")
    result = response.get("result")
    if not isinstance(result, dict):
        raise ControlError(f"the agent's answer to {name!r} carries no result object")
    return result


class ControlConfig(Section):
    """The local control socket the CLI talks to."""

    socket: ConfigPath = setting(
        Path("/run/remotair/control.sock"),
        "Unix socket path",
        auto="$RUNTIME_DIRECTORY/control.sock when systemd sets it, "
        "else /run/remotair/control.sock",
    )
