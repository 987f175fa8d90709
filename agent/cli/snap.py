"""``remotair snap``: capture one frame from each camera into JPEG files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.cli.options import add_board_arguments, board_from_args
from agent.cli.output import add_json_argument, print_json, print_table
from agent.errors import ExitCode
from drivers.camera import frame_problem, save_snapshot
from drivers.errors import CameraError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "snap",
        help="capture a snapshot from each camera",
        description="Capture one frame from each configured camera and store it as JPEG"
        " (with a .json sidecar holding its metadata).",
        epilog="example: remotair snap --sim --out /tmp/snaps",
    )
    add_board_arguments(p)
    p.add_argument("--out", type=Path, default=Path("."), help="directory (default: current)")
    p.add_argument("--camera", action="append", help="only this camera (repeatable)")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    board = board_from_args(args)
    results: list[dict[str, Any]] = []
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, camera in board.cameras.items():
            if args.camera and name not in args.camera:
                continue
            entry: dict[str, Any] = {"camera": name}
            try:
                frame = camera.capture()
                path = save_snapshot(frame, args.out)
                problem = frame_problem(frame.image)
                entry |= {
                    "ok": problem is None,
                    "file": str(path),
                    "size": f"{frame.width}x{frame.height}",
                    "error": problem,
                }
            except CameraError as exc:
                entry |= {"ok": False, "file": None, "size": None, "error": exc.detail}
            results.append(entry)
    finally:
        board.close()
    if args.json:
        print_json({"board": board.kind, "snapshots": results})
    else:
        print_table(
            ["CAMERA", "FILE", "SIZE", "STATUS"],
            [
                [r["camera"], r["file"], r["size"], "ok" if r["ok"] else f"FAIL: {r['error']}"]
                for r in results
            ],
        )
    return ExitCode.OK if results and all(r["ok"] for r in results) else ExitCode.HARDWARE
