"""Training step benchmark: one ResNet-18 optimiser step on a 32-image batch at the model's
144 x 192 input, fp32 against bfloat16 autocast (``models.train --bf16``), interleaved in one run.

bfloat16 pays off only where the CPU has matrix units for it (Intel AMX, AVX-512 BF16); elsewhere
it may be slower than fp32. The ratio printed is for this machine; compare only within one run.

``python bench/train_step.py [--steps 6] [--rounds 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.resnet import build_model  # noqa: E402


def step_seconds(bf16: bool, steps: int, model: torch.nn.Module) -> list[float]:
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = torch.randn(32, 3, 144, 192, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(1))
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(inputs).float(), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        times.append(time.perf_counter() - started)
    return times[1:]  # the first step of each round warms up the kernels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model("resnet18", 2, "max").train()
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for name in times:
            times[name] += step_seconds(name == "bf16", args.steps, model)
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"fp32 step  median {fp32 * 1000:7.0f} ms  ({32 / fp32:5.1f} images/s)")
    print(f"bf16 step  median {bf16 * 1000:7.0f} ms  ({32 / bf16:5.1f} images/s)")
    print(f"bf16 speed-up: {fp32 / bf16:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
