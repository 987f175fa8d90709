"""``remotair alarms``: the active alarms and the recent raised/cleared events."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from agent.cli.options import add_config_argument, load
from agent.cli.output import add_json_argument, print_json, print_table
from agent.control import AgentNotRunning, request
from agent.errors import ExitCode
from agent.state_directory import StateDir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "alarms",
        help="show active alarms and recent alarm events",
        description="Ask the running agent for its active alarms and its recent raised/cleared"
        " events. If the agent is not running, show the active alarms stored in the state"
        " directory (alarms.json); recent events are kept in the agent's memory only.",
        epilog="example: remotair alarms --recent 50 --json",
    )
    add_config_argument(p)
    p.add_argument("--recent", type=int, default=20, metavar="N", help="recent events (0-1000)")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        report = request(Path(config.control.socket), "alarms", args={"limit": args.recent})
    except AgentNotRunning as exc:
        print(f"remotair alarms: {exc}; showing {config.storage.dir}", file=sys.stderr)
        report = StateDir(Path(config.storage.dir)).alarms()
    if args.json:
        print_json(report)
        return ExitCode.OK
    active: list[dict[str, Any]] = report["active"]
    if active:
        print_table(
            ["ACTIVE ALARM", "SEVERITY", "SINCE", "VALUE", "THRESHOLD", "MESSAGE"],
            [
                [
                    a["name"],
                    a["severity"],
                    _clock(a["raised_at"]),
                    a["value"],
                    a["threshold"],
                    a["message"],
                ]
                for a in active
            ],
        )
    else:
        print("no active alarms")
    recent = report.get("recent")
    if recent is None:
        print("(recent events: only the running agent knows them)")
    elif recent:
        print()
        print_table(
            ["TIME", "EVENT", "ALARM", "VALUE", "MESSAGE"],
            [[_clock(e["ts"]), e["state"], e["name"], e["value"], e["message"]] for e in recent],
        )
    else:
        print("no alarm events since the agent started")
    return ExitCode.OK


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
