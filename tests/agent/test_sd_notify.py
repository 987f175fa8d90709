"""sd_notify over a real datagram socket, as systemd receives it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from agent.sd_notify import Notifier


def test_ready_watchdog_and_stopping_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"})
        assert n.enabled and n.watchdog_interval_s == 30.0
        assert n.ready("sampling 7 sensors")
        assert server.recv(1024) == b"READY=1\nSTATUS=sampling 7 sensors"
        assert n.watchdog()
        assert server.recv(1024) == b"WATCHDOG=1"
        assert n.stopping()
        assert server.recv(1024) == b"STOPPING=1"


def test_abstract_socket_names_start_with_at() -> None:
    name = f"remotair-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert server.recv(1024) == b"READY=1"


def test_without_systemd_nothing_is_sent_and_nothing_fails() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert n.ready() is False and n.watchdog() is False


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    n = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready() is False
