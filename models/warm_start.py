"""Start training from the shipped model, offline, with nothing but the committed int8 file.

The shipped ONNX graph holds every weight (int8 with per-channel scales, see
:mod:`models.dequantize`), but not the BatchNorm layers: ONNX Runtime's quantization
pre-processing folded each one into the convolution before it (``W' = W * gamma / sigma``,
``b' = beta - mu * gamma / sigma``). :func:`load_shipped_weights` puts the folded convolution back
into the torch ResNet with an identity BatchNorm that carries the folded bias, which reproduces
the shipped network exactly in eval mode.

Training mode is different: BatchNorm then normalises with each batch's own statistics, and an
identity BatchNorm (mean 0, variance 1) would rescale every activation of the pretrained network
to unit variance, wiping out what it learned. :func:`recalibrate_batchnorm` therefore measures the
per-channel mean and variance of every convolution's output on the new training images and moves
them into the BatchNorm (``mu = m``, ``var = v``, ``gamma = sqrt(v + eps)``, ``beta = b + m``): the
eval-mode function is unchanged, and a training batch now normalises to what the network computed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from models.dequantize import float_weights
from models.resnet import ResNet

logger = logging.getLogger(__name__)


def _batchnorm_for(conv_name: str) -> str:
    """``layer1.0.conv2`` -> ``layer1.0.bn2``; ``layer2.0.downsample.0`` -> ``...downsample.1``."""
    parent, _, leaf = conv_name.rpartition(".")
    if leaf == "0" and parent.endswith("downsample"):
        return f"{parent}.1"
    if leaf.startswith("conv"):
        bn = "bn" + leaf[len("conv") :]
        return f"{parent}.{bn}" if parent else bn
    raise ValueError(f"no BatchNorm follows {conv_name!r} in a torchvision ResNet")


def load_shipped_weights(model: ResNet, onnx_model: Path) -> None:
    """Load an exported (int8 QDQ or fp32, BatchNorm folded) ResNet into ``model``.

    Raises ``ValueError`` naming the first tensor that does not fit (another architecture).
    """
    weights = float_weights(onnx_model)
    state = model.state_dict()
    loaded: dict[str, Tensor] = {}
    for name, array in weights.items():
        module, _, kind = name.rpartition(".")
        if module == "fc":
            loaded[name] = torch.from_numpy(array)
            continue
        if kind == "weight":
            loaded[name] = torch.from_numpy(array)
            continue
        bn = _batchnorm_for(module)
        channels = array.shape[0]
        loaded[f"{bn}.bias"] = torch.from_numpy(array)
        loaded[f"{bn}.weight"] = torch.ones(channels)
        loaded[f"{bn}.running_mean"] = torch.zeros(channels)
        eps = _batchnorm(model, bn).eps
        loaded[f"{bn}.running_var"] = torch.full((channels,), 1.0 - eps)
    for name, tensor in loaded.items():
        if name not in state or tuple(state[name].shape) != tuple(tensor.shape):
            expected = tuple(state[name].shape) if name in state else "nothing"
            raise ValueError(
                f"{onnx_model}: {name} {tuple(tensor.shape)} does not fit this architecture "
                f"(expects {expected})"
            )
    missing = [
        name for name in state if name not in loaded and not name.endswith("num_batches_tracked")
    ]
    if missing:
        raise ValueError(f"{onnx_model}: does not fit this architecture (missing {missing[:3]})")
    model.load_state_dict(loaded, strict=False)
    logger.info("init_from shipped model=%s tensors=%d", onnx_model, len(loaded))


def _batchnorm(model: nn.Module, name: str) -> nn.BatchNorm2d:
    module = model.get_submodule(name)
    if not isinstance(module, nn.BatchNorm2d):
        raise ValueError(f"{name} is not a BatchNorm2d")
    return module


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Move each BatchNorm's statistics to those of its input on ``batches`` (eval output kept).

    Returns the number of images measured.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums: dict[int, Tensor] = {}
    squares: dict[int, Tensor] = {}
    counts: dict[int, int] = {}

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
        x = inputs[0].double()
        key = id(module)
        sums[key] = sums.get(key, torch.zeros(x.shape[1], dtype=torch.float64)) + x.sum((0, 2, 3))
        squares[key] = squares.get(key, torch.zeros(x.shape[1], dtype=torch.float64)) + (x * x).sum(
            (0, 2, 3)
        )
        counts[key] = counts.get(key, 0) + x.shape[0] * x.shape[2] * x.shape[3]

    handles = [norm.register_forward_hook(hook) for norm in norms]
    was_training = model.training
    model.eval()
    images = 0
    try:
        for batch in batches:
            model(batch)
            images += batch.shape[0]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not images:
        return 0
    for norm in norms:
        key = id(norm)
        mean = sums[key] / counts[key]
        var = torch.clamp(squares[key] / counts[key] - mean * mean, min=0.0)
        assert norm.running_mean is not None and norm.running_var is not None
        old_scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
        old_shift = norm.bias.double() - norm.running_mean.double() * old_scale
        # Keep y = old_scale * x + old_shift with the new statistics:
        # y = gamma * (x - mean) / sqrt(var + eps) + beta.
        gamma = old_scale * torch.sqrt(var + norm.eps)
        beta = old_shift + old_scale * mean
        norm.running_mean.copy_(mean.float())
        norm.running_var.copy_(var.float())
        norm.weight.copy_(gamma.float())
        norm.bias.copy_(beta.float())
    return images
