"""The technician's commands through the real console script, against a running agent.

One agent runs on the simulated board for the module (fast intervals, a real Mosquitto); the
failures doctor must catch are built for real: an unplugged chip, a dead camera, a closed broker
port, a broker whose TLS certificate has expired.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.broker import LocalBroker, free_port
from hil.pki import make_expired_certificate
from tests.support.waiting import wait_until

CLI_POLL_S = 0.2
"""Pause between two polls that each start a CLI process."""

pytestmark = pytest.mark.timeout(120)

DEFAULT_SENSORS = ("bme280", "sht41", "scd41", "scd30", "filter_dp", "mhz19", "s8")


def remotair_command() -> list[str]:
    script = Path(sys.executable).with_name("remotair")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def cli(*args: str | Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMOTAIR_", "RUNTIME_D"))}
    env.pop("STATE_DIRECTORY", None)
    return subprocess.run(
        [*remotair_command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def write_config(
    directory: Path, *, port: int, extra: str = "", board: str | None = None, device: str = "t1"
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    board_section = board or '[board]\nkind = "sim"\nsim_speed = 20\n'
    text = f"""
[device]
id = "{device}"
{board_section}
[schedule]
sensor_interval_s = 0.5
snapshot_interval_s = 1.5
status_interval_s = 5
[storage]
dir = "{directory / "state"}"
[control]
socket = "{directory / "control.sock"}"
[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_min_s = 0.2
reconnect_max_s = 1
handshake_timeout_s = 2
{extra}
[vision]
backend = "off"
"""
    path = directory / "agent.toml"
    path.write_text(text)
    return path


def status_json(config: Path) -> dict[str, Any] | None:
    """The running agent's status; None while it does not answer (not up yet, or a busy
    machine made the 3 s answer timeout: status then prints nothing on stdout)."""
    done = cli("status", "--config", config, "--json")
    if done.returncode != 0:
        return None
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


class RunningAgent:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [*remotair_command(), "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> dict[str, Any]:
        def sampled() -> dict[str, Any] | None:
            assert self.process.poll() is None, self.log.read_text()
            doc = status_json(self.config)
            if doc and all(s["age_s"] is not None for s in doc["sensors"].values()):
                return doc
            return None

        result: dict[str, Any] = wait_until(
            sampled, 30, "the agent's first sensor round", poll_s=CLI_POLL_S
        )
        return result

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Unix socket paths must stay under ~108 bytes: pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="rt-cli-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def broker(workdir: Path) -> Iterator[LocalBroker]:
    with LocalBroker(workdir / "broker") as running:
        yield running


@pytest.fixture(scope="module")
def agent(workdir: Path, broker: LocalBroker) -> Iterator[RunningAgent]:
    config = write_config(workdir / "agent", port=broker.port)
    running = RunningAgent(config, workdir / "agent.log")
    try:
        running.wait_ready()
        yield running
    finally:
        assert running.stop() == 0


# -- status and doctor on a healthy board ---------------------------------------------------


def test_status_shows_the_running_agent(agent: RunningAgent) -> None:
    wait_until(
        lambda: (status_json(agent.config) or {}).get("broker", {}).get("connected"),
        15,
        "the agent's broker connection",
        poll_s=CLI_POLL_S,
    )
    done = cli("status", "--config", agent.config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("agent:    running, up ")
    assert any(line.startswith("device:   t1  board: sim") for line in lines)
    assert any(line.startswith("broker:   connected since ") for line in lines)
    for name in DEFAULT_SENSORS:
        row = next(line for line in lines if line.startswith(f"{name} "))
        assert row.rstrip().endswith("ok"), row
    for camera in ("upstream", "downstream"):
        assert any(line.startswith(f"{camera} ") for line in lines)
    assert "alarms:   none active" in lines


def test_doctor_passes_on_a_healthy_board(agent: RunningAgent) -> None:
    done = cli("doctor", "--config", agent.config)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    for name in DEFAULT_SENSORS:
        group = "uart" if name in ("mhz19", "s8") else "chips"
        assert any(line.startswith(f"PASS  {group}/{name} ") for line in lines), name
    for check in (
        "cameras/upstream",
        "broker/dns",
        "broker/tcp",
        "broker/mqtt",
        "agent/running",
        "agent/broker link",
        "agent/hardware",
    ):
        assert any(line.startswith(f"PASS  {check} ") for line in lines), check
    assert not any(line.startswith("FAIL") for line in lines)
    assert lines[-1].endswith(" 0 failed")


def test_doctor_json(agent: RunningAgent) -> None:
    done = cli("doctor", "--config", agent.config, "--json")
    report = json.loads(done.stdout)
    assert report["ok"] is True and done.returncode == 0
    statuses = {f"{c['group']}/{c['name']}": c["status"] for c in report["checks"]}
    assert statuses["broker/mqtt"] == "PASS"
    assert report["counts"]["FAIL"] == 0
    assert sum(report["counts"].values()) == len(report["checks"])


def test_outbox_via_the_agent(agent: RunningAgent) -> None:
    done = cli("outbox", "--config", agent.config, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["source"] == "agent"
    assert report["next_seq"] > 1  # the agent has been publishing
    assert report["set_aside"] == 0 and report["set_aside_messages"] == []


# -- breaking the running agent's simulated board ---------------------------------------------


def test_an_unplugged_sensor_is_named_by_status_alarms_and_doctor(agent: RunningAgent) -> None:
    done = cli("sim", "unplug", "scd41", "--config", agent.config)
    assert done.returncode == 0 and done.stdout.strip() == "sensor scd41: unplugged"
    try:
        wait_until(
            lambda: (
                not (status_json(agent.config) or {"sensors": {"scd41": {"ok": True}}})["sensors"][
                    "scd41"
                ]["ok"]
            ),
            10,
            "the agent to see scd41 fail",
            poll_s=CLI_POLL_S,
        )
        status = cli("status", "--config", agent.config).stdout.splitlines()
        row = next(line for line in status if line.startswith("scd41 "))
        assert "FAIL: no answer on the bus" in row

        wait_until(
            lambda: "sensor_fault_scd41" in cli("alarms", "--config", agent.config).stdout,
            10,
            "the sensor fault alarm",
            poll_s=CLI_POLL_S,
        )
        alarms = cli("alarms", "--config", agent.config, "--json")
        report = json.loads(alarms.stdout)
        assert report["source"] == "agent"
        assert [a["name"] for a in report["active"]] == ["sensor_fault_scd41"]
        assert report["recent"][-1]["state"] == "raised"

        doctor = cli("doctor", "--config", agent.config)
        assert doctor.returncode == 1
        assert any(
            line.startswith("FAIL  agent/sensor scd41 ") and "no answer" in line
            for line in doctor.stdout.splitlines()
        )
    finally:
        assert cli("sim", "plug", "scd41", "--config", agent.config).returncode == 0
    wait_until(
        lambda: (status_json(agent.config) or {}).get("sensors", {}).get("scd41", {}).get("ok"),
        10,
        "scd41 to come back",
        poll_s=CLI_POLL_S,
    )


def test_sim_names_an_unknown_part(agent: RunningAgent) -> None:
    done = cli("sim", "unplug", "nosuch", "--config", agent.config)
    assert done.returncode == 1
    assert "no simulated sensor or camera 'nosuch'" in done.stderr
    assert "Traceback" not in done.stderr


# -- doctor's failures on its own simulated board ---------------------------------------------


def test_doctor_catches_a_missing_chip_and_a_dead_camera(workdir: Path) -> None:
    config = write_config(workdir / "closed", port=free_port())
    done = cli("doctor", "--config", config, "--sim", "--unplug", "scd41", "--unplug", "upstream")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    scd = next(line for line in lines if line.startswith("FAIL  chips/scd41 "))
    assert "scd4x at i2c-1 0x62" in scd and "no answer" in scd
    assert any(line.startswith("FAIL  cameras/upstream ") for line in lines)
    assert any(line.startswith("PASS  cameras/downstream ") for line in lines)
    assert any(line.startswith("PASS  chips/scd30 ") for line in lines)
    # Every failure carries its hint on the next line.
    for i, line in enumerate(lines):
        if line.startswith("FAIL"):
            assert "hint: " in lines[i + 1]


def test_doctor_catches_a_dead_replay_camera_and_a_missing_serial_port(workdir: Path) -> None:
    empty = workdir / "empty-replay"
    empty.mkdir()
    board = f"""[board]
