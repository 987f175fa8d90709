"""``remotair sim``: break or mend a part of the simulated board, or run a soak scenario.

``remotair sim unplug scd41`` asks the running agent (simulated board only) to unplug that
sensor or camera; ``remotair status`` and ``remotair doctor`` then show the fault, and
``remotair sim plug scd41`` mends it. One-shot commands take ``--unplug NAME`` instead
(:func:`unplug`), since they build their own simulated board.

``remotair sim scenario FILE`` runs a soak scenario (:mod:`hil.scenario`): its own broker and
agent, a timeline of faults, an independent consumer; exit 0 only when every expectation held.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agent.board import Board
from agent.cli.options import add_config_argument, load
from agent.cli.output import add_json_argument, print_json
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
        help="break or mend a part of the running agent's simulated board; run a soak scenario",
        description="Break (unplug) or mend (plug) a sensor or camera of the simulated board the"
        " running agent uses, then watch 'remotair status' and 'remotair doctor' name it; or run"
        " a soak scenario file against an agent of its own.",
        epilog="example: remotair sim unplug scd41 && sleep 5 && remotair status",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, verb in (("unplug", "break"), ("plug", "mend")):
        one = actions.add_parser(
            action,
            help=f"{verb} a sensor or camera of the running agent",
            epilog=f"example: remotair sim {action} scd41",
        )
        add_config_argument(one)
        one.add_argument("name", help="sensor or camera name (see 'remotair status')")
        add_json_argument(one)
        one.set_defaults(func=run)
    scenario = actions.add_parser(
        "scenario",
        help="run a soak scenario (faults and expectations) against an agent of its own",
        description="Start a private Mosquitto, the agent on the simulated board and an"
        " independent MQTT consumer; play the scenario's faults; check its expectations. One"
        " line per fault and expectation (PASS/FAIL/SKIP); exit 0 only when none failed.",
        epilog="example: remotair sim scenario hil/scenarios/mix-60s.toml --junit soak.xml",
    )
    scenario.add_argument("file", type=Path, help="scenario file (TOML)")
    scenario.add_argument("--junit", type=Path, metavar="PATH", help="write a JUnit XML report")
    scenario.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep the agent's config, state and log here (default: a temporary directory)",
    )
    scenario.set_defaults(func=run_scenario_file)


def run_scenario_file(args: argparse.Namespace) -> int:
    """``remotair sim scenario``: the runner lives with the simulator (hil), imported on use."""
    from hil.scenario import ScenarioError, load_scenario, run_scenario

    try:
        scenario = load_scenario(args.file)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.USAGE
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        print(
            f"scenario {scenario.name!r}: {scenario.duration_s:g} s, {len(scenario.faults)} faults"
        )
        report = run_scenario(scenario, workdir, echo=lambda line: print(line, flush=True))
    print(report.text())
    if args.junit:
        report.write_junit(args.junit)
        print(f"JUnit report: {args.junit}")
    return ExitCode.OK if report.passed else ExitCode.FAILURE


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
