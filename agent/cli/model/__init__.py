"""``remotair model ...``: the model store and model signatures, one module per concern.

Each module in :data:`MODEL_COMMAND_MODULES` defines ``register(subparsers)`` and adds its
subcommand(s) under ``remotair model``; adding one (``adapt``, ...) is adding a module here.
"""

from __future__ import annotations

import argparse
import importlib

MODEL_COMMAND_MODULES: tuple[str, ...] = (
    "agent.cli.model.store",
    "agent.cli.model.signing",
    "agent.cli.model.adapt",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "model",
        help="installed models, signatures, rollback",
        description="Manage the vision models on this board (the store under the state"
        " directory) and sign or verify model manifests with Ed25519 keys.",
        epilog="example: remotair model list",
    )
    model_sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    for name in MODEL_COMMAND_MODULES:
        importlib.import_module(name).register(model_sub)
