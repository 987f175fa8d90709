"""Static int8 quantization: every calibration image counts, whatever the split's size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxruntime.quantization.shape_inference import quant_pre_process

from agent.vision.manifest import load_manifest, manifest_path_for
from models.batches import IMAGENET_MEAN, IMAGENET_STD
from models.export import export
from models.folders import Sample
from models.quantize import quantize_candidate
from models.resnet import build_model

SIZE = (16, 16)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A freshly initialised ResNet-18 on a 16 x 16 input, exported and pre-processed."""
    work = tmp_path_factory.mktemp("fp32")
    torch.manual_seed(0)
    checkpoint = work / "tiny.pt"
    torch.save(
        {
            "arch": "resnet18",
            "state_dict": build_model("resnet18", 2).state_dict(),
            "input_size": list(SIZE),
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        checkpoint,
    )
    fp32 = work / "tiny_fp32.onnx"
    export(checkpoint, fp32)
    prep = work / "tiny.prep.onnx"
    quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=False)
    return fp32, prep


def calibration_set(root: Path, count: int) -> list[Sample]:
    """``count`` black images, the first one white: its range must reach the quantized input."""
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(count):
        path = root / f"c{i:03d}.png"
        cv2.imwrite(str(path), np.full((16, 16, 3), 255 if i == 0 else 0, np.uint8))
        samples.append(Sample(path, i % 2))
    return samples


def input_range(model: Path) -> float:
    """Width of the float range the quantized model's input covers (scale x 255 for uint8)."""
    inits = {i.name: i for i in onnx.load(str(model)).graph.initializer}
    return float(numpy_helper.to_array(inits["input_scale"])) * 255.0


@pytest.mark.parametrize("count", [32, 64, 33])
def test_minmax_calibration_uses_every_image(
    prepared: tuple[Path, Path], tmp_path: Path, count: int
) -> None:
    # A multiple of 32 used to fail ("No data is collected."), and any other size to calibrate
    # on the images after the last multiple of 32 only, here never the white one.
    fp32, prep = prepared
    out = tmp_path / "tiny_int8.onnx"
    quantize_candidate(
        prep,
        out,
        calibration_set(tmp_path / "calib", count),
        load_manifest(manifest_path_for(fp32)),
        method="MinMax",
        data_format="u8s8-reduce-range",
    )
    black = -max(m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True))
    white = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True))
    assert input_range(out) == pytest.approx(white - black, rel=0.01)
