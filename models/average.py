"""Average the weights of checkpoints from one fine-tuning trajectory into one checkpoint.

Successive stages of :mod:`models.train` (each ``--init-from`` the last) end at nearby points of
the same loss valley; their mean usually lies nearer its floor than any of them ("model soup" /
stochastic weight averaging); the model card measures what it gave the shipped model. The average
is only meaningful for checkpoints of one architecture that share an ancestor: unrelated networks
have permuted channels, and their mean is noise.

Every floating-point tensor is averaged, the batch-norm running statistics included (they move
with the weights along one trajectory); integer counters are the first checkpoint's. The deposit
head (training only, :mod:`models.deposit_maps`) is averaged as well when every checkpoint has
one. The architecture, input size, normalisation and labels must agree across all of them; the
rest is the first checkpoint's, except ``train_seconds`` (the sum: the training that went into
the mean) and ``averaged_from`` (the files, which the exported manifest names).

``python -m models.average A.pt B.pt [C.pt ...] --out MEAN.pt``
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agent.errors import ExitCode, RemotairError
from models.cli import run
from models.deposit_maps import DEPOSIT_HEAD_KEY
from models.export import load_checkpoint

logger = logging.getLogger(__name__)

MUST_AGREE = ("arch", "input_size", "mean", "std", "labels")
"""Checkpoint fields that make two networks the same function of the same input."""


class AverageError(RemotairError, ValueError):
    """The checkpoints cannot be averaged; the message names the one that differs and how."""

    exit_code = ExitCode.USAGE


def mean_state(states: Sequence[Mapping[str, torch.Tensor]], what: str) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors; non-floating tensors from the first state."""
    keys = list(states[0])
    for index, state in enumerate(states[1:], start=2):
        if list(state) != keys:
            raise AverageError(f"{what} of checkpoint {index} has other tensors than the first")
    mean: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [state[key] for state in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise AverageError(f"{what} tensor {key!r} differs in shape between the checkpoints")
        if tensors[0].is_floating_point():
            mean[key] = torch.stack([t.float() for t in tensors]).mean(0).to(tensors[0].dtype)
        else:
            mean[key] = tensors[0].clone()
    return mean


def average(paths: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write the mean of ``paths`` (models.train checkpoints) to ``out``; returns the new one."""
    if len(paths) < 2:
        raise AverageError("give at least two checkpoints to average")
    checkpoints = [load_checkpoint(path) for path in paths]
    first = checkpoints[0]
    for path, checkpoint in zip(paths[1:], checkpoints[1:], strict=True):
        for field in MUST_AGREE:
            if checkpoint.get(field) != first.get(field):
                raise AverageError(
                    f"{path}: {field} {checkpoint.get(field)!r} differs from {paths[0]}'s "
                    f"{first.get(field)!r}; average checkpoints of one training lineage only"
                )
    result = dict(first)
    result["state_dict"] = mean_state([c["state_dict"] for c in checkpoints], "state_dict")
    heads = [c.get(DEPOSIT_HEAD_KEY) for c in checkpoints]
    if all(head is not None for head in heads):
        result[DEPOSIT_HEAD_KEY] = mean_state([h for h in heads if h is not None], "deposit head")
    else:
        result.pop(DEPOSIT_HEAD_KEY, None)
    result["averaged_from"] = [str(path) for path in paths]
    result["train_seconds"] = sum(float(c.get("train_seconds", 0.0)) for c in checkpoints)
    for stale in ("best_epoch", "best_val_accuracy", "history"):
        result.pop(stale, None)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, out)
    logger.info("averaged checkpoints=%d out=%s", len(paths), out)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.average", description=__doc__)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="models.train checkpoints")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def _main() -> int:
        average(args.checkpoints, args.out)
        print(json.dumps({"checkpoint": str(args.out), "averaged_from": len(args.checkpoints)}))
        return 0

    return run(_main, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())
