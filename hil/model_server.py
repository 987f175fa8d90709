"""A throwaway HTTP file server on loopback for model downloads, with the faults of a bad link.

It serves a directory like a CDN would (``Content-Length``, ``Range`` requests answered ``206``)
and can misbehave on purpose: close the connection after sending part of a file (a dropped
cellular link), or stop altogether mid-download (the server gone). Tests, the demo and
``bench/model_install.py`` use it; the agent accepts plain ``http://`` on loopback addresses only.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_CHUNK = 64 * 1024


@dataclass
class ServerFaults:
    """What the next requests suffer. ``drop_after_bytes``: body bytes sent before the connection
    is closed, for the next ``drops`` requests; ``stop_after_bytes``: the whole server stops."""

    drop_after_bytes: int | None = None
    drops: int = 1
    stop_after_bytes: int | None = None


@dataclass
class ServedRequest:
    path: str
    range: str | None
    status: int


@dataclass
class _State:
    directory: Path
    faults: ServerFaults = field(default_factory=ServerFaults)
    requests: list[ServedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelServer:
    """``with ModelServer(dir) as server: server.url("model.onnx")``."""

    def __init__(self, directory: Path) -> None:
        self.state = _State(directory)
        handler = type("Handler", (_Handler,), {"state": self.state, "server_owner": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def faults(self) -> ServerFaults:
        return self.state.faults

    @property
    def requests(self) -> list[ServedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def stop_soon(self) -> None:
        """Stop from a request thread (``shutdown`` would wait for that very thread)."""
        threading.Thread(target=self.stop, daemon=True).start()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client gone mid-body is what the faults are for: no traceback on stderr."""


class _Handler(BaseHTTPRequestHandler):
    state: _State
    server_owner: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet in test output
        del format, args

    def do_GET(self) -> None:
        path = self.state.directory / self.path.lstrip("/").split("?")[0]
        wanted = self.headers.get("Range")
        if not path.is_file() or ".." in self.path:
            self._record(wanted, HTTPStatus.NOT_FOUND)
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
        if match:
            start = int(match.group(1))
            if start >= len(data):
                self._record(wanted, HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                return
        status = HTTPStatus.PARTIAL_CONTENT if match else HTTPStatus.OK
        self._record(wanted, status)
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self._send_body(body)

    def _send_body(self, body: bytes) -> None:
        faults = self.state.faults
        limit = len(body)
        drop = False
        with self.state.lock:
            if faults.drop_after_bytes is not None and faults.drops > 0:
                limit, drop = min(limit, faults.drop_after_bytes), True
                faults.drops -= 1
            stop = faults.stop_after_bytes
        if stop is not None:
            limit, drop = min(limit, stop), True
        for offset in range(0, limit, _CHUNK):
            self.wfile.write(body[offset : min(offset + _CHUNK, limit)])
        if drop:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            if stop is not None:
                self.server_owner.stop_soon()

    def _record(self, wanted: str | None, status: int) -> None:
        with self.state.lock:
            self.state.requests.append(ServedRequest(self.path, wanted, int(status)))
