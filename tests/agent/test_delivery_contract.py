"""The delivery contract of docs/wire-format.md, checked by an independent consumer.

The consumer is :class:`hil.consumer.ContractConsumer`, a plain paho client (not the agent's code,
not the shared test subscriber): a persistent MQTT 3.1.1 session on ``remotair/v1/<device>/#``
that knows only the wire format. Its rule: every stream ``seq`` below a status's
``outbox.next_seq`` must arrive, unless the newest status names it in ``outbox.gaps``. Status
messages carry ``"seq": null``. The soak scenarios (``remotair sim scenario``) use it too.

The agent runs as ``remotair run`` in a subprocess through each fault: a broker outage that
overflows a small outbox (gaps reported), SIGKILL, a kill in the middle of an outbox commit (a
power cut), and a full disk (a 4 MiB tmpfs, when the tests run as root).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agent.control import ControlError, request
from hil.consumer import ContractConsumer
from tests.agent import test_agent_integration as integration
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Mosquitto

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
DEVICE = integration.DEVICE


@pytest.fixture
def consumer_for() -> Iterator[Callable[[Mosquitto], ContractConsumer]]:
    made: list[ContractConsumer] = []

    def make(broker: Mosquitto) -> ContractConsumer:
        made.append(ContractConsumer(broker.host, broker.port, DEVICE, f"{len(made)}"))
        return made[-1]

    yield make
    for consumer in made:
        consumer.close()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def write_config(tmp_path: Path, port: int, **extra: Any) -> Path:
    config = tmp_path / "agent.toml"
    text = integration.config_text(tmp_path / "state", port, sensor_s=0.1, **extra)
    config.write_text(text.replace("[mqtt]\n", "[mqtt]\nha_discovery = true\n", 1))
    return config


def spawn(
    processes: list[subprocess.Popen[bytes]],
    config: Path,
    log: Path,
    *,
    kill_at_commit: int | None = None,
) -> subprocess.Popen[bytes]:
    if kill_at_commit is None:
        command = [sys.executable, "-m", "agent", "run", "--config", str(config)]
    else:
        command = [sys.executable, "-m", "tests.support.kill_in_commit", str(kill_at_commit)]
        command += ["run", "--config", str(config)]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=sink, stderr=sink, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    processes.append(process)
    return process


def outbox_gaps(tmp_path: Path) -> int:
    """Gaps the running agent's outbox reports (-1 while it does not answer)."""
    with contextlib.suppress(ControlError, OSError):
        return len(request(tmp_path / "control.sock", "status")["outbox"]["gaps"])
    return -1


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_broker_outage_overflowing_the_outbox_reports_every_gap(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    consumer_for: Callable[[Mosquitto], ContractConsumer],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    broker = mosquitto_factory(persistence=True)
    consumer = consumer_for(broker)
    config = write_config(tmp_path, broker.port, storage_extra="outbox_max_messages = 30")
    agent = spawn(processes, config, tmp_path / "agent.log")
    consumer.wait_stream(5)
    broker.stop()
    # Full is not enough: a gap exists once the next message has evicted one (no race with that).
    wait_until(lambda: outbox_gaps(tmp_path) > 0, 30, "the full outbox evicts during the outage")
    broker.start()
    consumer.wait_complete(after_statuses=len(consumer.statuses))
    stop(agent)
    consumer.check()
    gaps = consumer.statuses[-1]["outbox"]["gaps"]
    assert gaps and all(g["cause"] == "evicted" for g in gaps), gaps
    assert {g["kind"] for g in gaps} == {"telemetry"}


def test_sigkill_and_a_kill_inside_a_commit_lose_nothing(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    consumer_for: Callable[[Mosquitto], ContractConsumer],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    broker = mosquitto_factory(persistence=True)
    consumer = consumer_for(broker)
    config = write_config(tmp_path, broker.port)
    first = spawn(processes, config, tmp_path / "first.log")
    consumer.wait_stream(10)
    first.kill()  # telemetry every 0.1 s: always in the middle of a put or a publish
    assert first.wait(timeout=10) == -signal.SIGKILL

    for n in (3, 7, 12):  # killed as the n-th put of this run starts its COMMIT
        crashed = spawn(processes, config, tmp_path / f"commit-{n}.log", kill_at_commit=n)
        assert crashed.wait(timeout=30) == -signal.SIGKILL, tmp_path / f"commit-{n}.log"

    last = spawn(processes, config, tmp_path / "last.log")
    consumer.wait_complete(after_statuses=len(consumer.statuses))
    stop(last)
    consumer.check()
    assert consumer.statuses[-1]["outbox"]["gaps"] == []


def test_full_disk_loses_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    consumer_for: Callable[[Mosquitto], ContractConsumer],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    storage = tmp_path / "state"
    with integration.tmpfs(storage, "4m") as mounted:
        if not mounted:
            pytest.skip("needs root to mount a 4 MiB tmpfs (test_agent_integration fakes it)")
        consumer = consumer_for(mosquitto)
        agent = spawn(processes, write_config(tmp_path, mosquitto.port), tmp_path / "agent.log")
        consumer.wait_stream(5)
        filler = storage / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as sink:
            while True:
                sink.write(b"\0" * 65536)
                sink.flush()
        wait_until(
            lambda: "disk is full" in (tmp_path / "agent.log").read_text(errors="replace"),
            20,
            "the agent meets the full disk",
        )
        filler.unlink()
        consumer.wait_complete(after_statuses=len(consumer.statuses))
        stop(agent)
    consumer.check()
    assert consumer.statuses[-1]["outbox"]["gaps"] == []
