"""Synthetic duct renderer speed: how long one ``render_duct`` takes, on one core.

The model trainer renders thousands of images, so a 640x480 render should stay well under 50 ms
(the randomised renderer, which the generator uses at 320x240, is measured too).
Figures are medians over distinct seeds (each seed is a different duct), measured in this run;
the baseline is a 640x480 JPEG encode + decode round trip on the same core, so the ratio travels
between machines better than the milliseconds do.

``python bench/render.py [--runs 20] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hil.render import render_duct  # noqa: E402
from hil.render_domain import Domain  # noqa: E402


def median_ms(work: Callable[[int], object], runs: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds of ``work(seed)`` over ``runs`` seeds.

    CPU time is what one core spends; wall time also counts waiting for a core when the machine
    is shared, so the two part when other processes are busy.
    """
    work(10_000)  # warm-up: imports, allocator, OpenCV's lazy initialisation
    wall, cpu = [], []
    for i in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        work(i)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default: 1)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    reference = render_duct(0, 0.5, 640, 480, nuisance=False)

    def jpeg_round_trip(_: int) -> object:
        _, data = cv2.imencode(".jpg", reference, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    baseline, baseline_cpu = median_ms(jpeg_round_trip, args.runs)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; medians of {args.runs}"
    )
    print(f"{'case':46s} {'wall':>9s} {'cpu':>9s}  cpu/baseline")
    print(f"{'baseline: 640x480 JPEG encode+decode':46s} {baseline:6.2f} ms {baseline_cpu:6.2f} ms")
    cases = [
        (640, 480, 0.0, True),
        (640, 480, 1.0, True),
        (640, 480, 0.5, False),
        (224, 224, 0.5, True),
        (128, 128, 0.5, True),
    ]
    for width, height, dirt, nuisance in cases:

        def render(
            seed: int, case: tuple[int, int, float, bool] = (width, height, dirt, nuisance)
        ) -> object:
            return render_duct(seed, case[2], case[0], case[1], nuisance=case[3])

        wall, cpu = median_ms(render, args.runs)
        label = f"render_duct {width}x{height} dirt={dirt:.1f} nuisance={nuisance!s:5}"
        print(f"{label:46s} {wall:6.2f} ms {cpu:6.2f} ms  {cpu / baseline_cpu:5.1f}x")
    domain = Domain()
    for width, height in ((640, 480), (320, 240)):

        def randomised(seed: int, size: tuple[int, int] = (width, height)) -> object:
            return render_duct(seed, 1.0, size[0], size[1], domain=domain)

        wall, cpu = median_ms(randomised, args.runs)
        label = f"randomised (every family) {width}x{height} dirt=1.0"
        print(f"{label:46s} {wall:6.2f} ms {cpu:6.2f} ms  {cpu / baseline_cpu:5.1f}x")
    runs = max(3, args.runs // 4)
    wall, cpu = median_ms(lambda seed: render_duct(seed, 0.5, 1640, 1232), runs)
    label = f"render_duct 1640x1232 dirt=0.5 (median of {runs})"
    print(f"{label:46s} {wall:6.2f} ms {cpu:6.2f} ms  {cpu / baseline_cpu:5.1f}x")


if __name__ == "__main__":
    main()
