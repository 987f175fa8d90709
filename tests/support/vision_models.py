"""Copies of the shipped model to edit in tests (a manifest field changed, an output removed),
and its release version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent.vision.factory import shipped_model_path
from agent.vision.manifest import manifest_path_for


def shipped_model_version() -> int:
    """The shipped model's release version: a release must be newer to install over it."""
    version: int = json.loads(manifest_path_for(shipped_model_path()).read_text())["model_version"]
    return version


def copy_shipped_model(directory: Path) -> Path:
    """The shipped model and its manifest copied into ``directory``; returns the model's path."""
    source = shipped_model_path()
    target = directory / source.name
    shutil.copyfile(source, target)
    shutil.copyfile(manifest_path_for(source), manifest_path_for(target))
    return target


def edit_manifest(model: Path, **changes: object) -> None:
    """Set manifest fields of ``model``; a None value removes the field."""
    path = manifest_path_for(model)
    data = json.loads(path.read_text())
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    path.write_text(json.dumps(data))
