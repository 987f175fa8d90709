"""The frozen-stem fine-tuning recipe (only layer4 and the head learn, on cached maps), the
exported outputs it relies on, and the camera augmentations."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from models.augment import camera_augment
from models.export import WithFeatures
from models.frozen_stem import Head, head_outputs, merged, stem_features, train_head
from models.resnet import build_model
from tests.models.conftest import SetWriter

SIZE = (1, 3, 48, 64)


def _trained_like(seed: int) -> torch.nn.Module:
    """A ResNet-18 with non-trivial BatchNorm statistics, as after training."""
    torch.manual_seed(seed)
    model = build_model("resnet18", 2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, *SIZE[1:]) * 2 + 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _export(model: torch.nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            WithFeatures(model).eval(),  # type: ignore[arg-type]
            (torch.zeros(SIZE),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits", "features"],
        )


def test_export_has_logits_and_penultimate_features(tmp_path: Path) -> None:
    model = _trained_like(0)
    path = tmp_path / "model.onnx"
    _export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "features"]
    x = torch.randn(1, *SIZE[1:])
    logits, features = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert np.allclose(features, model.features(x).numpy(), atol=1e-4)
        assert np.allclose(logits, model(x).numpy(), atol=1e-4)


def test_frozen_stem_training_writes_a_checkpoint_that_exports(
    tmp_path: Path, label_folders: SetWriter
) -> None:
    from models.export import export
    from models.train import train
    from models.train_options import TrainConfig

    data = tmp_path / "data"
    for split, count in (("train", 6), ("val", 3), ("test", 3)):
        label_folders(data / split, count, count, start=100 * len(split), size=32)
    config = TrainConfig(
        input_size=(32, 32), epochs=1, batch_size=4, init_from="", freeze_stem=True, views=2
    )
    result = train(data, tmp_path / "model.pt", config)
    assert result.best_epoch == 1
    manifest = export(result.checkpoint, tmp_path / "model.onnx")
    assert manifest.input_shape == (1, 3, 32, 32)


def test_frozen_stem_training_changes_only_layer4_and_the_head() -> None:
    base = _trained_like(2)
    images = torch.randn(12, *SIZE[1:])
    labels = np.array([0, 1] * 6)
    stems = stem_features(base, [images], frozen_blocks=1)
    head = train_head(base, stems, labels, epochs=2, lr=1e-2, batch_size=6, frozen_blocks=1)
    model = merged(base, head)
    for name, value in model.state_dict().items():
        changed = not torch.equal(value, base.state_dict()[name])
        if name.startswith(("fc.", "layer4.1.")) and name.endswith("weight"):
            assert changed, name
        elif not name.startswith(("fc.", "layer4.1.")):
            assert not changed, name
    logits, features = head_outputs(head, stems)
    model.eval()
    with torch.no_grad():
        assert np.allclose(model(images).numpy(), logits, atol=2e-2)
    assert features.shape == (12, 512)
    assert isinstance(head, Head)


def test_camera_augment_keeps_size_and_type_and_varies() -> None:
    rng = np.random.default_rng(0)
    image = (np.random.default_rng(1).random((36, 48, 3)) * 255).astype(np.uint8)
    outputs = [camera_augment(image, rng) for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outputs)
    assert len({o.tobytes() for o in outputs}) == 8
