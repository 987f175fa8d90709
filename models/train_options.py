"""Training options: the one place that turns ``models.train``'s command line into a
:class:`TrainConfig` (``models.pipeline`` and ``models.transfer`` take the same options), and
refuses options that cannot go together.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from agent.errors import ExitCode, RemotairError
from models.resnet import ARCHITECTURES, POOLS, Architecture, Pool

SHIPPED = "shipped"


class TrainOptionsError(RemotairError):
    """Training options that cannot go together."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything one training run is told, checked once here and passed on as is."""

    arch: Architecture = "resnet18"
    pool: Pool = "max"
    """Global pooling before the head (see models.resnet.POOLS)."""
    input_size: tuple[int, int] = (144, 192)
    """Height, width. 4:3 like the cameras, so the whole frame is seen (see MODEL_CARD.md)."""
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    seed: int = 1234
    threads: int = 2
    max_steps: int = 0
    """Stop after this many optimiser steps in total (0: no limit). For smoke tests."""
    augment: bool = True
    """Camera augmentations (colour, blur, erasing, perspective, JPEG) on top of crop and flip."""
    synthetic_dirt: float = 0.0
    """Share of clean training views painted with a synthetic deposit and trained as dirty
    (models.synthetic_dirt); 0 keeps the random stream of runs made before it existed."""
    freeze_stem: bool = False
    """Train only ``layer4`` and the head on cached ``layer3`` maps (see models.frozen_stem)."""
    views: int = 1
    """Augmented views of each training image cached for a frozen-stem run (each also mirrored)."""
    deposit_maps: bool = True
    """Add the deposit-map loss where the set has masks (see models.deposit_maps)."""
    bf16: bool = False
    """Forward and backward passes in bfloat16 autocast: about 2x faster a step where the CPU has
    AMX or AVX-512 BF16 units (slower elsewhere). Evaluation and the exported model stay fp32."""
    init_from: str = SHIPPED
    """:data:`SHIPPED` (the committed model), ``""`` (from scratch), an exported ``.onnx``
    model, or a torchvision-format state dict."""

    def __post_init__(self) -> None:
        if self.freeze_stem and self.synthetic_dirt:
            # The frozen stem caches its views once: a painted view would repeat every epoch.
            raise TrainOptionsError(
                "--synthetic-dirt trains the whole network: leave out --freeze-stem"
            )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--arch", choices=ARCHITECTURES, default=defaults.arch)
    parser.add_argument(
        "--pool", choices=POOLS, default=defaults.pool, help="global pooling before the head"
    )
    parser.add_argument(
        "--input-size",
        type=parse_size,
        default=defaults.input_size,
        metavar="HxW",
        help="model input, e.g. 144x192 (default) or 128 for 128x128",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke test)")
    parser.add_argument(
        "--freeze-stem",
        action="store_true",
        help="train only layer4 and the head on cached layer3 maps (fine-tuning; fast on a CPU)",
    )
    parser.add_argument(
        "--no-deposit-maps",
        dest="deposit_maps",
        action="store_false",
        help="train on the labels alone even where the set has deposit masks",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="train in bfloat16 autocast (about 2x faster on CPUs with AMX / AVX-512 BF16)",
    )
    parser.add_argument("--views", type=int, default=defaults.views, help="with --freeze-stem")
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="only crop, flip and brightness jitter (no blur, erasing, perspective, JPEG)",
    )
    parser.add_argument(
        "--synthetic-dirt",
        type=share,
        default=defaults.synthetic_dirt,
        metavar="SHARE",
        help="share of clean training views painted with a deposit of no renderer family and "
        "trained as dirty (models.synthetic_dirt); default %(default)s",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--init-from",
        default=SHIPPED,
        metavar="FILE",
        help="exported ONNX model (int8 or fp32) or torchvision-format state dict to start "
        "from; default: the shipped model",
    )
    start.add_argument(
        "--from-scratch",
        action="store_const",
        const="",
        dest="init_from",
        help="start from random weights instead of the shipped model",
    )


def parse_size(text: str) -> tuple[int, int]:
    """``"144x192"`` -> (144, 192); ``"128"`` -> (128, 128)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW or N, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 16:
        raise argparse.ArgumentTypeError(f"expected HxW or N (>= 16 px), got {text!r}")
    return values[0], values[1]


def share(text: str) -> float:
    """``"0.3"`` -> 0.3, a share from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        arch=args.arch,
        pool=args.pool,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        threads=args.threads,
        max_steps=args.max_steps,
        init_from=args.init_from,
        augment=args.augment,
        synthetic_dirt=args.synthetic_dirt,
        freeze_stem=args.freeze_stem,
        views=args.views,
        bf16=args.bf16,
        deposit_maps=args.deposit_maps,
    )
