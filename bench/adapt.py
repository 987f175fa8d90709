"""``remotair model adapt`` benchmark: 100 images, wall time and peak RSS, medians of N runs.

Target (issue 9): 100 images adapt in seconds on a 2-core CPU with a peak RSS under 200 MB. The
baseline, measured in the same run, is classifying the same 100 files with the shipped model (the
feature pass adapt cannot avoid); the ratio shows what fitting, cross-validating and writing add.

The set is 50 clean ducts and 50 under a rust-brown cast (a label the shipped model does not
know, so that adapt succeeds and writes its model every run), rendered once into a temporary
folder at 320 x 240 (rendering is not timed). Each run is a fresh process through the CLI; its
peak is VmHWM read inside it (Linux carries ru_maxrss over fork + exec).

``python bench/adapt.py [--runs 3] [--images 100]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hil.render import render_duct  # noqa: E402

PROBE = """
import sys, time
from pathlib import Path
started = time.perf_counter()
if sys.argv[1] == "adapt":
    from agent.cli import main
    code = main(["model", "adapt", sys.argv[2], "--out", sys.argv[3], "--threads", "2", "--json"])
    assert code == 0, code
else:
    from agent.vision.factory import shipped_model_path
    from agent.vision.onnx_backend import OnnxClassifier
    classifier = OnnxClassifier(shipped_model_path(), threads=2)
    for path in sorted(Path(sys.argv[2]).rglob("*.jpg")):
        classifier.classify_file(path)
seconds = time.perf_counter() - started
status = open("/proc/self/status").read().split("\\n")
peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print("PROBE", seconds, peak_kb, file=sys.stderr)
"""


def make_set(root: Path, images: int) -> None:
    for label in ("clean", "dirty"):
        (root / label).mkdir(parents=True)
    cast = np.array([40, 90, 160], np.float32)
    for i in range(images // 2):
        cv2.imwrite(str(root / "clean" / f"c{i}.jpg"), render_duct(5_000_000 + i, 0.05, 320, 240))
        duct = render_duct(5_100_000 + i, 0.05, 320, 240).astype(np.float32)
        cv2.imwrite(str(root / "dirty" / f"d{i}.jpg"), (duct * 0.55 + cast * 0.45).astype(np.uint8))


def probe(*argv: str) -> tuple[float, float]:
    """Seconds inside the process (imports included) and its peak RSS in MB."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=ROOT, check=True
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("PROBE"))
    _tag, seconds, peak_kb = line.split()
    return float(seconds), int(peak_kb) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "field"
        make_set(data, args.images)
        adapt_runs, classify_runs = [], []
        for run in range(args.runs):
            started = time.perf_counter()
            adapt_runs.append((*probe("adapt", str(data), f"{tmp}/out{run}.onnx"),
                               time.perf_counter() - started))  # fmt: skip
            started = time.perf_counter()
            classify_runs.append((*probe("classify", str(data)), time.perf_counter() - started))
        report = json.loads((Path(tmp) / "out0.json").read_text())["metrics"]["cross_validated"]
    adapt_s = statistics.median(r[0] for r in adapt_runs)
    classify_s = statistics.median(r[0] for r in classify_runs)
    print(f"images: {args.images}, runs: {args.runs} (medians)")
    print(f"adapt, whole process:    {adapt_s:6.2f} s   peak RSS"
          f" {statistics.median(r[1] for r in adapt_runs):6.1f} MB")  # fmt: skip
    print(f"classify the same files: {classify_s:6.2f} s   peak RSS"
          f" {statistics.median(r[1] for r in classify_runs):6.1f} MB")  # fmt: skip
    print(f"adapt / classify: {adapt_s / classify_s:.2f}x")
    print(f"cross-validated balanced accuracy: {report['balanced_accuracy']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
