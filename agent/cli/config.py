"""``remotair config example|check|reference``: write, validate and document the agent's TOML."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.board_config import UNSTATED_KIND
from agent.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    example_toml,
    load_config,
    reference_markdown,
)
from agent.errors import ExitCode


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print an example configuration, validate one, or list every key",
        description="Work with the agent's TOML configuration.",
        epilog="Example: remotair config example > agent.toml && remotair config check agent.toml",
    )
    commands = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    example = commands.add_parser(
        "example", help="print a complete, commented agent.toml with every default"
    )
    example.set_defaults(func=_example)

    check = commands.add_parser(
        "check",
        help="validate a configuration file (exit code 2 on errors)",
        description="Validate FILE as the agent would at start-up, environment overrides "
        "(REMOTAIR_DEVICE_ID, REMOTAIR_MQTT_HOST, REMOTAIR_MQTT_PORT) and systemd credentials "
        "included. Prints every error, one per line.",
    )
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})",
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=_check)

    reference = commands.add_parser(
        "reference", help="print a Markdown table of every key (type, default, description)"
    )
    reference.set_defaults(func=_reference)


def _example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_toml())
    return ExitCode.OK


def _reference(args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown())
    return ExitCode.OK


def summary(config: Config) -> dict[str, Any]:
    """The few facts a technician checks first."""
    board = config.board
    return {
        "device_id": config.device.id,
        "board": board.kind,
        "builtin_sim": board.is_builtin_sim,
        "sensors": len(board.sensors),
        "cameras": len(board.cameras),
        "broker": f"{config.mqtt.host}:{config.mqtt.port}",
        "tls": config.mqtt.tls is not None,
        "vision": config.vision.backend,
    }


def _check(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        config = load_config(path)
        if not config.board.kind_stated:  # `remotair run` refuses it: so does the check
            raise ConfigError([f"{path}: {UNSTATED_KIND}"])
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"file": str(path), "ok": False, "errors": list(exc.errors)}))
        else:
            for line in exc.errors:
                print(line, file=sys.stderr)
            count = len(exc.errors)
            print(f"{path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return ExitCode.USAGE
    facts = summary(config)
    if args.json:
        print(json.dumps({"file": str(path), "ok": True, "errors": [], "summary": facts}))
        return ExitCode.OK
    board = f"{facts['board']} board, {facts['sensors']} sensors, {facts['cameras']} cameras"
    print(f"{path}: OK")
    print(f"  device id  {facts['device_id']}")
    print(f"  board      {'built-in simulated board' if facts['builtin_sim'] else board}")
    print(f"  broker     {facts['broker']}{' (TLS)' if facts['tls'] else ''}")
    print(f"  vision     {facts['vision']}")
    return ExitCode.OK
