"""``remotair model list|use|rollback``: the models stored on this board and which one is active."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.cli.options import add_config_argument, load
from agent.cli.output import print_json, print_table
from agent.errors import ExitCode
from agent.models import VerificationError
from agent.models.release import Release
from agent.models.signing import read_manifest_json
from agent.models.store import DEFAULT_KEEP, ModelStore, Pointers, StoredModel, store_root
from agent.vision.manifest import manifest_path_for

_RESTART_HINT = "restart the agent to load it"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "list",
        help="models in the store, the active one first",
        description="List the models stored under the state directory: short sha256, version,"
        " signer, expiry, and which one is active or previous.",
        epilog="example: remotair model list --json",
    )
    _common(p)
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "use",
        help="install a model file into the store and make it active, or activate a stored one",
        description="MODEL is an .onnx file (its .json manifest beside it): it is copied into the"
        " store (hash checked) and made active. Or MODEL is the start of a stored model's sha256"
        " (see remotair model list). The model active until now becomes the previous one.",
        epilog="example: remotair model use /media/usb/visual_clean_v3.onnx",
    )
    p.add_argument("model", metavar="MODEL", help="model file, or a stored model's sha256 prefix")
    _common(p)
    p.set_defaults(func=run_use)

    p = sub.add_parser(
        "rollback",
        help="make the previous model active again",
        description="Swap the active and the previous model (undo the last switch).",
        epilog="example: remotair model rollback",
    )
    _common(p)
    p.set_defaults(func=run_rollback)


def _common(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def open_store(args: argparse.Namespace) -> ModelStore:
    config = load(args)
    return ModelStore(store_root(Path(config.storage.dir)), keep=DEFAULT_KEEP)


def describe(model: StoredModel, pointers: Pointers) -> dict[str, Any]:
    """One model as ``list --json`` shows it (also used by status)."""
    data = model.manifest()
    role = {pointers.active: "active", pointers.previous: "previous"}.get(model.sha256, "")
    try:
        release = Release.from_manifest(data).to_dict()
    except VerificationError as exc:
        release = {"error": str(exc)}
    return {
        "sha256": model.sha256,
        "role": role,
        "file": model.model_path.name,
        "path": str(model.model_path),
        **release,
    }


def run_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    pointers = store.pointers()
    rows = [describe(m, pointers) for m in store.models()]
    rows.sort(key=lambda r: ("active", "previous", "").index(r["role"]))
    if args.json:
        print_json({"store": str(store.root), **pointers.to_dict(), "models": rows})
        return ExitCode.OK
    if not rows:
        print(f"no models in {store.root}; the agent runs the model named in the config")
        return ExitCode.OK
    print_table(
        ["", "SHA256", "VERSION", "FILE", "SIGNER", "CREATED", "EXPIRES"],
        [
            [
                {"active": "*", "previous": "prev"}.get(r["role"], ""),
                r["sha256"][:12],
                r.get("model_version"),
                r["file"],
                r.get("signer") or "unsigned",
                r.get("created"),
                r.get("expires"),
            ]
            for r in rows
        ],
    )
    return ExitCode.OK


def run_use(args: argparse.Namespace) -> int:
    store = open_store(args)
    candidate = Path(args.model)
    if candidate.suffix == ".onnx" or candidate.exists():
        model = store.add(candidate, read_manifest_json(manifest_path_for(candidate)))
    else:
        model = store.find(args.model)
    pointers = store.activate(model.sha256)
    return _report("active", model, pointers, args)


def run_rollback(args: argparse.Namespace) -> int:
    store = open_store(args)
    pointers = store.rollback()
    assert pointers.active is not None
    return _report("rolled back to", store.get(pointers.active), pointers, args)


def _report(what: str, model: StoredModel, pointers: Pointers, args: argparse.Namespace) -> int:
    if args.json:
        print_json({**pointers.to_dict(), "model": describe(model, pointers)})
    else:
        print(f"{what} {model.sha256[:12]} ({model.model_path.name}); {_RESTART_HINT}")
    return ExitCode.OK
