"""ResNet-18 and ResNet-50, written out with torchvision's parameter names.

torchvision is not a dependency (it is heavy, and the board never trains), yet a user who holds a
torchvision ImageNet checkpoint file should be able to start from it: the module tree here
(``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``layer4.1.downsample.0``, ``fc``) matches torchvision's
``resnet18``/``resnet50`` one to one, so ``load_state_dict`` takes such a file unchanged. Only the
classifier head differs in size; :func:`load_backbone_weights` drops it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

Architecture = Literal["resnet18", "resnet50"]
ARCHITECTURES: tuple[Architecture, ...] = ("resnet18", "resnet50")
Pool = Literal["avg", "max"]
POOLS: tuple[Pool, ...] = ("avg", "max")
"""Global pooling before the head. torchvision averages; a maximum lets one dirty patch of the
duct decide, which is what "is there a deposit anywhere" asks (and it learns it in fewer steps)."""


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + identity)
        return result


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 bottleneck with the stride on the 3x3 (torchvision's "ResNet V1.5")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: Tensor = self.relu(out + identity)
        return result


class ResNet(nn.Module):
    """The ImageNet ResNet topology with a ``num_classes`` head."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int,
        pool: Pool = "avg",
    ):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.pool: nn.Module = (
            nn.AdaptiveMaxPool2d((1, 1)) if pool == "max" else nn.AdaptiveAvgPool2d((1, 1))
        )
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Zero the last BN of each residual branch: every block starts as identity, which makes
        # from-scratch training on a small data set markedly more stable.
        for module in self.modules():
            if isinstance(module, Bottleneck):
                nn.init.zeros_(module.bn3.weight)
            elif isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers.extend(block(self.inplanes, planes, 1, None) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def stem(self, x: Tensor) -> Tensor:
        """Layers up to and including ``layer3``: what frozen-backbone runs cache."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out: Tensor = self.layer3(self.layer2(self.layer1(x)))
        return out

    def head_features(self, x: Tensor) -> Tensor:
        """``layer4`` and the global pooling on :meth:`stem`'s output: the penultimate
        features (the ONNX model's ``features`` output, used for the out-of-distribution score)."""
        return torch.flatten(self.pool(self.layer4(x)), 1)

    def features(self, x: Tensor) -> Tensor:
        return self.head_features(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.fc(self.features(x))
        return logits


def build_model(arch: Architecture, num_classes: int, pool: Pool = "avg") -> ResNet:
    """A freshly initialised ResNet-18 or ResNet-50 with a ``num_classes`` head."""
    if arch == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, pool)
    if arch == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, pool)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHITECTURES}")


def load_backbone_weights(model: ResNet, checkpoint: Path) -> list[str]:
    """Load a torchvision-style state dict (e.g. ImageNet weights) into ``model``.

    Every backbone tensor must be present with the same shape, else this raises: a silent partial
    load would train "from ImageNet" while really starting from noise. The ``fc`` head is taken only
    when its shape matches (an ImageNet head has 1000 classes); the names it skipped are returned.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: not a state dict")
    own = model.state_dict()
    skipped = [
        name
        for name in ("fc.weight", "fc.bias")
        if name in state and state[name].shape != own[name].shape
    ]
    for name in skipped:
        del state[name]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even with strict=False
        first = str(exc).strip().splitlines()[:2]
        raise ValueError(
            f"{checkpoint}: does not fit this architecture ({' '.join(first)})"
        ) from exc
    missing_backbone = [name for name in missing if not name.startswith("fc.")]
    if missing_backbone or unexpected:
        raise ValueError(
            f"{checkpoint}: does not fit this architecture "
            f"(missing={missing_backbone[:5]}, unexpected={list(unexpected)[:5]})"
        )
    logger.info("init_from file=%s skipped=%s", checkpoint, skipped)
    return skipped
