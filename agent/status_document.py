"""The agent's health document: the retained ``status`` message and ``remotair status``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.sampling import SensorState
from agent.snapshots import CameraState


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """Everything the health document is made of, gathered by the daemon."""

    started_at: float
    """Wall-clock start time (epoch s)."""
    config_file: str | None
    device_id: str
    board_kind: str
    model_id: str | None
    vision_error: str | None
    broker: Mapping[str, Any]
    sensors: Sequence[SensorState]
    cameras: Sequence[CameraState]
    active_alarms: Sequence[Mapping[str, Any]]
    outbox: Mapping[str, Any]
    last_error: str | None
    jobs: Mapping[str, Mapping[str, Any]]


def health_document(h: HealthInputs, *, now: float | None = None) -> dict[str, Any]:
    """The ``status`` body: small enough to publish every few minutes, complete enough to act on."""
    now = time.time() if now is None else now
    return {
        "state": "online",
        "version": __version__,
        "uptime_s": round(now - h.started_at, 1),
        "config": h.config_file,
        "board": h.board_kind,
        "model": h.model_id,
        "vision_error": h.vision_error,
        "broker": dict(h.broker),
        "sensors": {
            s.name: {
                "chip": s.chip,
                "at": s.location,
                "ok": s.ok,
                "values": dict(s.last_values or {}),
                "age_s": None if s.last_ok_at is None else round(now - s.last_ok_at, 1),
                "faults": s.fault_count,
                "error": s.last_error if not s.ok else None,
            }
            for s in h.sensors
        },
        "cameras": {
            c.name: {
                "ok": c.ok,
                "last_snapshot": c.last_file,
                "age_s": None if c.last_captured_at is None else round(now - c.last_captured_at, 1),
                "verdict": c.last_verdict,
                "faults": c.fault_count,
                "error": c.last_error if not c.ok else None,
            }
            for c in h.cameras
        },
        "alarms": [dict(a) for a in h.active_alarms],
        "outbox": dict(h.outbox),
        "jobs": {k: dict(v) for k, v in h.jobs.items()},
        "last_error": h.last_error,
    }


def fingerprint(doc: Mapping[str, Any]) -> tuple[object, ...]:
    """What counts as a change worth an immediate status message (not values or ages)."""
    return (
        doc["broker"].get("connected"),
        tuple(sorted((k, v["ok"]) for k, v in doc["sensors"].items())),
        tuple(sorted((k, v["ok"]) for k, v in doc["cameras"].items())),
        tuple(sorted(a.get("name", "") for a in doc["alarms"])),
        doc["vision_error"],
    )
