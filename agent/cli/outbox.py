"""``remotair outbox``: what is waiting to leave the board, and what the broker refused."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli.options import add_config_argument, load
from agent.cli.output import add_json_argument, print_json, print_table
from agent.control import AgentNotRunning, request
from agent.errors import ExitCode
from agent.state_directory import StateDir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "outbox",
        help="show the outbox: depth, oldest message, peek, set-aside messages",
        description="Ask the running agent about its outbox (messages waiting for the broker's"
        " acknowledgement), or read the SQLite file read-only when the agent is not running."
        " Set-aside messages are those the broker kept rejecting.",
        epilog="example: remotair outbox --peek 5",
    )
    add_config_argument(p)
    p.add_argument("--peek", type=int, default=0, metavar="N", help="show the N oldest messages")
    p.add_argument(
        "--set-aside", type=int, default=20, metavar="N", help="set-aside messages to list"
    )
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        report = request(
            Path(config.control.socket),
            "outbox",
            args={"peek": args.peek, "set_aside": args.set_aside},
        )
    except AgentNotRunning as exc:
        state = StateDir(Path(config.storage.dir))
        print(f"remotair outbox: {exc}; reading {state.outbox_path}", file=sys.stderr)
        offline = state.outbox(peek=args.peek, set_aside=args.set_aside)
        if offline is None:
            print(f"remotair outbox: error: no outbox at {state.outbox_path}", file=sys.stderr)
            return ExitCode.UNAVAILABLE
        report = offline
    if args.json:
        print_json(report)
        return ExitCode.OK
    oldest = report["oldest_age_s"]
    evicted = report["evicted"]
    print(f"source:     {report['source']}")
    print(f"depth:      {report['depth']} messages, {report['bytes']} bytes")
    print(f"oldest:     {'-' if oldest is None else f'{oldest:.0f} s old'}")
    by_class = ", ".join(f"{k} {v}" for k, v in evicted.items() if v) or "none"
    print(f"evicted:    {sum(evicted.values())} ({by_class})")
    print(f"set aside:  {report['set_aside']}")
    if report["peek"]:
        print()
        print_table(
            ["SEQ", "KIND", "TOPIC", "AGE s", "TRIES", "PAYLOAD"],
            [
                [m["seq"], m["kind"], m["topic"], m["age_s"], m["attempts"], _short(m["payload"])]
                for m in report["peek"]
            ],
        )
    if report["set_aside_messages"]:
        print()
        print_table(
            ["SET ASIDE SEQ", "KIND", "TOPIC", "TRIES", "REASON"],
            [
                [m["seq"], m["kind"], m["topic"], m["attempts"], m["reason"]]
                for m in report["set_aside_messages"]
            ],
        )
    return ExitCode.OK


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
