"""``remotair sim``: break or mend a part of the simulated board, to see the agent name it.

``remotair sim unplug scd41`` asks the running agent (simulated board only) to unplug that
sensor or camera; ``remotair status`` and ``remotair doctor`` then show the fault, and
``remotair sim plug scd41`` mends it. One-shot commands take ``--unplug NAME`` instead
(:func:`unplug`), since they build their own simulated board.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from agent.board import Board
from agent.cli.options import add_config_argument, load
from agent.cli.output import print_json
from agent.control import request
from agent.errors import ExitCode, RemotairError


class SimFaultError(RemotairError):
    """``--unplug`` names a part the simulated board does not have, or the board is real."""

    exit_code = ExitCode.USAGE


def add_unplug_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unplug",
        action="append",
        default=[],
        metavar="NAME",
        help="simulated board only: unplug this sensor or camera first (repeatable; for"
        " training and tests)",
    )


def unplug(board: Board, names: Sequence[str]) -> None:
    """Mark simulated sensors absent and simulated cameras dead."""
    if not names:
        return
    if board.sim is None:
        raise SimFaultError("--unplug works on the simulated board only (add --sim)")
    for name in names:
        if name in board.sim.chips:
            board.sim.faults(name).absent = True
        elif name in board.sim.cameras:
            board.sim.cameras[name].faults.dead = True
        else:
            known = ", ".join([*board.sim.chips, *board.sim.cameras])
            raise SimFaultError(f"--unplug {name}: no such simulated part; known: {known}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="unplug or plug a part of the running agent's simulated board",
        description="Break (unplug) or mend (plug) a sensor or camera of the simulated board the"
        " running agent uses, then watch 'remotair status' and 'remotair doctor' name it.",
        epilog="example: remotair sim unplug scd41 && sleep 5 && remotair status",
    )
    add_config_argument(p)
    p.add_argument("action", choices=("unplug", "plug"))
    p.add_argument("name", help="sensor or camera name (see 'remotair status')")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    result = request(
        Path(config.control.socket),
        "sim",
        args={"name": args.name, "broken": args.action == "unplug"},
    )
    if args.json:
        print_json(result)
    else:
        state = "unplugged" if result["broken"] else "plugged in"
        print(f"{result['kind']} {result['name']}: {state}")
    return ExitCode.OK
