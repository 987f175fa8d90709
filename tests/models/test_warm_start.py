"""Float weights rebuilt from the shipped int8 model: the fp32 twin and the torch warm start."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from agent.vision.factory import shipped_model_path
from agent.vision.manifest import load_manifest, manifest_path_for
from agent.vision.preprocess import to_model_input
from models.dataset import FRESH_SEED_BASE, render_sample
from models.dequantize import fp32_twin, global_pool, module_name
from models.resnet import build_model
from models.warm_start import load_shipped_weights, recalibrate_batchnorm


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """Rendered ducts, clean and dirty, prepared as the runtime does (noise would saturate the
    int8 activation ranges, which were calibrated on images)."""
    manifest = load_manifest(manifest_path_for(shipped_model_path()))
    tensors = []
    for seed in range(FRESH_SEED_BASE, FRESH_SEED_BASE + 6):
        _label, _dirt, image = render_sample(seed, width=192, height=144)
        tensors.append(to_model_input(image, manifest.input_size, manifest.mean, manifest.std))
    return np.concatenate(tensors)


@pytest.fixture(scope="module")
def int8_logits(inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(shipped_model_path()), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[None]})[0] for x in inputs])


def test_node_names_map_to_torchvision_modules() -> None:
    assert module_name("/conv1/Conv") == "conv1"
    assert module_name("/layer1/layer1.0/conv2/Conv") == "layer1.0.conv2"
    assert module_name("/layer2/layer2.0/downsample/downsample.0/Conv") == "layer2.0.downsample.0"
    assert module_name("/fc/Gemm") == "fc"


@pytest.fixture(scope="module")
def twin_logits(tmp_path_factory: pytest.TempPathFactory, inputs: np.ndarray) -> np.ndarray:
    twin = fp32_twin(shipped_model_path(), tmp_path_factory.mktemp("twin") / "twin.onnx")
    session = ort.InferenceSession(str(twin), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[None]})[0] for x in inputs])


def test_fp32_twin_computes_what_the_int8_model_approximates(
    twin_logits: np.ndarray, int8_logits: np.ndarray
) -> None:
    logits = twin_logits
    # Same decisions, logits within the int8 model's rounding (the twin keeps the Relus the
    # quantizer folded into its activation ranges; without them logits are off by ~100).
    assert np.array_equal(logits.argmax(1), int8_logits.argmax(1))
    assert np.max(np.abs(logits - int8_logits)) < 0.5


def test_torch_model_rebuilt_from_the_shipped_file_matches_it(
    inputs: np.ndarray, twin_logits: np.ndarray, int8_logits: np.ndarray
) -> None:
    expected = twin_logits
    model = build_model("resnet18", 2, global_pool(shipped_model_path()))
    load_shipped_weights(model, shipped_model_path())
    model.eval()
    with torch.no_grad():
        before = model(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(before, expected, atol=1e-3)

    # BatchNorm statistics moved to the new data: same function in eval mode, and in training
    # mode (batch statistics) nearly the same, instead of a network normalised to unit variance.
    assert recalibrate_batchnorm(model, [torch.from_numpy(inputs)]) == len(inputs)
    model.eval()
    with torch.no_grad():
        after = model(torch.from_numpy(inputs)).numpy()
        model.train()
        training = model(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(after, expected, atol=1e-3)
    assert np.array_equal(training.argmax(1), int8_logits.argmax(1))


def test_another_architecture_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="does not fit this architecture"):
        load_shipped_weights(build_model("resnet50", 2), shipped_model_path())


def test_global_pool_is_read_from_the_exported_graph() -> None:
    assert global_pool(shipped_model_path()) == "max"  # version 2; version 1 averaged
