"""Telemetry rounds per second with a 0.2 s round on the simulated board in real time.

The agent's sampler (a round never waits for a chip; a paced chip contributes its last sample
until it has a new one) against the blocking round it replaced, measured in the same run: one
``read()`` of every sensor in turn, which waits for the SCD4x's sample every 5 s. Each side runs
a round every 0.2 s (or as soon as the previous one ends, if it overran) for ``--seconds`` of
real time on its own freshly started simulated board; prints rounds per second, the median and
the longest round, and the ratio.

    .venv/bin/python bench/sampling_rounds.py [--seconds 20] [--round 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.board import Board, open_board
from agent.config import parse_config
from agent.sampling import Sampler
from drivers.errors import SensorError


def simulated_board() -> Board:
    return open_board(parse_config('[board]\nkind = "sim"\n').board, realtime=True)


def blocking_round(board: Board) -> Callable[[], None]:
    """The round before: every sensor's blocking read() in turn."""
    for sensor in board.sensors.values():
        sensor.start()

    def round_() -> None:
        for sensor in board.sensors.values():
            with contextlib.suppress(SensorError):
                sensor.read()

    return round_


def sampler_round(board: Board, round_s: float) -> Callable[[], None]:
    sampler = Sampler(board.sensors, board.sensor_info, interval_s=round_s, clock=board.clock)
    sampler.sample()  # starts every chip, as the agent's first round does

    def round_() -> None:
        sampler.sample()

    return round_


def run(make: Callable[[Board], Callable[[], None]], seconds: float, round_s: float) -> list[float]:
    board = simulated_board()
    try:
        one_round = make(board)
        durations: list[float] = []
        start = time.monotonic()
        next_at = start
        while time.monotonic() - start < seconds:
            time.sleep(max(0.0, next_at - time.monotonic()))
            began = time.monotonic()
            one_round()
            durations.append(time.monotonic() - began)
            next_at = max(next_at + round_s, time.monotonic())
        return durations
    finally:
        board.close()


def report(name: str, durations: list[float], seconds: float) -> float:
    rate = len(durations) / seconds
    median_ms, longest_ms = statistics.median(durations) * 1000, max(durations) * 1000
    print(
        f"{name:<10} {rate:6.2f} rounds/s  median round {median_ms:7.1f} ms"
        f"  longest {longest_ms:7.1f} ms  ({len(durations)} rounds)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--round", type=float, default=0.2, dest="round_s")
    args = parser.parse_args()
    print(f"round every {args.round_s:g} s for {args.seconds:g} s of real time, simulated board")
    before = report("blocking", run(blocking_round, args.seconds, args.round_s), args.seconds)
    after = report(
        "sampler",
        run(lambda b: sampler_round(b, args.round_s), args.seconds, args.round_s),
        args.seconds,
    )
    target = 1 / args.round_s
    print(f"ratio      {after / before:6.1f}x the rounds (target: one a round, {target:g}/s)")


if __name__ == "__main__":
    main()
