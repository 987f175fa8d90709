"""The whole agent (``agent.daemon.Agent`` and ``remotair run``) against a real Mosquitto.

Link-level behaviour (back-off, in-flight window, set-aside, MQTT 5 properties) is covered by
``test_mqtt.py`` and ``test_outbox.py``; these tests drive the real agent on the simulated board:
sampling, alarms, snapshots, the dispatcher, the outbox, the link, the health status, signals and
sd_notify, all wired as ``remotair run`` wires them.

A consumer detects loss as a gap in ``seq``: the stream (telemetry, vision, alarm, result) has
no other gaps than the ones the board reports; ``status`` is a latest-value message with
``"seq": null`` (see docs/wire-format.md and ``test_delivery_contract.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent import daemon
from agent.command_table import Transport
from agent.config import parse_config
from agent.daemon import Agent, build_agent
from agent.outbox import MessageClass, Outbox, OutboxError, OutboxMessage
from agent.sd_notify import Notifier
from hil.agent_toml import SimAgentToml
from hil.broker import free_port
from hil.pki import Pki
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Mosquitto, Received, Subscriber

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "it-board"
ROOT_TOPIC = f"remotair/v1/{DEVICE}"
TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SHIPPED_MODEL = ROOT / "models" / "visual_clean_resnet18_int8.onnx"

# Three chips are enough to see "the rest keeps working", and keep a round cheap.
SENSORS = {"bme280": "bme280", "scd41": "scd4x", "filter_dp": "sdp8xx"}
PACED = {"scd41"}
"""Chips that make samples on their own schedule (SCD4x: every 5 s): absent from telemetry until
their first sample, then carried over with ``age_s`` between two samples."""
QUANTITIES = {
    "bme280": {"temperature_c", "humidity_rh", "pressure_pa"},
    "scd41": {"co2_ppm", "temperature_c", "humidity_rh"},
    "filter_dp": {"differential_pressure_pa", "temperature_c"},
}


# -- configuration -------------------------------------------------------------------------------


def config_text(
    storage: Path,
    port: int,
    *,
    sensor_s: float = 0.2,
    snapshot_s: float = 3600.0,
    status_s: float = 1.0,
    vision: str = 'backend = "off"',
    cameras: tuple[str, ...] = (),
    mqtt: str = "",
    storage_extra: str = "",
    alarms: str = "hold_s = 0",
    logging_level: str = "info",
) -> str:
    """A complete agent.toml: the simulated board, a broker on loopback, fast intervals."""
    return SimAgentToml(
        device=DEVICE,
        port=port,
        state_dir=storage,
        control=storage.parent / "control.sock",
        sensors=SENSORS,
        cameras=cameras,
        sensor_interval_s=sensor_s,
        snapshot_interval_s=snapshot_s,
        status_interval_s=status_s,
        mqtt_extra=mqtt,
        storage_extra=storage_extra,
        vision=vision,
        alarms=alarms,
        logging_level=logging_level,
    ).text()


class RecordingOutbox(Outbox):
    """The real outbox, remembering every message put into it (the test's ground truth)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.put_log: list[OutboxMessage] = []
        self.add_listener(self.put_log.append)
        self.refuse_puts: str | None = None
        """Set: every put fails like SQLite on a full disk (where no tiny tmpfs can be mounted)."""

    def _put_batch(self, *args: Any, **kwargs: Any) -> list[OutboxMessage]:
        if self.refuse_puts is not None:
            raise OutboxError(self.path, self.refuse_puts)
        return super()._put_batch(*args, **kwargs)

    def seqs(self, *kinds: MessageClass) -> list[int]:
        return [m.seq for m in list(self.put_log) if m.kind in kinds]


@dataclasses.dataclass
class RunningAgent:
    agent: Agent
    thread: threading.Thread
    result: list[int]

    @property
    def outbox(self) -> RecordingOutbox:
        box = self.agent.outbox
        assert isinstance(box, RecordingOutbox)
        return box

    def status(self) -> dict[str, Any]:
        return self.agent.status_document()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, flush_timeout_s: float = 2.0) -> None:
        self.agent.stop_event.set()
        self.thread.join(timeout=5.0)
        self.agent.shutdown(flush_timeout_s=flush_timeout_s)


