"""Options shared by every command that touches the board: ``--config`` and ``--sim``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.board import Board, open_board
from agent.config import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG
from agent.config import Config, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"agent config (default: $REMOTAIR_CONFIG or {DEFAULT_CONFIG} if it exists,"
        " else the built-in simulated board)",
    )


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--sim",
        action="store_true",
        help="use the simulated board (with the configured sensors and cameras, if any)",
    )


def config_path(args: argparse.Namespace) -> Path | None:
    """The config file a command uses: --config, $REMOTAIR_CONFIG, or the system default."""
    if getattr(args, "config", None):
        path: Path = args.config
        return path
    if os.environ.get("REMOTAIR_CONFIG"):
        return Path(os.environ["REMOTAIR_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def board_from_args(args: argparse.Namespace, config: Config | None = None) -> Board:
    config = config or load(args)
    return open_board(config.board, simulate=getattr(args, "sim", False))
