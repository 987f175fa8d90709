"""The ``remotair`` command line: one module per command, registered here.

Every command prints a human-readable table by default and JSON with ``--json``; an expected
failure becomes one clear line on stderr and a documented exit code (see :data:`EXIT_CODES`);
``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent.errors import ExitCode, RemotairError, describe_exception
from agent.logging_setup import configure_logging

# Each module defines ``register(subparsers)`` which adds its parser(s) with ``func=`` set.
COMMAND_MODULES: tuple[str, ...] = (
    "agent.cli.read",
    "agent.cli.snap",
    "agent.cli.config",
    "agent.cli.classify",
    "agent.cli.dataset",
    "agent.cli.run",
    "agent.cli.demo",
    "agent.cli.status",
    "agent.cli.doctor",
    "agent.cli.i2c",
    "agent.cli.alarms",
    "agent.cli.outbox",
    "agent.cli.label",
    "agent.cli.sim",
    "agent.cli.model",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remotair",
        description="Remotair edge agent: HVAC duct-hygiene board.",
        epilog="Run 'remotair COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging("warning", debug=args.debug)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `remotair read --json | head`: the reader left, nothing to report
        sys.stderr.close()
        return ExitCode.OK
    except Exception as exc:  # the one place that turns any failure into one line
        if args.debug:
            raise
        message, code = describe_exception(exc)
        print(f"remotair {args.command}: error: {message}", file=sys.stderr)
        if not isinstance(exc, RemotairError | OSError):
            print("  (unexpected; run again with --debug for the traceback)", file=sys.stderr)
        return code
