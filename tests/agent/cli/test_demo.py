"""The README's first command: ``remotair demo`` shows the agent's messages flowing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_prints_telemetry_verdicts_and_a_gapless_summary(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "demo",
            "--duration",
            "8",
            "--sensor-interval",
            "0.5",
            "--snapshot-interval",
            "2",
            "--storage",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    assert re.search(r"#\d+\s+telemetry\s+bme280\[", out)
    assert re.search(r"#\d+\s+vision/upstream\s+upstream: (CLEAN|DIRTY)", out)
    assert re.search(r"#\d+\s+vision/downstream\s+downstream: DIRTY", out), "the soiled camera"
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"received: .*telemetry.*; seq 1\.\.\d+, gaps: 0", summary), summary
    assert list((tmp_path / "state" / "snapshots").glob("upstream-*.jpg"))
