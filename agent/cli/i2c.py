"""``remotair i2c scan``: which addresses answer on the bus, and which chip each probably is."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from agent.board import SensorInfo, open_board
from agent.cli.options import add_board_arguments, load
from agent.cli.output import add_json_argument, print_json, print_table
from agent.cli.sim import add_unplug_argument, unplug
from agent.errors import ExitCode
from drivers.errors import DeviceAbsentError
from drivers.registry import CHIPS, I2C_ADDRESS_MAX, I2C_ADDRESS_MIN, chips_at

FIRST_ADDRESS = I2C_ADDRESS_MIN
LAST_ADDRESS = I2C_ADDRESS_MAX
# i2cdetect's auto mode: a quick write could corrupt EEPROMs (0x50-0x5f) and lock up some
# write-only chips (0x30-0x37), so those are probed with a read instead.
READ_PROBED = frozenset([*range(0x30, 0x38), *range(0x50, 0x60)])
# Errors meaning "nobody acknowledged": keep scanning. Anything else is a bus problem.
_NO_DEVICE = frozenset({errno.EREMOTEIO, errno.ENXIO, errno.EIO, errno.ETIMEDOUT, errno.EAGAIN})


class ProbeBus(Protocol):
    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None: ...
    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int: ...


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "i2c",
        help="I2C bus tools (scan)",
        description="I2C bus tools for wiring problems.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    scan = actions.add_parser(
        "scan",
        help="list the addresses that answer, matched to known chips",
        description="Probe every address 0x03-0x77 like i2cdetect (quick write, or a read byte"
        " for 0x30-0x37 and 0x50-0x5f), name the known chips that use each answering address and"
        " the configured sensor expected there. Exit code 3 if a configured I2C sensor's address"
        " does not answer or the bus cannot be opened.",
        epilog="example: remotair i2c scan --bus 1   (or: remotair i2c scan --sim --unplug scd41)",
    )
    add_board_arguments(scan)
    add_unplug_argument(scan)
    scan.add_argument("--bus", type=int, metavar="N", help="bus number (default: [board] i2c_bus)")
    add_json_argument(scan)
    scan.set_defaults(func=run_scan)


def scan_bus(bus: ProbeBus) -> list[int]:
    """The addresses that acknowledge, in order."""
    found = []
    for address in range(FIRST_ADDRESS, LAST_ADDRESS + 1):
        try:
            if address in READ_PROBED:
                bus.read_byte(address)
            else:
                bus.write_quick(address)
        except OSError as exc:
            if exc.errno in _NO_DEVICE:
                continue
            raise DeviceAbsentError(f"I2C bus error at 0x{address:02x}: {exc}") from exc
        found.append(address)
    return found


def run_scan(args: argparse.Namespace) -> int:
    config = load(args)
    number = config.board.i2c_bus if args.bus is None else args.bus
    if args.sim or config.board.kind == "sim":
        board = open_board(config.board, simulate=True)
        try:
            unplug(board, args.unplug)
            assert board.sim is not None
            expected = _expected(board.sensor_info.values())
            found = scan_bus(board.sim.bus)
        finally:
            board.close()
        where = f"simulated i2c-{number}"
    else:
        expected = {
            s.address or CHIPS[s.chip].default_address or 0: s.name
            for s in config.board.sensors
            if CHIPS[s.chip].bus == "i2c"
        }
        found = _scan_real(number)
        where = f"/dev/i2c-{number}"
    rows = _rows(found, expected)
    missing = [r for r in rows if not r["answers"]]
    if args.json:
        print_json({"bus": where, "addresses": rows})
    else:
        print(f"bus: {where}, {len(found)} address(es) answer")
        print_table(
            ["ADDRESS", "ANSWERS", "KNOWN CHIPS", "CONFIGURED"],
            [
                [r["address"], "yes" if r["answers"] else "NO", r["known"], r["configured"]]
                for r in rows
            ],
        )
    return ExitCode.HARDWARE if missing else ExitCode.OK


def _scan_real(number: int) -> list[int]:
    from agent.board_pi import open_i2c_bus

    bus = open_i2c_bus(number)
    try:
        return scan_bus(bus)
    finally:
        bus.close()


def _expected(sensors: Iterable[SensorInfo]) -> dict[int, str]:
    return {s.address: s.name for s in sensors if s.address is not None}


def _known(address: int) -> str | None:
    """The chips of the registry that can answer at ``address`` (``BME280/BMP280``)."""
    return "/".join(c.title for c in chips_at(address)) or None


def _rows(found: list[int], expected: Mapping[int, str]) -> list[dict[str, Any]]:
    addresses = sorted(set(found) | set(expected))
    return [
        {
            "address": f"0x{a:02x}",
            "answers": a in found,
            "known": _known(a),
            "configured": expected.get(a),
        }
        for a in addresses
    ]
