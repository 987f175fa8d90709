"""The JSON manifest that travels next to a model file.

The manifest is what makes a model file usable without the training code: the class labels in
output order, the input size and normalisation the pre-processing must reproduce, the decision
threshold, and the file's sha256 so that the agent refuses a model that is not the one described
(a half-copied file, a model swapped without its manifest). Training metrics ride along so that
``remotair classify --json`` and the model card quote the same numbers.

Two optional parts make a model know when it is unsure (see :mod:`agent.vision.calibration`):
``calibration`` (temperature and uncertain band) and ``ood`` (out-of-distribution score on the
``features`` output). A manifest without them is an old-style model that only ever says clean or
dirty. ``logits_output`` names the output to decide on when it is not ``logits`` (a head added by
``remotair model adapt``, see :mod:`agent.vision.adapt`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from agent.vision import LABELS, ModelError
from agent.vision.calibration import Calibration
from agent.vision.ood import OodDetector

T = TypeVar("T")

MANIFEST_VERSION = 1
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """Everything the runtime needs to know about a model file, plus its provenance."""

    model_file: str
    """File name of the model, relative to the manifest's directory."""
    sha256: str
    labels: tuple[str, ...]
    input_name: str
    input_shape: tuple[int, int, int, int]
    """N, C, H, W of the model input (N is 1: the board classifies one snapshot at a time)."""
    mean: tuple[float, float, float]
    """Per-channel mean, RGB order, on pixels scaled to 0..1."""
    std: tuple[float, float, float]
    decision_threshold: float
    """``dirty`` when its probability is >= this."""
    opset: int
    architecture: str = ""
    precision: str = ""
    training_data: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    calibration: Calibration | None = None
    ood: OodDetector | None = None
    logits_output: str = ""
    """The output to decide on; empty: ``logits`` (or a one-output model's only output)."""

    @property
    def needs_features(self) -> bool:
        """True when the runtime must read the model's ``features`` output (the OOD score)."""
        return self.ood is not None

    @property
    def input_size(self) -> tuple[int, int]:
        """Height, width of the model input."""
        return self.input_shape[2], self.input_shape[3]

    @property
    def model_id(self) -> str:
        """Short, stable name for verdicts: file stem plus the first 12 hex digits of its hash."""
        return f"{Path(self.model_file).stem}@{self.sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        data = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name not in _PARTS
        }
        data["labels"] = list(self.labels)
        data["input_shape"] = list(self.input_shape)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        for name in _PARTS:
            part = getattr(self, name)
            if part is not None:
                data[name] = part.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: Path | str = "<manifest>") -> ModelManifest:
        try:
            shape = tuple(int(v) for v in data["input_shape"])
            mean = tuple(float(v) for v in data["mean"])
            std = tuple(float(v) for v in data["std"])
            if len(shape) != 4 or len(mean) != 3 or len(std) != 3:
                raise ValueError("input_shape needs 4 values, mean and std 3 each")
            manifest = cls(
                model_file=str(data["model_file"]),
                sha256=str(data["sha256"]).lower(),
                labels=tuple(str(v) for v in data["labels"]),
                input_name=str(data["input_name"]),
                input_shape=(shape[0], shape[1], shape[2], shape[3]),
                mean=(mean[0], mean[1], mean[2]),
                std=(std[0], std[1], std[2]),
                decision_threshold=float(data["decision_threshold"]),
                opset=int(data["opset"]),
                architecture=str(data.get("architecture", "")),
                precision=str(data.get("precision", "")),
                training_data=str(data.get("training_data", "")),
                metrics=dict(data.get("metrics", {})),
                extra=dict(data.get("extra", {})),
                version=int(data.get("version", MANIFEST_VERSION)),
                calibration=_part(data, "calibration", Calibration.from_dict),
                ood=_part(data, "ood", OodDetector.from_dict),
                logits_output=str(data.get("logits_output", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"invalid manifest ({type(exc).__name__}: {exc})", path=source
            ) from exc
        if manifest.labels != LABELS:
            raise ModelError(
                f"manifest labels {list(manifest.labels)} are not the expected {list(LABELS)}",
                path=source,
            )
        if not 0.0 < manifest.decision_threshold < 1.0:
            raise ModelError(
                f"decision_threshold {manifest.decision_threshold} is not in (0, 1)", path=source
            )
        return manifest


_PARTS = ("calibration", "ood")


def _part(data: dict[str, Any], name: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    """An optional manifest part; its parse errors name the part."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object")
    try:
        return parse(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {type(exc).__name__}: {exc}") from exc


def manifest_path_for(model_path: Path) -> Path:
    """The manifest of ``models/x.onnx`` is ``models/x.json``."""
    return model_path.with_suffix(".json")


def load_manifest(path: Path) -> ModelManifest:
    """Read and validate a manifest file; :class:`ModelError` naming the file on any problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError("manifest not found (it must sit next to the model)", path=path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read manifest: {exc}", path=path) from exc
    if not isinstance(data, dict):
        raise ModelError("manifest is not a JSON object", path=path)
    return ModelManifest.from_dict(data, source=path)


def write_manifest(manifest: ModelManifest, path: Path) -> None:
    """Write ``manifest`` as indented JSON (diff-friendly in git)."""
    path.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
