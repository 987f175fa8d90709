"""The rows of the agent's command table: what ``remotair <cmd>`` and ``cmd/<name>`` can ask.

Each row names its arguments' model, its handler (which only calls the running agent's own
methods), whether it may be called over MQTT, its rate limit there and its size cap. To add a
command, add a model, a handler and a row; to lock one down, change its row.

========  ======  ===========  ===============================================================
name      remote  rate limit   what it does
========  ======  ===========  ===============================================================
ping      yes     10 per 10 s  answers with the uptime
status    yes     10 per 60 s  the health document the agent publishes on ``status``
alarms    yes     10 per 60 s  active alarms and the recent raised/cleared events
read      yes     6 per 60 s   one sensor round now, published as telemetry too
snapshot  yes     4 per 60 s   a picture (and verdict) from one or all cameras now
reload    yes     4 per 60 s   re-read the config and the active model (as SIGHUP does)
model_*   yes     4 per 60 s   install / roll back a signed model (:mod:`agent.models.commands`)
outbox    no      -            depth, evictions, the first messages and the set-aside ones
sim       no      -            break or mend a simulated part (simulated boards only)
sim_clock no      -            step the simulated board's wall clock (an NTP jump)
========  ======  ===========  ===============================================================
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from agent.command_table import (
    Command,
    CommandArgs,
    CommandError,
    CommandTable,
    NoArgs,
    RateLimit,
)
from agent.models.commands import model_commands
from agent.reports import alarms_report, outbox_report

if TYPE_CHECKING:
    from agent.daemon import Agent
    from hil.board import SimBoard

__all__ = ["MAX_LIMIT", "agent_command_table", "agent_commands"]

MAX_LIMIT = 1000


class AlarmsArgs(CommandArgs):
    limit: int = Field(default=20, ge=0, le=MAX_LIMIT)
    """How many recent raised/cleared events to include."""


class OutboxArgs(CommandArgs):
    peek: int = Field(default=0, ge=0, le=MAX_LIMIT)
    """How many of the oldest pending messages to show."""
    set_aside: int = Field(default=20, ge=0, le=MAX_LIMIT)
    """How many set-aside messages to show."""


class SnapshotArgs(CommandArgs):
    camera: str | None = None
    """One camera by name; every camera when absent."""


SENSOR_FAULTS: tuple[str, ...] = ("unplug", "crc")
CAMERA_FAULTS: tuple[str, ...] = ("unplug", "black", "frozen")


class SimArgs(CommandArgs):
    name: str
    """A simulated sensor or camera."""
    broken: bool
    """True breaks it, false mends it."""
    fault: Literal["unplug", "crc", "black", "frozen"] = "unplug"
    """unplug (sensor or camera), crc (a sensor's every answer corrupt), black or frozen frames."""


class SimClockArgs(CommandArgs):
    jump_s: float = Field(ge=-366 * 86400, le=366 * 86400)
    """Seconds to step the simulated wall clock by (negative: back)."""


def agent_commands(agent: Agent) -> list[Command[Any]]:
    """The rows for a started agent."""

    def ping(_: NoArgs) -> dict[str, Any]:
        return {"pong": True, "uptime_s": round(time.time() - agent.started_at, 1)}

    def status(_: NoArgs) -> dict[str, Any]:
        return {
            "device": agent.device_id,
            "pid": os.getpid(),
            "storage_dir": str(agent.config.storage.dir),
            **agent.status_document(),
        }

    def alarms(args: AlarmsArgs) -> dict[str, Any]:
        return alarms_report(agent.alarms.active(), agent.alarms.recent(args.limit), source="agent")

    def read(_: NoArgs) -> dict[str, Any]:
        result = agent.sample_round()
        return {"ok": not result.faults, **result.telemetry_body(agent.board.sensor_info)}

    def snapshot(args: SnapshotArgs) -> dict[str, Any]:
        names = [args.camera] if args.camera else list(agent.takers)
        unknown = [n for n in names if n not in agent.takers]
        if unknown:
            known = ", ".join(agent.takers) or "none"
            raise CommandError(f"unknown camera {unknown[0]!r}; known: {known}")
        cameras: dict[str, object] = {}
        ok = True
        for name in names:
            taken = agent.snapshot(name)
            if taken.error is not None:
                cameras[name], ok = {"error": taken.error}, False
            elif taken.verdict is not None:
                cameras[name] = taken.verdict_body()
            else:  # vision off (or the classifier failed): the picture was still taken
                stored = taken.file.name if taken.file else None
                cameras[name] = {"snapshot": stored, "verdict": None}
        return {"ok": ok, "cameras": cameras}

    def outbox(args: OutboxArgs) -> dict[str, Any]:
        return outbox_report(
            agent.outbox.stats(),
            agent.outbox.pending(args.peek) if args.peek else [],
            agent.outbox.set_aside_messages(args.set_aside) if args.set_aside else [],
            source="agent",
        )

    def sim_board() -> SimBoard:
        if agent.board.sim is None:
            raise CommandError("not a simulated board: 'sim' only breaks simulated parts")
        return agent.board.sim

    def sim(args: SimArgs) -> dict[str, Any]:
        board = sim_board()
        if args.name in board.chips:
            kind, allowed = "sensor", SENSOR_FAULTS
        elif args.name in board.cameras:
            kind, allowed = "camera", CAMERA_FAULTS
        else:
            known = ", ".join([*board.chips, *board.cameras])
            raise CommandError(f"no simulated sensor or camera {args.name!r}; known: {known}")
        if args.fault not in allowed:
            raise CommandError(f"a {kind} cannot be {args.fault}; {kind} faults: {allowed}")
        if kind == "sensor":
            chip = board.faults(args.name)
            if args.fault == "unplug":
                chip.absent = args.broken
            else:
                chip.corrupt_crc = -1 if args.broken else 0
        else:
            camera = board.cameras[args.name].faults
            setattr(camera, "dead" if args.fault == "unplug" else args.fault, args.broken)
        return {"name": args.name, "kind": kind, "fault": args.fault, "broken": args.broken}

    def sim_clock(args: SimClockArgs) -> dict[str, Any]:
        offset = sim_board().wall_clock.jump(args.jump_s)
        return {"jump_s": args.jump_s, "offset_s": offset}

    def reload(_: NoArgs) -> dict[str, Any]:
        return agent.reload()

    per_minute = 60.0
    return [
        Command(
            name="ping",
            args=NoArgs,
            handler=ping,
            summary="answers with the uptime",
            remote=True,
            rate_limit=RateLimit(10, 10.0),
        ),
        Command(
            name="status",
            args=NoArgs,
            handler=status,
            summary="the health document the agent publishes on status",
            remote=True,
            rate_limit=RateLimit(10, per_minute),
        ),
        Command(
            name="alarms",
            args=AlarmsArgs,
            handler=alarms,
            summary="active alarms and the recent raised/cleared events",
            remote=True,
            rate_limit=RateLimit(10, per_minute),
        ),
        Command(
            name="read",
            args=NoArgs,
            handler=read,
            summary="one sensor round now, published as telemetry too",
            remote=True,
            rate_limit=RateLimit(6, per_minute),
        ),
        Command(
            name="snapshot",
            args=SnapshotArgs,
            handler=snapshot,
            summary="a picture (and verdict) from one or all cameras now",
            remote=True,
            rate_limit=RateLimit(4, per_minute),
        ),
        Command(
            name="reload",
            args=NoArgs,
            handler=reload,
            summary="re-read the config and the active model (as SIGHUP does)",
            remote=True,
            rate_limit=RateLimit(4, per_minute),
        ),
        *model_commands(lambda: agent.models),
        Command(
            name="outbox",
            args=OutboxArgs,
            handler=outbox,
            summary="depth, evictions, the first messages and the set-aside ones",
        ),
        Command(
            name="sim",
            args=SimArgs,
            handler=sim,
            summary="break or mend a simulated part (simulated boards only)",
        ),
        Command(
            name="sim_clock",
            args=SimClockArgs,
            handler=sim_clock,
            summary="step the simulated board's wall clock (an NTP jump)",
        ),
    ]


def agent_command_table(agent: Agent) -> CommandTable:
    """The table both transports dispatch through."""
    return CommandTable(agent_commands(agent))
