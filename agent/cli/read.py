"""``remotair read``: read every sensor once and print a table (or JSON)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.options import add_board_arguments, board_from_args
from agent.cli.output import add_json_argument, print_json, print_table
from agent.errors import ExitCode
from drivers.errors import SensorError
from drivers.measurement import QUANTITIES

COLUMNS = {
    "co2_ppm": "CO2 ppm",
    "temperature_c": "T °C",
    "humidity_rh": "RH %",
    "pressure_pa": "p Pa",
    "differential_pressure_pa": "dP Pa",
}
QUANTITIES_ORDER = [q for q in COLUMNS if q in QUANTITIES]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "read",
        help="read every sensor once",
        description="Read every configured sensor once and print the values.",
        epilog="example: remotair read --sim --json",
    )
    add_board_arguments(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def read_all(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    """Start and read each sensor; a failure becomes that sensor's error, not an exception."""
    board = board_from_args(args)
    results: list[dict[str, Any]] = []
    try:
        for name, sensor in board.sensors.items():
            info = board.sensor_info[name]
            entry: dict[str, Any] = {"name": name, "chip": info.chip, "location": info.location}
            try:
                sensor.start()
                entry |= {"ok": True, "values": sensor.read().values(), "error": None}
            except SensorError as exc:
                entry |= {
                    "ok": False,
                    "values": {},
                    "error": exc.detail,
                    "error_type": type(exc).__name__,
                }
            results.append(entry)
    finally:
        board.close()
    return board.kind, results


def run(args: argparse.Namespace) -> int:
    kind, results = read_all(args)
    if args.json:
        print_json({"board": kind, "sensors": results})
    else:
        rows = [
            [r["name"], r["chip"], r["location"]]
            + [r["values"].get(q) for q in QUANTITIES_ORDER]
            + ["ok" if r["ok"] else f"FAIL: {r['error']}"]
            for r in results
        ]
        print(f"board: {'simulated' if kind == 'sim' else kind}")
        print_table(
            ["SENSOR", "CHIP", "AT", *(COLUMNS[q] for q in QUANTITIES_ORDER), "STATUS"], rows
        )
    return ExitCode.OK if all(r["ok"] for r in results) else ExitCode.HARDWARE
