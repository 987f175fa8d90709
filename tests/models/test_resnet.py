"""ResNet definitions match torchvision's layout, so ImageNet checkpoint files load unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.resnet import build_model, load_backbone_weights


@pytest.mark.parametrize(
    ("arch", "parameters"),
    # torchvision's documented parameter counts of resnet18 / resnet50 (1000-class head).
    [("resnet18", 11_689_512), ("resnet50", 25_557_032)],
)
def test_parameter_count_matches_torchvision(arch: str, parameters: int) -> None:
    model = build_model(arch, 1000)  # type: ignore[arg-type]
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_torchvision_names_are_used() -> None:
    names = set(build_model("resnet18", 2).state_dict())
    for name in (
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer4.1.bn2.weight",
        "fc.weight",
    ):
        assert name in names


def test_imagenet_style_checkpoint_loads_backbone_and_skips_head(tmp_path: Path) -> None:
    imagenet = build_model("resnet18", 1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = build_model("resnet18", 2)
    assert load_backbone_weights(model, path) == ["fc.weight", "fc.bias"]
    assert torch.equal(
        model.state_dict()["layer3.1.conv2.weight"], imagenet.state_dict()["layer3.1.conv2.weight"]
    )


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(build_model("resnet50", 1000).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit"):
        load_backbone_weights(build_model("resnet18", 2), path)
