"""Does starting from the shipped model pay off on a family it never saw? Measured, not assumed.

``python -m models.transfer --family flex --out build/transfer`` renders a small set of one
renderer family (``--per-class`` training images of each label, ``--val-per-class`` to
validate, ``--test-per-class`` to test, all on fresh seeds), then trains the same network
twice, from the shipped model (the default of ``models.train``) and from scratch, with the
same budget, exports both and measures them and the shipped model itself on the test images
through the runtime's path.
Prints and writes ``OUT/transfer.json``. Extra ``models.train`` options (``--lr``, ``--epochs``,
``--freeze-stem``...) go after ``--`` and apply to the fine-tuning run only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.vision.factory import shipped_model_path
from models.cli import run
from models.dataset import generate
from models.evaluate import evaluate
from models.export import export
from models.folders import list_samples
from models.train import train
from models.train_options import add_train_arguments, config_from_args

logger = logging.getLogger(__name__)

SEED_OFFSET = 5_000_000
"""Fresh scenes: no split of the default generator comes near these seeds."""


def render_family(out: Path, family: str, per_class: dict[str, int]) -> Path:
    """One family's small set (images per label and split), every split on fresh seeds."""
    from hil.render_domain import Domain

    if not (out / "test").is_dir():
        generate(
            out,
            {split: 2 * count for split, count in per_class.items()},
            domain=Domain.of(include=[family]),
            seed_offset=SEED_OFFSET,
        )
    return out


def compare(
    data: Path, out: Path, finetune_args: argparse.Namespace, scratch_args: argparse.Namespace
) -> dict[str, Any]:
    """Train both ways, export, and measure each with the shipped model on the test split."""
    test = list_samples(data / "test")
    results: dict[str, Any] = {
        "shipped, not retrained": evaluate(shipped_model_path(), test).metrics()
    }
    for name, args in (("fine-tuned from shipped", finetune_args), ("from scratch", scratch_args)):
        config = config_from_args(args)
        started = time.monotonic()
        checkpoint = out / f"{name.split()[0]}.pt"
        train(data, checkpoint, config)
        model = out / f"{checkpoint.stem}.onnx"
        export(checkpoint, model)
        results[name] = {
            **evaluate(model, test).metrics(),
            "train_seconds": round(time.monotonic() - started, 1),
            "init_from": config.init_from or "scratch",
        }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.transfer", description=__doc__)
    parser.add_argument("--family", required=True, help="renderer family, e.g. flex or rust")
    parser.add_argument("--per-class", type=int, default=50, help="training images a label")
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("build/transfer"))
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train_parser = argparse.ArgumentParser(prog="models.train options")
    add_train_arguments(train_parser)
    command = " ".join([parser.prog, *argv])
    return run(lambda: _main(args, train_parser, extra, command), parser.prog)


def _main(
    args: argparse.Namespace, train_parser: argparse.ArgumentParser, extra: list[str], command: str
) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    per_class = {"train": args.per_class, "val": args.val_per_class, "test": args.test_per_class}
    data = render_family(
        args.out / "data-{}-{train}-{val}-{test}".format(args.family, **per_class),
        args.family,
        per_class,
    )
    finetune = train_parser.parse_args(extra)
    # From scratch: the same budget, its own learning rate, nothing frozen.
    scratch = train_parser.parse_args(["--from-scratch"])
    for same in ("epochs", "batch_size", "seed", "input_size", "max_steps", "patience"):
        setattr(scratch, same, getattr(finetune, same))
    report = {
        "command": command,
        "family": args.family,
        "images_per_class": per_class,
        "results": compare(data, args.out, finetune, scratch),
    }
    (args.out / "transfer.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
