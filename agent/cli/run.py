"""``remotair run``: the agent itself (what the systemd service starts)."""

from __future__ import annotations

import argparse

from agent.board_config import UNSTATED_KIND
from agent.cli.options import add_board_arguments, config_path, load
from agent.config import ConfigError
from agent.logging_setup import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the agent (sampling, snapshots, alarms, MQTT)",
        description="Run the agent until SIGTERM or Ctrl-C. On SIGTERM it stops sampling, flushes"
        " what the broker will take within a bound, publishes 'offline' and exits 0.",
        epilog="example: remotair run --config /etc/remotair/agent.toml",
    )
    add_board_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.daemon import run_agent

    config = load(args)
    path = config_path(args)
    if path is not None and not args.sim and not config.board.kind_stated:
        raise ConfigError([f"{path}: {UNSTATED_KIND}"])
    configure_logging(config.logging.level, debug=args.debug)
    return run_agent(config, config_file=path, simulate=args.sim)
