"""The board runs ONNX Runtime only: the agent's vision code must not pull in training or cloud
libraries unless the backend that needs them is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import sys
import agent.cli.classify, agent.cli.dataset
import agent.vision.cascade, agent.vision.factory, agent.vision.onnx_backend
import agent.vision.rekognition, agent.vision.preprocess, agent.vision.manifest
heavy = sorted(m for m in ("torch", "onnx", "boto3", "botocore") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_no_heavy_imports_at_import_time() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"