@pytest.fixture
def run_agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], RunningAgent]]:
    """Start the real agent in this process (``start()`` then ``run()`` in a thread)."""
    monkeypatch.setattr(daemon, "Outbox", RecordingOutbox)
    started: list[RunningAgent] = []

    def start(text: str) -> RunningAgent:
        config = parse_config(text, source="test.toml", env={})
        agent = build_agent(config, notifier=Notifier(env={}))
        agent.start()
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(agent.run()), daemon=True)
        thread.start()
        running = RunningAgent(agent, thread, result)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive() or not running.agent.stop_event.is_set():
            running.stop(flush_timeout_s=0.5)


# -- helpers -------------------------------------------------------------------------------------


def docs(messages: list[Received], suffix: str) -> list[dict[str, Any]]:
    return [m.document for m in messages if m.topic == f"{ROOT_TOPIC}/{suffix}"]


def seqs_of(messages: list[Received]) -> set[int]:
    found = set()
    for m in messages:
        seq = m.document.get("seq")
        if seq is not None:
            found.add(int(seq))
    return found


def has(suffix: str, count: int = 1, **fields: object) -> Callable[[list[Received]], bool]:
    def check(messages: list[Received]) -> bool:
        matching = [
            d for d in docs(messages, suffix) if all(d.get(k) == v for k, v in fields.items())
        ]
        return len(matching) >= count

    return check