kind = "pi"
[[board.sensors]]
name = "co2"
chip = "senseair_s8"
port = "{workdir / "no-such-tty"}"
[[board.cameras]]
name = "duct"
backend = "replay"
directory = "{empty}"
"""
    config = write_config(workdir / "pi", port=free_port(), board=board)
    done = cli("doctor", "--config", config, "--json")
    assert done.returncode == 1
    checks = {f"{c['group']}/{c['name']}": c for c in json.loads(done.stdout)["checks"]}
    assert checks["cameras/duct"]["status"] == "FAIL"
    assert checks["uart/co2"]["status"] == "FAIL"
    assert "no-such-tty" in checks["uart/co2"]["detail"]
    assert "dialout" in checks["uart/co2"]["hint"]


def test_a_wrong_broker_address_and_a_stopped_agent(workdir: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(workdir / "offline", port=port, device="t2")
    running = RunningAgent(config, workdir / "offline.log")
    try:
        running.wait_ready()
        doctor = cli("doctor", "--config", config)
        assert doctor.returncode == 1
        lines = doctor.stdout.splitlines()
        tcp = next(line for line in lines if line.startswith("FAIL  broker/tcp "))
        assert f"127.0.0.1:{port}" in tcp and "refused" in tcp
        assert not any("broker/mqtt" in line for line in lines)  # stops at the failed step
        assert any(line.startswith("FAIL  agent/broker link ") for line in lines)
        status = cli("status", "--config", config).stdout
        assert "broker:   DISCONNECTED; last error: connection refused" in status
        wait_until(
            lambda: json.loads(cli("outbox", "--config", config, "--json").stdout)["depth"] >= 3,
            10,
            "telemetry to pile up",
            poll_s=CLI_POLL_S,
        )
    finally:
        assert running.stop() == 0

    done = cli("status", "--config", config)
    assert done.returncode == 4
    assert done.stdout.startswith("agent:    NOT RUNNING")
    assert "outbox:   " in done.stdout and "undelivered" in done.stdout

    outbox = cli("outbox", "--config", config, "--peek", "2", "--json")
    assert outbox.returncode == 0
    assert "the agent is not running" in outbox.stderr
    report = json.loads(outbox.stdout)
    assert report["source"] == "state directory" and report["depth"] >= 3
    seqs = [m["seq"] for m in report["peek"]]
    assert len(seqs) == 2 and seqs == sorted(seqs)
    assert all(m["topic"].startswith("remotair/v1/t2/") for m in report["peek"])
    alarms = cli("alarms", "--config", config)
    assert alarms.returncode == 0 and "no active alarms" in alarms.stdout


def test_doctor_reports_an_expired_broker_certificate(workdir: Path) -> None:
    certs = workdir / "certs"
    certs.mkdir()
    cert, key = make_expired_certificate(certs)
    tls_port = free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
    with LocalBroker(workdir / "tls-broker", extra_config=extra):
        config = write_config(workdir / "tls", port=tls_port, extra=f'[mqtt.tls]\nca = "{cert}"\n')
        done = cli("doctor", "--config", config)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("PASS  broker/tcp ") for line in lines)
    tls = next(line for line in lines if line.startswith("FAIL  broker/tls "))
    assert "server certificate expired 10 days ago (not after " in tls
    assert "renew the broker's certificate" in lines[lines.index(tls) + 1]


# -- smaller tools -----------------------------------------------------------------------------


def test_i2c_scan_names_chips_and_the_missing_one() -> None:
    done = cli("i2c", "scan", "--sim", "--unplug", "scd41")
    assert done.returncode == 3
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:]}
    assert rows["0x62"][1:] == ["NO", "SCD4x", "scd41"]
    assert rows["0x76"][1:] == ["yes", "BME280/BMP280", "bme280"]
    assert rows["0x25"][1:] == ["yes", "SDP8xx", "filter_dp"]
    clean = cli("i2c", "scan", "--sim", "--json")
    assert clean.returncode == 0
    found = [r["address"] for r in json.loads(clean.stdout)["addresses"] if r["answers"]]
    assert found == ["0x25", "0x44", "0x61", "0x62", "0x76"]


def test_label_files_images_for_dataset_export(workdir: Path) -> None:
    import cv2
    import numpy as np

    shots = workdir / "shots"
    shots.mkdir()
    image = shots / "upstream-1.jpg"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    (shots / "upstream-1.json").write_text('{"camera": "upstream"}')
    not_image = shots / "notes.txt"
    not_image.write_text("greasy")
    dataset = workdir / "dataset"

    refused = cli("label", not_image, "dirty", "--dataset", dataset)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"remotair label: error: {not_image}: not an image file (expected .bmp, .jpeg, .jpg, .png)"
    )
    assert not dataset.exists()

    done = cli("label", image, "dirty", "--dataset", dataset, "--by", "ana", "--json")
    assert done.returncode == 0, done.stderr
    filed = dataset / "dirty" / "upstream-1.jpg"
    assert filed.read_bytes() == image.read_bytes()
    meta = json.loads((dataset / "dirty" / "upstream-1.label.json").read_text())
    assert meta["label"] == "dirty" and meta["labelled_by"] == "ana"
    assert meta["snapshot"] == {"camera": "upstream"}
    assert meta["device"] and meta["labelled_at"].endswith("+00:00")

    conflict = cli("label", image, "clean", "--dataset", dataset)
    assert conflict.returncode == 2 and "already filed as dirty" in conflict.stderr

    export = cli("dataset", "export", dataset, "--s3-prefix", "s3://bucket/set", "--json")
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["images"] == 1


@pytest.mark.parametrize(
    "command", [["status"], ["doctor"], ["i2c", "scan"], ["alarms"], ["outbox"], ["label"], ["sim"]]
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    done = cli(*command, "--help")
    assert done.returncode == 0
    assert "example: remotair " in done.stdout
