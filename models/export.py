"""Export a training checkpoint to ONNX (fp32) with its manifest.

The graph has a fixed 1 x 3 x H x W input: the board classifies one snapshot at a time, and a
static shape lets ONNX Runtime plan memory and fold shapes once. Two outputs: ``logits`` [1, 2]
and ``features`` [1, 512], the penultimate activations after global average pooling, which the
runtime's out-of-distribution score and ``remotair model adapt`` read. The export is checked
against torch on a random input before the file is accepted.

``python -m models.export CHECKPOINT.pt --out build/visual_clean/visual_clean_resnet18_fp32.onnx``
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.vision import LABELS
from agent.vision.manifest import ModelManifest, manifest_path_for, sha256_file, write_manifest
from models.cli import run
from models.resnet import ResNet, build_model

logger = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
FEATURES_NAME = "features"
"""Second output: the penultimate features after global average pooling (out-of-distribution
score, on-board head refits)."""


class WithFeatures(torch.nn.Module):
    """A classifier that also returns its penultimate features: the exported graph's outputs."""

    def __init__(self, model: ResNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.features(x)
        return self.model.fc(features), features


DEFAULT_THRESHOLD = 0.5


def load_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("arch", "state_dict", "input_size", "mean", "std"):
        if key not in checkpoint:
            raise ValueError(f"{path}: not a models.train checkpoint (no {key!r})")
    return checkpoint


def export(checkpoint_path: Path, out: Path, *, opset: int = OPSET) -> ModelManifest:
    """Write ``out`` (ONNX fp32) and its manifest next to it; returns the manifest."""
    if opset < 17:
        raise ValueError(f"opset {opset} < 17 is not supported")
    checkpoint = load_checkpoint(checkpoint_path)
    pool = checkpoint.get("config", {}).get("pool", "avg")  # older checkpoints averaged
    model = build_model(checkpoint["arch"], len(LABELS), pool)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    raw_size = checkpoint["input_size"]
    height, width = (raw_size, raw_size) if isinstance(raw_size, int) else map(int, raw_size)
    example = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            WithFeatures(model).eval(),
            (example,),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, FEATURES_NAME],
            do_constant_folding=True,
        )
    _check(out, model, example)
    extra: dict[str, Any] = {
        "best_epoch": checkpoint.get("best_epoch"),
        "best_val_accuracy": checkpoint.get("best_val_accuracy"),
        "train_seconds": round(float(checkpoint.get("train_seconds", 0.0)), 1),
        "train_config": checkpoint.get("config", {}),
    }
    if "averaged_from" in checkpoint:  # models.average
        extra["averaged_from"] = checkpoint["averaged_from"]
    manifest = ModelManifest(
        model_file=out.name,
        sha256=sha256_file(out),
        labels=LABELS,
        input_name=INPUT_NAME,
        input_shape=(1, 3, height, width),
        mean=tuple(checkpoint["mean"]),
        std=tuple(checkpoint["std"]),
        decision_threshold=DEFAULT_THRESHOLD,
        opset=opset,
        architecture=str(checkpoint["arch"]),
        precision="fp32",
        training_data=str(checkpoint.get("training_data", "")),
        extra=extra,
    )
    write_manifest(manifest, manifest_path_for(out))
    logger.info("exported path=%s sha256=%s", out, manifest.sha256[:12])
    return manifest


def _check(path: Path, model: torch.nn.Module, example: torch.Tensor) -> None:
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run([OUTPUT_NAME], {INPUT_NAME: example.numpy()})[0]
    with torch.no_grad():
        torch_logits = model(example).numpy()
    error = float(np.max(np.abs(onnx_logits - torch_logits)))
    if error > 1e-3 * max(1.0, float(np.max(np.abs(torch_logits)))):
        raise RuntimeError(f"{path}: ONNX output differs from torch by {error:.2e}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=OPSET)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(lambda: _main(args), parser.prog)


def _main(args: argparse.Namespace) -> int:
    manifest = export(args.checkpoint, args.out, opset=args.opset)
    print(f"{args.out} sha256={manifest.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
