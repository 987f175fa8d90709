"""``remotair model list|use|rollback``: the models stored on this board and which one is active."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.cli.options import add_config_argument, load
from agent.cli.output import add_json_argument, print_json, print_table
from agent.config import Config
from agent.control import AgentNotRunning, ControlError, request
from agent.errors import ExitCode
from agent.models import VerificationError
from agent.models.release import Release
from agent.models.settings import model_settings
from agent.models.signing import TrustedKeys, read_manifest_json, verify_release
from agent.models.store import ModelStore, Pointers, StoredModel
from agent.vision.manifest import manifest_path_for, sha256_file


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
    add_json_argument(p)


def open_store(args: argparse.Namespace) -> ModelStore:
    settings = model_settings(load(args))
    return ModelStore(settings.store_dir, keep=settings.keep)


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
    config = load(args)
    settings = model_settings(config)
    store = ModelStore(settings.store_dir, keep=settings.keep)
    candidate = Path(args.model)
    if candidate.suffix == ".onnx" or candidate.exists():
        manifest = read_manifest_json(manifest_path_for(candidate))
        _check_signature(manifest, candidate, settings.install.trusted)
        model = store.add(candidate, manifest)
    else:
        model = store.find(args.model)
        _check_signature(model.manifest(), model.model_path, settings.install.trusted)
    if Path(settings.fallback_model).is_file():
        store.adopt(settings.fallback_model)  # so that "model rollback" can go back to it
    pointers = store.activate(model.sha256)
    return _report("active", model, pointers, args, config)


def _check_signature(manifest: dict[str, Any], model: Path, trusted: TrustedKeys) -> None:
    """With trusted keys configured the agent would refuse the model: refuse it here first."""
    if trusted:
        verify_release(manifest, trusted, now=None, file_sha256=sha256_file(model))


def run_rollback(args: argparse.Namespace) -> int:
    config = load(args)
    store = open_store(args)
    pointers = store.rollback()
    assert pointers.active is not None
    return _report("rolled back to", store.get(pointers.active), pointers, args, config)


def _report(
    what: str, model: StoredModel, pointers: Pointers, args: argparse.Namespace, config: Config
) -> int:
    agent = _tell_the_agent(config)
    if args.json:
        print_json({**pointers.to_dict(), "model": describe(model, pointers), "agent": agent})
    else:
        print(f"{what} {model.sha256[:12]} ({model.model_path.name}); {agent}")
    return ExitCode.OK


def _tell_the_agent(config: Config) -> str:
    """Ask a running agent to reload (as cmd/reload does); say what became of it."""
    try:
        answer = request(Path(config.control.socket), "reload", timeout_s=30.0)
    except AgentNotRunning:
        return "the agent is not running: it loads this model when it starts"
    except ControlError as exc:
        return f"the agent did not reload ({exc}): run 'systemctl reload remotair'"
    if answer.get("refused"):
        return f"the agent refused it: {answer['refused']}"
    return f"the agent now runs {answer.get('model')}"
