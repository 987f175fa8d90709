"""The train -> export -> quantize -> evaluate chain, end to end on a tiny synthetic set.

Tiny on purpose (48 px images, 32 px input, a few steps): it proves the tooling still fits
together, not that the model learns. The calibration split holds 32 images, a multiple of the
batch ONNX Runtime's MinMax calibrator used to drop ("No data is collected."). The shipped
model's quality is tested in tests/agent/vision/test_onnx_backend.py.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file
from agent.vision.onnx_backend import OnnxClassifier
from models import pipeline
from models.dataset import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    generate(
        root,
        {"train": 16, "val": 6, "calib": 32, "test": 6},
        width=48,
        height=36,
        render_width=64,
        render_height=48,
    )
    return root


def test_pipeline_runs_every_stage_and_writes_a_consistent_manifest(
    tiny_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    work = tmp_path / "work"
    argv = [
        str(tiny_set),
        "--out",
        str(out),
        "--work-dir",
        str(work),
        "--input-size",
        "24x32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-steps",
        "3",
        "--synthetic-dirt",
        "0.5",
        "--methods",
        "MinMax",
        "Percentile",
    ]
    assert pipeline.main(argv) == 0

    int8 = out / "visual_clean_resnet18_int8.onnx"
    fp32 = work / "visual_clean_resnet18_fp32.onnx"
    manifest = load_manifest(manifest_path_for(int8))
    assert manifest.sha256 == sha256_file(int8)
    assert manifest.input_shape == (1, 3, 24, 32)
    assert manifest.opset >= 17
    assert manifest.metrics["fp32"]["images"] == 6
    assert manifest.metrics["int8"]["images"] == 6
    confusion = manifest.metrics["int8"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == 6
    assert manifest.extra["quantization"]["calibration_images"] == 32
    assert manifest.extra["dataset"]["seed_ranges"]["test"] == [300_000, 300_006]
    # The model knows when it is unsure: calibration and OOD score fitted, features exported.
    assert manifest.calibration is not None and manifest.ood is not None
    assert manifest.metrics["uncertainty"]["images"] == 6
    assert (work / "reliability.png").is_file()
    outputs = [o.name for o in onnx.load(str(int8)).graph.output]
    assert outputs == ["logits", "features"]
    methods = [row["method"] for row in manifest.extra["calibration_comparison"]]
    assert methods == ["MinMax", "Percentile"]
    # Really quantized: QDQ nodes with int8 weights, and much smaller than fp32.
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    pools = [n.op_type for n in onnx.load(str(int8)).graph.node if "Pool" in n.op_type]
    assert pools == ["MaxPool", "MaxPool"]  # the stem's, and the default --pool max before fc
    assert int8.stat().st_size < 0.35 * fp32.stat().st_size
    # The runtime accepts what the pipeline wrote.
    classifier = OnnxClassifier(int8, threads=1)
    verdict = classifier.classify_file(next((tiny_set / "test" / "dirty").glob("*.jpg")))
    assert verdict.label in ("clean", "dirty", "uncertain")  # a few steps: it may well be unsure
    assert verdict.model_id == manifest.model_id

    # --checkpoint: the remaining stages on what models.train wrote, to the same fp32 network.
    again = tmp_path / "again"
    checkpoint = work / "visual_clean_resnet18.pt"
    recipe = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]
    assert recipe["synthetic_dirt"] == 0.5  # the painted views were trained, and it is on record
    rerun = [*argv[:1], "--out", str(again), "--work-dir", str(tmp_path / "w2")]
    assert pipeline.main([*rerun, "--checkpoint", str(checkpoint), "--methods", "MinMax"]) == 0
    refit = load_manifest(manifest_path_for(again / int8.name))
    assert refit.extra["best_epoch"] == manifest.extra["best_epoch"]
    assert sha256_file(tmp_path / "w2" / fp32.name) == sha256_file(fp32)


def test_train_refuses_a_set_without_a_label_folder(tmp_path: Path) -> None:
    from models.folders import DatasetError
    from models.train import train
    from models.train_options import TrainConfig

    (tmp_path / "clean").mkdir()
    with pytest.raises(DatasetError, match="dirty"):
        train(tmp_path, tmp_path / "x.pt", TrainConfig(input_size=(32, 32), max_steps=1))
