"""Visual Clean benchmark: fp32 vs int8 latency, the file -> verdict path, sizes, peak RSS.

Every figure comes from this one run on this machine, ratios against a baseline measured in the
same run. Targets (issue 3): int8 >= 1.8x faster than fp32 at one thread; file -> verdict <= 1.25x
the raw int8 ``session.run``; int8 file <= 0.3x fp32; peak RSS of a process that loads the model
and classifies <= 150 MB. Also the image-quality gate's cost on a decoded frame beside the
model's on the same frame.

The fp32 model is not committed (only the int8 one ships). Pass ``--fp32`` (the pipeline leaves
it in build/visual_clean/), or the benchmark rebuilds an fp32 twin from the int8 QDQ graph: the
same graph with the weights dequantized to float and the activation quantize/dequantize pairs
removed, i.e. exactly the fp32 architecture (its weights differ by rounding, which does not change
its speed; see models/dequantize.py).

``python bench/vision.py [--fp32 FILE] [--runs 50] [--baseline OLD_INT8.onnx]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.vision.factory import shipped_model_path  # noqa: E402
from agent.vision.manifest import load_manifest, manifest_path_for  # noqa: E402
from agent.vision.onnx_backend import OnnxClassifier, create_session  # noqa: E402
from agent.vision.quality import assess  # noqa: E402
from models.dequantize import fp32_twin  # noqa: E402

DEFAULT_FP32 = ROOT / "build" / "visual_clean" / "visual_clean_resnet18_fp32.onnx"

# VmHWM (this process's own peak), not getrusage's ru_maxrss: Linux carries ru_maxrss over
# fork + exec, so a child of this (large) benchmark process would report the parent's peak.
RSS_PROBE = """
import sys
from pathlib import Path
from agent.vision.onnx_backend import OnnxClassifier
classifier = OnnxClassifier(Path(sys.argv[1]), threads=int(sys.argv[3]))
verdict = classifier.classify_file(Path(sys.argv[2]))
assert "torch" not in sys.modules and "onnx" not in sys.modules
status = open("/proc/self/status").read().split("\\n")
peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(peak_kb, verdict.label)
"""


def input_shape(model: Path) -> list[int]:
    return list(create_session(model, threads=1).get_inputs()[0].shape)


def median_ms(call: Callable[[], object], runs: int) -> float:
    for _ in range(3):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples)


def raw_latency(model: Path, tensor: np.ndarray, threads: int, runs: int) -> float:
    session = create_session(model, threads=threads)
    name = session.get_inputs()[0].name
    return median_ms(lambda: session.run(None, {name: tensor}), runs)


def peak_rss_mb(model: Path, image: Path, threads: int) -> tuple[float, str]:
    """Peak RSS and verdict of a fresh process that loads ``model`` (through its manifest, as
    the agent does) and classifies ``image``; SystemExit with the probe's last line if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(model), str(image), str(threads)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench/vision.py: error: peak RSS probe on {model} failed: {last}")
    kilobytes, label = result.stdout.split()
    return int(kilobytes) / 1024.0, label


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--int8", type=Path, default=shipped_model_path())
    parser.add_argument("--fp32", type=Path, default=DEFAULT_FP32)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another int8 model (e.g. the previous shipped one) timed in the same run",
    )
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("--runs must be >= 20")
    manifest = load_manifest(manifest_path_for(args.int8))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        fp32 = args.fp32
        fp32_note = str(fp32)
        if not fp32.is_file() or input_shape(fp32) != list(manifest.input_shape):
            fp32 = fp32_twin(args.int8, work / "fp32_twin.onnx")
            fp32_note = "fp32 twin rebuilt from the int8 graph (no matching --fp32 file)"
        from hil.render import render_duct

        snapshot = work / "snapshot_1600x1200.jpg"
        cv2.imwrite(
            str(snapshot),
            render_duct(424242, 0.7, 1600, 1200),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
        tensor = np.random.default_rng(0).standard_normal(manifest.input_shape).astype(np.float32)
        raw = {
            (precision, threads): raw_latency(path, tensor, threads, args.runs)
            for precision, path in (("fp32", fp32), ("int8", args.int8))
            for threads in (1, 2)
        }
        if args.baseline is not None:
            for threads in (1, 2):
                raw[("baseline", threads)] = raw_latency(args.baseline, tensor, threads, args.runs)
        classifier = OnnxClassifier(args.int8, threads=1)
        file_ms = median_ms(lambda: classifier.classify_file(snapshot), args.runs)
        frames = {
            "640x480": render_duct(424242, 0.7, 640, 480),
            "1600x1200": cv2.imread(str(snapshot)),
        }
        gate_ms = {
            size: (
                median_ms(partial(assess, frame), args.runs),
                median_ms(partial(classifier.classify, frame), args.runs),
            )
            for size, frame in frames.items()
        }
        rss_mb, label = peak_rss_mb(args.int8, snapshot, 1)
        baseline_rss = None if args.baseline is None else peak_rss_mb(args.baseline, snapshot, 1)
        sizes = {"fp32": fp32.stat().st_size, "int8": args.int8.stat().st_size}
    speedup = raw[("fp32", 1)] / raw[("int8", 1)]
    file_ratio = file_ms / raw[("int8", 1)]
    size_ratio = sizes["int8"] / sizes["fp32"]

    def status(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"model {manifest.model_id}  input {manifest.input_shape}  runs {args.runs}")
    print(f"fp32: {fp32_note}")
    print("raw session.run latency (median ms):")
    for threads in (1, 2):
        print(
            f"  {threads} thread(s): fp32 {raw[('fp32', threads)]:7.2f}  int8"
            f" {raw[('int8', threads)]:7.2f}  speed-up"
            f" {raw[('fp32', threads)] / raw[('int8', threads)]:.2f}x"
        )
    if args.baseline is not None:
        print(f"baseline int8: {args.baseline}")
        for threads in (1, 2):
            ratio = raw[("int8", threads)] / raw[("baseline", threads)]
            print(
                f"  {threads} thread(s): baseline {raw[('baseline', threads)]:7.2f}  this"
                f" {raw[('int8', threads)]:7.2f}  ratio {ratio:.2f}x"
            )
    print(f"file -> verdict, 2 MP JPEG, int8, 1 thread: {file_ms:.2f} ms")
    print("image-quality gate on a decoded frame (median ms; the int8 model on the same frame):")
    for size, (gate, model) in gate_ms.items():
        print(f"  {size:9s} gate {gate:6.2f}  model {model:6.2f}")
    print(f"model sizes: fp32 {sizes['fp32'] / 1e6:.1f} MB, int8 {sizes['int8'] / 1e6:.1f} MB")
    print(f"peak RSS, process that loads int8 and classifies the JPEG: {rss_mb:.0f} MB ({label})")
    if baseline_rss is not None:
        print(f"  the same with the baseline: {baseline_rss[0]:.0f} MB ({baseline_rss[1]})")
    print("targets:")
    print(f"  int8 speed-up at 1 thread {speedup:.2f}x  (>= 1.8x)  {status(speedup >= 1.8)}")
    print(f"  file->verdict / raw int8  {file_ratio:.2f}x  (<= 1.25x) {status(file_ratio <= 1.25)}")
    print(f"  int8 size / fp32 size     {size_ratio:.2f}   (<= 0.3)   {status(size_ratio <= 0.3)}")
    print(f"  peak RSS                  {rss_mb:.0f} MB  (<= 150)   {status(rss_mb <= 150)}")
    if args.baseline is not None:
        ratio = raw[("int8", 1)] / raw[("baseline", 1)]
        print(f"  raw int8 / baseline       {ratio:.2f}x  (<= 1.2x)  {status(ratio <= 1.2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
