"""Doctor's checks of the host and the running agent: clock, storage, the systemd service, and
what the agent itself reports over the control socket."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from agent.config import Config
from agent.doctor.checklist import (
    CRITICAL_SPACE_BYTES,
    LOW_SPACE_BYTES,
    LOW_SPACE_FRACTION,
    SERVICE,
    SUBPROCESS_TIMEOUT_S,
    Check,
    _fail,
    _pass,
    _warn,
    today_utc,
)


def check_clock(config: Config) -> Check:
    """An unsynchronised clock breaks TLS (certificates look expired or not yet valid)."""
    if dt.datetime.now(dt.UTC).year < 2024:
        return _fail(
            "host",
            "clock",
            f"the clock says {today_utc()}",
            "set the time: sudo timedatectl set-ntp true (needs network)",
        )
    result = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if result is None:
        return _warn(
            "host",
            "clock",
            "cannot tell whether the clock is synchronised (timedatectl not available)",
            "check the time against a phone",
        )
    if result.strip() == "yes":
        return _pass("host", "clock", f"synchronised (NTP), {today_utc()}")
    status: Literal["WARN", "FAIL"] = "FAIL" if config.mqtt.tls is not None else "WARN"
    return Check(
        "host",
        "clock",
        status,
        f"not synchronised ({today_utc()})",
        "sudo timedatectl set-ntp true; check that UDP 123 reaches a time server",
    )


def check_storage(config: Config) -> Iterator[Check]:
    """The state directory is writable and has room for the outbox and snapshots."""
    directory = Path(config.storage.dir)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if directory.exists():
        if os.access(directory, os.W_OK):
            yield _pass("host", "storage dir", f"{directory} writable")
        else:
            yield _fail(
                "host",
                "storage dir",
                f"{directory} is not writable by this user",
                "run as the service user (sudo -u remotair) or fix the ownership",
            )
    else:
        yield _warn(
            "host",
            "storage dir",
            f"{directory} does not exist yet",
            "the agent creates it on start (systemd StateDirectory=)",
        )
    usage = shutil.disk_usage(existing)
    free_mb = usage.free / 1024 / 1024
    detail = f"{free_mb:.0f} MB free on {existing} ({usage.free / usage.total:.0%})"
    hint = "free space: old snapshots, logs (journalctl --vacuum-size=50M), apt clean"
    if usage.free < CRITICAL_SPACE_BYTES:
        yield _fail("host", "free space", detail, hint)
    elif usage.free < LOW_SPACE_BYTES or usage.free / usage.total < LOW_SPACE_FRACTION:
        yield _warn("host", "free space", detail, hint)
    else:
        yield _pass("host", "free space", detail)


def check_service() -> Check:
    """The systemd unit is active."""
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return _warn(
            "host",
            "service",
            "not under systemd",
            "on the board: sudo systemctl enable --now remotair-agent",
        )
    state = _run(["systemctl", "is-active", SERVICE])
    state = (state or "unknown").strip()
    if state == "active":
        return _pass("host", "service", f"{SERVICE} is active")
    return _fail(
        "host",
        "service",
        f"{SERVICE} is {state}",
        f"sudo systemctl start {SERVICE}; see journalctl -u {SERVICE} -n 50",
    )


def _run(argv: list[str]) -> str | None:
    """A command's stdout, or None if it is missing, fails to start or takes too long."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 or done.stdout else None


def check_agent(doc: Mapping[str, Any] | None, socket_path: Path) -> Iterator[Check]:
    """The running agent, as it sees itself: up, connected, every sensor and camera working."""
    if doc is None:
        yield _warn(
            "agent",
            "running",
            f"the agent is not running (nothing listens on {socket_path})",
            "sudo systemctl start remotair-agent (or 'remotair run'); then 'remotair status'",
        )
        return
    yield _pass("agent", "running", f"up {doc.get('uptime_s')} s, board {doc.get('board')}")
    broker = doc.get("broker", {})
    if broker.get("connected"):
        yield _pass("agent", "broker link", "connected")
    else:
        yield _fail(
            "agent",
            "broker link",
            f"the agent is not connected: {broker.get('last_error')}",
            "see the broker checks above; the agent keeps buffering in its outbox meanwhile",
        )
    sensors = doc.get("sensors", {})
    cameras = doc.get("cameras", {})
    failing = 0
    for name, s in sensors.items():
        if not s.get("ok"):
            failing += 1
            yield _fail(
                "agent",
                f"sensor {name}",
                f"the agent's reads of {name} ({s.get('chip')} at {s.get('at')}) fail:"
                f" {s.get('error')} ({s.get('faults')} faults)",
                "check wiring and power; 'remotair read' retries the sensor",
            )
    for name, c in cameras.items():
        if not c.get("ok"):
            failing += 1
            yield _fail(
                "agent",
                f"camera {name}",
                f"the agent's snapshots from {name} fail: {c.get('error')}"
                f" ({c.get('faults')} faults)",
                "check the camera cable and lighting; 'remotair snap' retries",
            )
    if not failing:
        yield _pass(
            "agent",
            "hardware",
            f"all {len(sensors)} sensors and {len(cameras)} cameras working for the agent",
        )
