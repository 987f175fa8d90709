"""``remotair doctor``: the checklist a technician runs first (see :mod:`agent.doctor`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent import doctor
from agent.board import open_board
from agent.cli.options import add_board_arguments, config_path, load
from agent.cli.output import add_json_argument, print_json
from agent.cli.sim import add_unplug_argument, unplug
from agent.control import AgentNotRunning, ControlError, request
from agent.doctor import Check
from agent.errors import ExitCode


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check everything the agent needs, with a hint for each problem",
        description="Check the I2C bus, each chip (identity and a plausible reading), each UART"
        " sensor, each camera (two frames, neither black nor frozen), the model (hash and a test"
        " inference), the broker step by step (DNS, TCP, TLS with certificate expiry, MQTT"
        " CONNACK), the clock, free space, the systemd service and the running agent. Each line"
        " is PASS, WARN or FAIL with a hint. Exit code 1 if anything FAILs, else 0. While the"
        " agent runs on a real board its chips and cameras are judged from its own status"
        " (probing them would disturb it) unless --probe is given.",
        epilog="example: remotair doctor --sim --unplug scd41 --json",
    )
    add_board_arguments(p)
    add_unplug_argument(p)
    p.add_argument(
        "--probe", action="store_true", help="probe chips and cameras even while the agent runs"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=doctor.NETWORK_TIMEOUT_S,
        metavar="S",
        help="bound of each network step (default %(default)s s)",
    )
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    source = config_path(args)
    checks: list[Check] = [
        doctor.Check(
            "config",
            "file",
            "PASS",
            f"{source} is valid" if source else "no config file: the built-in simulated board",
        )
    ]
    socket_path = Path(config.control.socket)
    agent_doc: dict[str, Any] | None = None
    try:
        agent_doc = request(socket_path, "status", min(args.timeout, 3.0))
    except AgentNotRunning:
        pass
    except ControlError as exc:
        checks.append(
            doctor.Check(
                "agent",
                "control socket",
                "WARN",
                str(exc),
                "run doctor as the service user or with sudo to ask the agent",
            )
        )
    simulated = args.sim or config.board.kind == "sim"
    board = open_board(config.board, simulate=args.sim)
    frame = None
    try:
        unplug(board, args.unplug)
        checks += doctor.check_i2c_bus(config, board)
        if agent_doc is not None and not simulated and not args.probe:
            checks.append(
                doctor.Check(
                    "board",
                    "probe",
                    "PASS",
                    "the agent is running: chips and cameras judged from its status"
                    " (--probe to test them directly)",
                )
            )
        else:
            checks += doctor.check_sensors(board)
            camera_checks, frame = doctor.check_cameras(board)
            checks += camera_checks
    finally:
        board.close()
    checks += doctor.check_model(config, frame)
    checks += doctor.check_broker(config, args.timeout)
    checks.append(doctor.check_clock(config))
    checks += doctor.check_storage(config)
    checks.append(doctor.check_service())
    checks += doctor.check_agent(agent_doc, socket_path)
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("PASS", "WARN", "FAIL")}
    if args.json:
        print_json(
            {"ok": counts["FAIL"] == 0, "counts": counts, "checks": [c.to_dict() for c in checks]}
        )
    else:
        _print(checks, counts)
    return ExitCode.FAILURE if counts["FAIL"] else ExitCode.OK


def _print(checks: list[Check], counts: dict[str, int]) -> None:
    width = max(len(f"{c.group}/{c.name}") for c in checks)
    for c in checks:
        print(f"{c.status}  {f'{c.group}/{c.name}'.ljust(width)}  {c.detail}")
        if c.hint and c.status != "PASS":
            print(f"      {''.ljust(width)}  hint: {c.hint}")
    print()
    print(f"{counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed")
