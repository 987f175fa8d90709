"""Installing the shipped model over MQTT from a loopback URL: time, and the agent's added RSS.

A real agent process (simulated board, the shipped model running, a private Mosquitto) receives
``cmd/model_install`` for a signed release of the shipped model served by a loopback HTTP server
(``hil.model_server``), and the time from publishing the command to its result is measured, the
whole install: signature checks, free-space check, download, sha256, copy into the store, load in
ONNX Runtime, the reference images, the switch and the agent's own reload. Each repeat installs a
new variant of the shipped model (same weights, a different ``doc_string``, so a different sha256
and a higher version). The baseline, measured in the same run against the same server, is a plain
HTTP download of the same file into memory.

The agent's RSS (``/proc/<pid>/status`` VmRSS, sampled every 10 ms) is taken as the median over
the second before each install and as the peak during it; "added" is peak minus before.
Medians over the repeats.

    .venv/bin/python bench/model_install.py [--repeats 4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.cli.model.signing import sign_model  # noqa: E402
from agent.models.signing import (  # noqa: E402
    dev_public_key_path,
    generate_keypair,
    load_private_key,
)
from agent.vision.factory import shipped_model_path  # noqa: E402
from agent.vision.manifest import manifest_path_for  # noqa: E402
from hil.broker import LocalBroker  # noqa: E402
from hil.model_server import ModelServer  # noqa: E402

DEVICE = "bench-install"
CONFIG = """
[device]
id = "{device}"

[board]
kind = "sim"

[mqtt]
host = "127.0.0.1"
port = {port}

[schedule]
sensor_interval_s = 5
snapshot_interval_s = 1000000
status_interval_s = 300

[storage]
dir = "{storage}"

[vision]
backend = "onnx"

[models]
trusted_keys = ["{key}", "{dev_key}"]

[control]
socket = "{storage}/control.sock"

[logging]
level = "warning"
"""


def variants(directory: Path, key_path: Path, count: int) -> list[dict[str, Any]]:
    """``count`` signed releases of the shipped model, each with its own sha256 and version."""
    key = load_private_key(key_path)
    shipped = shipped_model_path()
    releases = []
    for i in range(count):
        folder = directory / f"v{i + 2}"
        folder.mkdir()
        model = onnx.load(str(shipped))
        model.doc_string = f"benchmark variant {i}"
        target = folder / shipped.name
        onnx.save(model, str(target))
        manifest = json.loads(manifest_path_for(shipped).read_text())
        manifest["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
        manifest_path_for(target).write_text(json.dumps(manifest))
        signed = sign_model(target, key, version=i + 2, now=datetime.now(UTC), expires_days=1)
        releases.append({"manifest": signed, "path": f"v{i + 2}/{shipped.name}"})
    return releases


class RssSampler:
    """VmRSS of ``pid`` every 10 ms, with the time of each sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.wait(0.01):
            try:
                text = status.read_text()
            except FileNotFoundError:
                return  # the agent has exited
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.monotonic(), int(line.split()[1]) / 1024))

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def between(self, start: float, end: float) -> list[float]:
        return [mb for at, mb in list(self.samples) if start <= at <= end]


class Results:
    """Collects ``result/model_install`` answers by id."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self.online = threading.Event()
        self._cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda c, *a: c.subscribe(f"remotair/v1/{DEVICE}/#", qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        if msg.topic.endswith("/status") and body.get("state") == "online":
            self.online.set()
        if msg.topic.endswith("/result/model_install"):
            with self._cond:
                self.answers[str(body["id"])] = body
                self._cond.notify_all()

    def wait(self, request_id: str, timeout: float) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self.answers, timeout):
                raise SystemExit(f"no result for {request_id} within {timeout} s")
            return self.answers[request_id]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=4, help="installs (cmd/model_install allows 4 a minute)"
    )
    args = parser.parse_args()
    if not 1 <= args.repeats <= 4:
        parser.error("--repeats must be 1-4: the agent takes at most 4 installs a minute")
    work = Path(tempfile.mkdtemp(prefix="bench-install-"))
    broker = LocalBroker(work / "broker")
    broker.start()
    agent: subprocess.Popen[bytes] | None = None
    try:
        _, public = generate_keypair(work / "keys")
        served = work / "served"
        served.mkdir()
        releases = variants(served, work / "keys" / "signing.key", args.repeats)
        size_mb = (served / releases[0]["path"]).stat().st_size / 1024 / 1024
        config = work / "agent.toml"
        config.write_text(
            CONFIG.format(
                device=DEVICE,
                port=broker.port,
                storage=work / "state",
                key=public,
                dev_key=dev_public_key_path(),  # signed the shipped model, which runs meanwhile
            )
        )
        results = Results(broker.port)
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config)], cwd=ROOT
        )
        if not results.online.wait(60):
            raise SystemExit("the agent did not come online within 60 s")
        time.sleep(3)  # its first sensor round and snapshots are over
        sampler = RssSampler(agent.pid).start()
        publisher = results.client
        installs, downloads, added, before_mb = [], [], [], []
        with ModelServer(served) as server:
            for i, release in enumerate(releases):
                url = server.url(release["path"])
                started = time.perf_counter()
                with urllib.request.urlopen(url, timeout=30) as response:
                    response.read()
                downloads.append(time.perf_counter() - started)
                time.sleep(1.0)
                quiet_end = time.monotonic()
                request_id = f"bench-{i}"
                body = {"id": request_id, "manifest": release["manifest"], "url": url}
                sent = time.monotonic()
                publisher.publish(
                    f"remotair/v1/{DEVICE}/cmd/model_install", json.dumps(body), qos=1
                )
                answer = results.wait(request_id, timeout=120)
                done = time.monotonic()
                if not answer.get("ok"):
                    raise SystemExit(f"install {request_id} failed: {answer.get('error')}")
                installs.append(done - sent)
                before = statistics.median(sampler.between(quiet_end - 1.0, quiet_end))
                peak = max(sampler.between(sent, done))
                before_mb.append(before)
                added.append(peak - before)
        sampler.stop()
        install_s, download_s = statistics.median(installs), statistics.median(downloads)
        print(f"model: {shipped_model_path().name} ({size_mb:.1f} MB), {args.repeats} installs")
        print(f"install over MQTT, loopback URL: median {install_s:.2f} s"
              f" (min {min(installs):.2f}, max {max(installs):.2f})")  # fmt: skip
        print(f"plain HTTP download (baseline):  median {download_s * 1000:.0f} ms")
        print(f"ratio install / download:        {install_s / download_s:.0f}x")
        print(f"agent RSS before an install:     median {statistics.median(before_mb):.0f} MB")
        print(f"agent RSS added during install:  median {statistics.median(added):.0f} MB"
              f" (max {max(added):.0f} MB)")  # fmt: skip
        return 0
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=20)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