def check_envelope(document: dict[str, Any], *, latest_value: bool = False) -> None:
    """``latest_value``: a status (or the last will), outside the seq stream."""
    assert document["v"] == 1
    assert document["device"] == DEVICE
    if latest_value:
        assert document["seq"] is None, "status is not numbered in the stream"
    else:
        assert isinstance(document["seq"], int) and not isinstance(document["seq"], bool)
        assert document["seq"] >= 1
    assert isinstance(document["ts"], str) and TS_FORMAT.match(document["ts"]), document["ts"]
    assert document["sim"] is True, "every message of the simulated board says so"
    when = dt.datetime.strptime(document["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 120


def publish_command(broker: Mosquitto, name: str, body: dict[str, object]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    try:
        info = client.publish(f"{ROOT_TOPIC}/cmd/{name}", json.dumps(body), qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"cmd/{name} not published"
    finally:
        client.disconnect()
        client.loop_stop()


def persistent_subscriber(
    broker: Mosquitto, subscribe: Callable[..., Subscriber], name: str
) -> Subscriber:
    return subscribe(broker, f"{ROOT_TOPIC}/#", client_id=f"it-{name}")


# -- schema --------------------------------------------------------------------------------------


def test_topics_and_payload_schema_with_the_shipped_model(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    assert SHIPPED_MODEL.exists(), f"the shipped model {SHIPPED_MODEL} is missing"
    manifest = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    storage = tmp_path / "state"
    running = run_agent(
        config_text(storage, mosquitto.port, vision='backend = "onnx"', cameras=("upstream",))
    )
    running.agent.board.sim.world.override(co2_ppm=2500)  # type: ignore[union-attr]

    def every_sensor(ms: list[Received]) -> bool:  # the paced chips' first samples are in
        return any(set(d["sensors"]) == set(SENSORS) for d in docs(ms, "telemetry"))

    messages = watcher.wait_for(
        lambda ms: (
            has("telemetry", 2)(ms)
            and every_sensor(ms)
            and has("vision/upstream")(ms)
            and has("alarm/co2_critical", state="raised")(ms)
            and has("status", state="online")(ms)
        ),
        timeout=30,
    )

    for m in messages:
        assert m.topic.startswith(f"{ROOT_TOPIC}/"), m.topic
        assert m.qos == 1, m.topic
        check_envelope(json.loads(m.payload), latest_value=m.topic == f"{ROOT_TOPIC}/status")
    every_seq = [
        json.loads(m.payload)["seq"] for m in messages if m.topic != f"{ROOT_TOPIC}/status"
    ]
    assert len(every_seq) == len(set(every_seq)), "a clean run delivers each seq once"

    for telemetry in docs(messages, "telemetry"):
        assert set(telemetry) == {"v", "device", "seq", "ts", "sim", "sensors", "faults"}
        assert telemetry["faults"] == {}
        assert set(SENSORS) - PACED <= set(telemetry["sensors"]) <= set(SENSORS)
        for name, reading in telemetry["sensors"].items():
            assert reading["chip"] == SENSORS[name]
            assert set(reading) - {"chip", "age_s"} == QUANTITIES[name], name
            assert "age_s" not in reading or (name in PACED and reading["age_s"] >= 0), name
            for quantity in QUANTITIES[name]:
                assert isinstance(reading[quantity], int | float), (name, quantity)
    last = docs(messages, "telemetry")[-1]
    assert 2000 <= last["sensors"]["scd41"]["co2_ppm"] <= 3000

    verdict = docs(messages, "vision/upstream")[0]
    assert verdict["camera"] == "upstream"
    # a rendered duct passes the quality gate; the calibrated model decides or says uncertain
    assert verdict["label"] in (*manifest["labels"], "uncertain")
    assert 0.5 <= verdict["confidence"] <= 1.0
    assert 0.0 <= verdict["dirty_probability"] <= 1.0
    if verdict["label"] == "uncertain":
        assert verdict["reason"]
    else:
        assert (verdict["label"] == "dirty") == (verdict["dirty_probability"] >= 0.5)
    assert verdict["backend"] == "onnx" and verdict["decided_by"] == "onnx"
    assert isinstance(verdict["model"], str) and verdict["model"]
    assert verdict["latency_ms"] > 0
    assert verdict["pending"] is False
    assert (storage / "snapshots" / verdict["snapshot"]).is_file()

    alarm = docs(messages, "alarm/co2_critical")[0]
    assert {k: alarm[k] for k in ("name", "rule", "source", "sensors", "state", "severity")} == {
        "name": "co2_critical",
        "rule": "co2_critical",
        "source": "",
        "sensors": ["scd41"],
        "state": "raised",
        "severity": "critical",
    }
    assert alarm["threshold"] == 1500
    assert alarm["value"] >= 1500
    assert isinstance(alarm["message"], str) and "scd41" in alarm["message"]

    # The status follows the board: once the alarm is active a status naming it goes out.
    watcher.wait_for(
        lambda ms: any(d["broker"].get("connected") and d["alarms"] for d in docs(ms, "status")),
        timeout=10,
    )
    # Retained: a consumer that arrives later still gets the board's status.
    late = subscribe(mosquitto, f"{ROOT_TOPIC}/status")
    retained = late.wait_for(lambda ms: any(m.retain for m in ms), timeout=10)
    status = json.loads(next(m for m in retained if m.retain).payload)
    check_envelope(status, latest_value=True)
    assert status["state"] == "online"
    assert status["model"] == verdict["model"]
    assert isinstance(status["version"], str) and isinstance(status["uptime_s"], int | float)
    assert status["broker"]["connected"] is True and status["broker"]["last_error"] is None
    assert set(status["sensors"]) == set(SENSORS)
    assert all(s["ok"] for s in status["sensors"].values())
    assert set(status["cameras"]) == {"upstream"}
    for key in ("depth", "bytes", "oldest_age_s", "evicted", "set_aside"):
        assert key in status["outbox"], key
    assert "co2_critical" in {a["name"] for a in status["alarms"]}
    # The verdict names the shipped file: "<name>@<first hex digits of its sha256>".
    name, _, digest = verdict["model"].partition("@")
    assert name == SHIPPED_MODEL.stem and len(digest) >= 8
    assert manifest["sha256"].startswith(digest)


# -- broker outage -------------------------------------------------------------------------------


def test_broker_outage_then_every_seq_delivered_without_gap(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    broker = mosquitto_factory(persistence=True)
    watcher = persistent_subscriber(broker, subscribe, "outage")
    running = run_agent(config_text(tmp_path / "state", broker.port))
    watcher.wait_for(has("telemetry", 3), timeout=15)

    broker.stop()
    wait_until(lambda: not running.status()["broker"]["connected"], 10, "agent sees the outage")
    put_before = len(running.outbox.seqs(MessageClass.TELEMETRY))
    wait_until(
        lambda: len(running.outbox.seqs(MessageClass.TELEMETRY)) >= put_before + 8,
        10,
        "sampling goes on while the broker is away",
    )
    assert running.status()["outbox"]["depth"] >= 8
    broker.start()

    wanted = set(running.outbox.seqs(MessageClass.TELEMETRY, MessageClass.ALARM))
    watcher.wait_for(lambda ms: wanted <= seqs_of(ms), timeout=20)
    wait_until(lambda: running.status()["broker"]["connected"], 10, "agent reconnected")
    running.stop()
    assert running.result == [0]
    missing = wanted - seqs_of(watcher.snapshot())
    assert not missing, f"lost: {sorted(missing)}"


# -- SIGKILL and restart (subprocess) ------------------------------------------------------------


@dataclasses.dataclass
class AgentProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_agent(config: Path, log: Path, env: dict[str, str] | None = None) -> AgentProcess:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
            env={**os.environ, **(env or {})},
        )
    return AgentProcess(process, log)


@pytest.fixture
def agent_processes() -> Iterator[list[AgentProcess]]:
    processes: list[AgentProcess] = []
    yield processes
    for p in processes:
        if p.process.poll() is None:
            p.process.kill()
            p.process.wait(timeout=10)


def test_sigkill_mid_publish_then_restart_loses_no_seq(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    subscribe: Callable[..., Subscriber],
    agent_processes: list[AgentProcess],
) -> None:
    broker = mosquitto_factory(persistence=True)
    watcher = persistent_subscriber(broker, subscribe, "sigkill")
    config = tmp_path / "agent.toml"
    config.write_text(
        config_text(tmp_path / "state", broker.port, sensor_s=0.1, logging_level="debug")
    )
    first = spawn_agent(config, tmp_path / "first.log")
    agent_processes.append(first)
    watcher.wait_for(has("telemetry", 10), timeout=30)
    first.process.kill()  # telemetry every 0.1 s: the agent is always in the middle of a publish
    assert first.process.wait(timeout=10) == -signal.SIGKILL
    before = max(seqs_of(watcher.snapshot()))

    second = spawn_agent(config, tmp_path / "second.log")
    agent_processes.append(second)
    watcher.wait_for(
        lambda ms: len([d for d in docs(ms, "telemetry") if d["seq"] > before]) >= 10, timeout=30
    )
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=20) == 0, second.log_text()[-3000:]
    watcher.wait_for(has("status", state="offline"), timeout=10)

    messages = watcher.snapshot()
    received = seqs_of(messages)
    missing = set(range(1, max(received) + 1)) - received
    assert not missing, f"seqs never delivered: {sorted(missing)}"
    by_seq: dict[int, bytes] = {}
    for m in messages:
        document = json.loads(m.payload)
        seq = document["seq"]
        if seq is None:
            assert document["sim"] is True, "the last will of a simulated board says so too"
            continue  # the broker's last will after the SIGKILL
        assert by_seq.setdefault(seq, m.payload) == m.payload, f"seq {seq} reused for another"


# -- outbox full ---------------------------------------------------------------------------------


def test_outbox_full_evicts_counted_telemetry_and_keeps_alarms(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    broker = mosquitto_factory(persistence=True)
    watcher = persistent_subscriber(broker, subscribe, "full")
    broker.stop()  # the subscription survives in the broker's session store
    running = run_agent(
        config_text(
            tmp_path / "state", broker.port, sensor_s=0.1, storage_extra="outbox_max_messages = 20"
        )
    )
    running.agent.board.sim.world.override(co2_ppm=2500)  # type: ignore[union-attr]
    wait_until(
        lambda: running.status()["outbox"]["evicted"]["telemetry"] >= 10,
        20,
        "telemetry evicted from the full outbox",
    )
    alarms = running.outbox.seqs(MessageClass.ALARM)
    names = {json.loads(m.payload)["name"] for m in running.outbox.put_log if m.kind == "alarm"}
    assert {"co2_warning", "co2_critical", "outbox_near_full"} <= names
    assert "outbox_near_full" in {a["name"] for a in running.status()["alarms"]}

    broker.start()
    watcher.wait_for(lambda ms: set(alarms) <= seqs_of(ms), timeout=20)
    running.agent.board.sim.world.release()  # type: ignore[union-attr]
    wait_until(lambda: running.status()["outbox"]["depth"] == 0, 20, "the outbox drains")
    evicted = running.outbox.stats().evicted[MessageClass.TELEMETRY]
    put_telemetry = set(running.outbox.seqs(MessageClass.TELEMETRY))
    # Once drained nothing is evicted any more: what was put and never arrives is in the reported
    # gaps (a gap's message may still arrive: it can be evicted while already on its way).
    gaps = running.outbox.stats().gaps
    reported = {seq for gap in gaps for seq in range(gap.first, gap.last + 1)}
    assert len(reported) == evicted, "every eviction is a reported gap"
    messages = watcher.wait_for(lambda ms: put_telemetry - seqs_of(ms) <= reported, timeout=10)
    running.stop()
    assert evicted >= 10
    published_evicted = [d["outbox"]["evicted"]["telemetry"] for d in docs(messages, "status")]
    assert published_evicted and max(published_evicted) >= 10, "status reports the evictions"


# -- TLS -----------------------------------------------------------------------------------------


def tls_section(ca: Path, cert: Path, key: Path) -> str:
    return f'[mqtt.tls]\nca = "{ca}"\ncert = "{cert}"\nkey = "{key}"\n'


def test_tls_with_client_certificate_delivers(
    tmp_path: Path,
    tls_broker: tuple[Mosquitto, int, Pki],
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    broker, tls_port, pki = tls_broker
    watcher = subscribe(broker, f"{ROOT_TOPIC}/#")
    running = run_agent(
        config_text(
            tmp_path / "state",
            tls_port,
            mqtt=tls_section(pki.ca, pki.client_cert, pki.client_key),
        )
    )
    watcher.wait_for(lambda ms: has("telemetry", 3)(ms) and has("status")(ms), timeout=20)
    broker_state = running.status()["broker"]
    assert broker_state["connected"] is True
    assert broker_state["last_error"] is None


def test_wrong_client_certificate_is_a_plain_error_and_the_agent_buffers(
    tmp_path: Path,
    tls_broker: tuple[Mosquitto, int, Pki],
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    broker, tls_port, pki = tls_broker
    watcher = subscribe(broker, f"{ROOT_TOPIC}/#")
    running = run_agent(
        config_text(
            tmp_path / "state", tls_port, mqtt=tls_section(pki.ca, pki.rogue_cert, pki.rogue_key)
        )
    )
    wait_until(lambda: running.status()["broker"]["last_error"] is not None, 15, "a TLS error")
    error = running.status()["broker"]["last_error"]
    assert error.startswith("TLS:"), error
    assert "certificate" in error or "unknown ca" in error, error
    runs = running.agent.jobs["sensors"].stats.runs
    wait_until(lambda: running.agent.jobs["sensors"].stats.runs >= runs + 5, 10, "still sampling")
    assert running.alive()
    status = running.status()
    assert status["broker"]["connected"] is False
    assert status["outbox"]["depth"] >= 5, "readings are kept for later"
    assert watcher.snapshot() == [], "nothing reached the broker over a refused handshake"


# -- storage -------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[bool]:
    """Mount a tiny tmpfs at ``where`` when we may (root); yields whether it is mounted."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    options = f"size={size}" + (",ro" if read_only else "")
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
    mounted = subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def run_once(config: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("how", ["under-a-file", "read-only"])
def test_unusable_storage_directory_is_a_one_line_error(tmp_path: Path, how: str) -> None:
    if how == "under-a-file":
        (tmp_path / "file").write_text("not a directory")
        storage = tmp_path / "file" / "state"
        mount: contextlib.AbstractContextManager[bool] = contextlib.nullcontext(True)
    else:
        storage = tmp_path / "ro" / "state"
        mount = tmpfs(tmp_path / "ro", "1m", read_only=True)
    config = tmp_path / "agent.toml"
    config.write_text(config_text(storage, free_port()))
    with mount as ready:
        if not ready:
            if os.geteuid() == 0:
                pytest.skip("root without mount(8): cannot make a directory read-only for root")
            (tmp_path / "ro").chmod(0o555)
        done = run_once(config)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if str(storage) in line]
    assert len(errors) == 1, done.stderr
    assert "error" in errors[0] and "[storage] dir" in errors[0], errors[0]
    assert len(lines) <= 3, f"a short message, not a log dump:\n{done.stderr}"


def test_outbox_disk_full_holds_messages_in_memory_and_delivers_after_recovery(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    storage = tmp_path / "state"
    with tmpfs(storage, "4m") as mounted:
        watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
        running = run_agent(config_text(storage, mosquitto.port))
        watcher.wait_for(has("telemetry", 2), timeout=15)
        if mounted:
            filler = storage / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as sink:
                while True:
                    sink.write(b"\0" * 65536)
                    sink.flush()
        else:  # not root: fake what SQLite says on a full disk
            running.outbox.refuse_puts = "put failed: database or disk is full (storage full?)"
        wait_until(lambda: running.status()["outbox"]["memory_backlog"] >= 5, 15, "held")
        status = running.status()
        assert status["last_error"] is not None and "full" in status["last_error"], status
        assert running.alive(), "a full disk must not stop the agent"
        held_at = len(running.outbox.seqs(MessageClass.TELEMETRY))

        if mounted:
            filler.unlink()
        else:
            running.outbox.refuse_puts = None
        wait_until(lambda: running.status()["outbox"]["memory_backlog"] == 0, 15, "moved in")
        assert running.status()["last_error"] is None
        wanted = set(running.outbox.seqs(MessageClass.TELEMETRY))
        assert len(wanted) >= held_at + 5, "the rounds held in memory reached the outbox"
        watcher.wait_for(lambda ms: wanted <= seqs_of(ms), timeout=15)
        running.stop()
        assert running.result == [0]


# -- faults --------------------------------------------------------------------------------------


def test_failing_sensor_and_camera_raise_fault_alarms_while_the_rest_keeps_working(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    running = run_agent(
        config_text(
            tmp_path / "state",
            mosquitto.port,
            snapshot_s=1.0,
            cameras=("upstream",),
            alarms="hold_s = 0\nsensor_fault_consecutive = 2\ncamera_fault_consecutive = 2",
        )
    )
    watcher.wait_for(has("telemetry", 2), timeout=15)
    sim = running.agent.board.sim
    assert sim is not None
    sim.faults("scd41").absent = True
    sim.cameras["upstream"].faults.dead = True
    messages = watcher.wait_for(
        lambda ms: (
            has("alarm/sensor_fault_scd41", state="raised")(ms)
            and has("alarm/camera_fault_upstream", state="raised")(ms)
        ),
        timeout=20,
    )
    raised = docs(messages, "alarm/sensor_fault_scd41")[0]
    assert raised["severity"] == "critical" and raised["source"] == "scd41"
    assert docs(messages, "alarm/camera_fault_upstream")[0]["source"] == "upstream"
    faulty = [d for d in docs(messages, "telemetry") if "scd41" in d["faults"]]
    assert faulty, "the failed read is reported in telemetry"
    for telemetry in faulty:
        assert set(telemetry["sensors"]) == {"bme280", "filter_dp"}, "the rest keeps publishing"
    status = running.status()
    assert status["sensors"]["scd41"]["ok"] is False and status["sensors"]["scd41"]["error"]
    assert status["sensors"]["bme280"]["ok"] is True
    assert status["cameras"]["upstream"]["ok"] is False
    assert {"sensor_fault_scd41", "camera_fault_upstream"} <= {a["name"] for a in status["alarms"]}

    sim.faults("scd41").absent = False
    sim.cameras["upstream"].faults.dead = False
    messages = watcher.wait_for(
        lambda ms: (
            has("alarm/sensor_fault_scd41", state="cleared")(ms)
            and has("alarm/camera_fault_upstream", state="cleared")(ms)
        ),
        timeout=20,
    )
    assert set(docs(messages, "telemetry")[-1]["sensors"]) == set(SENSORS)
    wait_until(lambda: not running.status()["alarms"], 5, "no alarm left active")


# -- SIGTERM and sd_notify (subprocess) ----------------------------------------------------------


def test_sigterm_publishes_offline_and_exits_0_with_sd_notify(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    agent_processes: list[AgentProcess],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    short = Path(tempfile.mkdtemp(prefix="rn-"))  # AF_UNIX paths are short (108 bytes)
    notify_path = short / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.5)
    config = tmp_path / "agent.toml"
    config.write_text(config_text(tmp_path / "state", mosquitto.port))
    agent = spawn_agent(
        config,
        tmp_path / "agent.log",
        env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "3000000"},
    )
    agent_processes.append(agent)
    received: list[str] = []

    def read_until(wanted: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(wanted in text.splitlines() for text in received):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {wanted} within {timeout} s; got {received}")
            with contextlib.suppress(TimeoutError):
                received.append(notify.recv(4096).decode())

    try:
        read_until("READY=1", 20)
        read_until("WATCHDOG=1", 10)
        watcher.wait_for(has("status", state="online"), timeout=10)
        agent.process.send_signal(signal.SIGTERM)
        read_until("STOPPING=1", 10)
        assert agent.process.wait(timeout=15) == 0, agent.log_text()[-3000:]
    finally:
        notify.close()
        notify_path.unlink(missing_ok=True)
        short.rmdir()
    order = [line for text in received for line in text.splitlines() if "=1" in line]
    assert order.index("READY=1") < order.index("WATCHDOG=1") < order.index("STOPPING=1")
    messages = watcher.wait_for(has("status", state="offline"), timeout=5)
    offline = [m for m in messages if m.topic.endswith("/status")][-1]
    document = json.loads(offline.payload)
    assert document["state"] == "offline"
    check_envelope(document, latest_value=True)
    assert "uptime_s" in document, "published by the agent itself, not the last will"
    late = subscribe(mosquitto, f"{ROOT_TOPIC}/status")
    retained = late.wait_for(lambda ms: any(m.retain for m in ms), timeout=10)
    assert json.loads(retained[-1].payload)["state"] == "offline"
    assert "Traceback" not in agent.log_text()


# -- commands ------------------------------------------------------------------------------------


def test_commands_ping_read_snapshot_answered_with_the_correlation_id(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    running = run_agent(
        config_text(tmp_path / "state", mosquitto.port, sensor_s=1.0, cameras=("upstream",))
    )
    watcher.wait_for(has("status", state="online"), timeout=15)
    wait_until(lambda: running.status()["broker"]["commands_subscribed"], 10, "SUBACK of cmd/+")
    publish_command(mosquitto, "ping", {"id": "p-1"})
    publish_command(mosquitto, "read", {"id": 42})
    publish_command(mosquitto, "snapshot", {"id": "s-1", "camera": "upstream"})
    publish_command(mosquitto, "snapshot", {"id": "s-2", "camera": "nope"})
    publish_command(mosquitto, "status", {"id": "st-1"})
    publish_command(mosquitto, "reboot", {"id": "r-1"})
    publish_command(mosquitto, "sim", {"id": "sim-1", "name": "scd41", "broken": True})
    messages = watcher.wait_for(
        lambda ms: (
            has("result/ping")(ms)
            and has("result/read")(ms)
            and has("result/snapshot", 2)(ms)
            and has("result/status")(ms)
            and has("result/reboot")(ms)
            and has("result/sim")(ms)
        ),
        timeout=20,
    )
    for m in messages:
        if "/cmd/" not in m.topic:  # the watcher also sees the test's own commands
            check_envelope(json.loads(m.payload), latest_value=m.topic == f"{ROOT_TOPIC}/status")
    ping = docs(messages, "result/ping")[0]
    assert (ping["command"], ping["id"], ping["ok"]) == ("ping", "p-1", True)
    assert ping["result"]["pong"] is True
    read = docs(messages, "result/read")[0]
    assert (read["id"], read["ok"], read["result"]["ok"]) == (42, True, True)
    # A round now: every sensor but a paced chip that has not made its first sample yet.
    assert set(SENSORS) - PACED <= set(read["result"]["sensors"]) <= set(SENSORS)
    snapshots = {d["id"]: d for d in docs(messages, "result/snapshot")}
    good = snapshots["s-1"]["result"]
    assert good["ok"] is True, good
    stored = good["cameras"]["upstream"]["snapshot"]
    assert (tmp_path / "state" / "snapshots" / stored).is_file()
    bad = snapshots["s-2"]
    assert (bad["ok"], bad["code"]) == (False, "failed") and "nope" in bad["error"], bad
    # cmd/status and `remotair status` are the same row of the same table.
    status = docs(messages, "result/status")[0]
    local = running.agent.commands.call("status", {}, transport=Transport.LOCAL)
    assert status["ok"] is True and local.result is not None
    assert set(status["result"]) == set(local.result) >= {"device", "pid", "sensors", "broker"}
    reboot = docs(messages, "result/reboot")[0]
    assert (reboot["ok"], reboot["code"]) == (False, "unknown_command"), reboot
    sim = docs(messages, "result/sim")[0]
    assert (sim["ok"], sim["code"]) == (False, "local_only"), sim
    simulated = running.agent.board.sim
    assert simulated is not None and not simulated.faults("scd41").absent
    assert running.alive()


# -- no broker -----------------------------------------------------------------------------------


def test_no_broker_at_all_the_agent_runs_buffers_and_says_so(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    run_agent: Callable[[str], RunningAgent],
) -> None:
    port = free_port()  # nothing listens there
    caplog.set_level("WARNING", logger="agent.mqtt")
    running = run_agent(config_text(tmp_path / "state", port))
    wait_until(lambda: running.agent.jobs["sensors"].stats.runs >= 8, 15, "sampling without MQTT")
    wait_until(lambda: running.status()["broker"]["last_error"] is not None, 10, "an error")
    status = running.status()
    assert status["broker"]["connected"] is False
    assert "refused" in status["broker"]["last_error"]
    assert str(port) in status["broker"]["last_error"]
    assert status["outbox"]["depth"] >= 8
    assert status["outbox"]["oldest_age_s"] > 0
    said = [r.getMessage() for r in caplog.records if "mqtt connect failed" in r.getMessage()]
    assert any(str(port) in m for m in said)
    # The log says that it buffers, and how much.
    assert any(int(m.rsplit("buffered=", 1)[1]) >= 1 for m in said[1:]), said
    assert running.alive()
    running.stop(flush_timeout_s=0.5)
    assert running.result == [0]
    with Outbox(tmp_path / "state" / "outbox.sqlite", DEVICE) as box:
        assert box.stats().depth >= 8, "what was not delivered is still on disk"


# -- timestamps and the status published on connect ---------------------------------------------


def test_telemetry_held_in_memory_keeps_its_measurement_time(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/telemetry")
    running = run_agent(config_text(tmp_path / "state", mosquitto.port))
    watcher.wait_for(has("telemetry", 2), timeout=15)
    running.outbox.refuse_puts = "put failed: database or disk is full (storage full?)"
    wait_until(lambda: running.status()["outbox"]["memory_backlog"] >= 5, 15, "held in memory")
    running.outbox.refuse_puts = None
    wait_until(lambda: running.status()["outbox"]["memory_backlog"] == 0, 15, "moved in")
    wanted = set(running.outbox.seqs(MessageClass.TELEMETRY))
    messages = watcher.wait_for(lambda ms: wanted <= seqs_of(ms), timeout=15)
    stamps = sorted(
        dt.datetime.strptime(d["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        for d in docs(messages, "telemetry")
    )
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.05, f"rounds are 0.2 s apart, timestamps {min(gaps):.3f} s apart"


def test_status_published_on_connect_says_connected(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    run_agent: Callable[[str], RunningAgent],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/status")
    run_agent(config_text(tmp_path / "state", mosquitto.port, status_s=3600))
    messages = watcher.wait_for(has("status", state="online"), timeout=15)
    first = docs(messages, "status")[0]
    assert first["broker"]["connected"] is True, first["broker"]
