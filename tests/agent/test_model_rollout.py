"""Model rollout through the real agent process and a real Mosquitto: commands, retained state,
reload and SIGHUP. (The install steps themselves are covered in ``tests/agent/models``.)"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import onnx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli.model.signing import sign_model
from agent.models.reference import reference_block
from agent.models.signing import (
    dev_public_key_path,
    generate_keypair,
    load_private_key,
    sign_manifest,
)
from agent.vision.factory import shipped_model_path
from agent.vision.onnx_backend import OnnxClassifier
from hil.model_server import ModelServer
from tests.agent import test_agent_integration
from tests.agent.models.conftest import shipped_manifest
from tests.agent.models.tiny_onnx import write_tiny_model
from tests.agent.test_agent_integration import (
    ROOT_TOPIC,
    AgentProcess,
    config_text,
    docs,
    has,
    publish_command,
    spawn_agent,
)
from tests.support.vision_models import shipped_model_version
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Mosquitto, Received, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

ONNX = 'backend = "onnx"\nthreads = 1'
NEXT = shipped_model_version() + 1
"""A release one newer than the shipped model, which the board runs until one is installed."""

agent_processes = test_agent_integration.agent_processes
"""The fixture of the agents a test started, killed at teardown when still running."""


def result(messages: list[Received], command: str, request_id: str) -> dict[str, Any] | None:
    found = [d for d in docs(messages, f"result/{command}") if d["id"] == request_id]
    return found[-1] if found else None


@dataclass
class Board:
    """The broker, a watcher on all the device's topics, and the agents this test started (the
    ``agent_processes`` fixture kills the ones still running)."""

    broker: Mosquitto
    watcher: Subscriber
    processes: list[AgentProcess]

    def start(self, config: Path, log: Path) -> AgentProcess:
        """``remotair run`` on ``config``, once its online status has arrived."""
        agent = spawn_agent(config, log)
        self.processes.append(agent)
        self.watcher.wait_for(has("status", state="online"), timeout=30)
        return agent

    def ask(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        """Publish ``cmd/<command>`` and return its result (the one with the body's id)."""
        publish_command(self.broker, command, body)
        messages = self.watcher.wait_for(
            lambda ms: result(ms, command, body["id"]) is not None, timeout=60
        )
        answer = result(messages, command, body["id"])
        assert answer is not None
        return answer

    def install(self, request_id: str, manifest: dict[str, Any], url: str) -> dict[str, Any]:
        return self.ask("model_install", {"id": request_id, "manifest": manifest, "url": url})


@pytest.fixture
def board(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    agent_processes: list[AgentProcess],
) -> Board:
    return Board(mosquitto, subscribe(mosquitto, f"{ROOT_TOPIC}/#"), agent_processes)


def test_reload_applies_a_good_config_and_refuses_a_bad_one(tmp_path: Path, board: Board) -> None:
    config = tmp_path / "agent.toml"
    good = config_text(tmp_path / "state", board.broker.port, vision=ONNX)
    config.write_text(good)
    agent = board.start(config, tmp_path / "agent.log")

    first = board.ask("reload", {"id": "re-1"})
    assert first["ok"], first
    assert first["result"]["model"].startswith("visual_clean_resnet18_int8@")
    assert first["result"]["restart_needed"] == []

    config.write_text(good.replace("sensor_interval_s = 0.2", "sensor_interval_s = 0.3"))
    second = board.ask("reload", {"id": "re-2"})
    assert second["result"]["restart_needed"] == ["schedule"]

    config.write_text(good.replace("[schedule]", "[schedule]\nsensor_intervall_s = 1"))
    agent.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP reload refused" in agent.log_text(), 20, "SIGHUP refused")
    refused = board.ask("reload", {"id": "re-3"})
    assert refused["ok"] is False
    assert refused["error"].startswith("config refused, the running one is kept: ")
    assert "sensor_intervall_s" in refused["error"] and "\n" not in refused["error"]
    assert agent.process.poll() is None  # still running, on the old config
    assert board.ask("ping", {"id": "alive"})["ok"]
    assert "Traceback" not in agent.log_text()


def test_remote_install_without_trusted_keys_is_refused_and_said_so(
    tmp_path: Path, board: Board
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(config_text(tmp_path / "state", board.broker.port, vision=ONNX))
    board.start(config, tmp_path / "agent.log")
    manifest = json.loads(
        (Path(__file__).parents[2] / "models" / "visual_clean_resnet18_int8.json").read_text()
    )
    answer = board.install("in-1", manifest, "file:///nowhere")
    assert answer["ok"] is False
    assert answer["error"].startswith("no trusted keys: ")
    state = board.watcher.wait_for(has("model", state="failed", id="in-1"), timeout=10)
    retained = [m for m in state if m.topic == f"{ROOT_TOPIC}/model"]
    assert retained and json.loads(retained[-1].payload)["check"] == "no trusted keys"

    rollback = board.ask("model_rollback", {"id": "rb-1"})
    assert rollback["error"] == "store: no previous model to roll back to"


def test_model_use_and_rollback_switch_the_running_agent(tmp_path: Path, board: Board) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(config_text(tmp_path / "state", board.broker.port, vision=ONNX))
    board.start(config, tmp_path / "agent.log")
    model = write_model_release(tmp_path / "release", "constant")

    used = remotair("model", "use", model, "--config", config)
    assert used.returncode == 0, used.stderr
    assert "the agent now runs tiny_constant@" in used.stdout
    board.watcher.wait_for(
        lambda ms: any(
            str(d.get("model")).startswith("tiny_constant@") for d in docs(ms, "status")
        ),
        timeout=20,
    )
    # The configured model was adopted into the store by the first "use": it is the previous one.
    back = remotair("model", "rollback", "--config", config)
    assert back.returncode == 0, back.stderr
    assert "the agent now runs visual_clean_resnet18_int8@" in back.stdout


def write_model_release(directory: Path, mode: str) -> Path:
    directory.mkdir(parents=True)
    model = write_tiny_model(directory / f"tiny_{mode}.onnx", mode)
    manifest = {
        **shipped_manifest(),
        "model_file": model.name,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    model.with_suffix(".json").write_text(json.dumps(manifest))
    return model


def remotair(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


# -- signed installs over MQTT (a board that trusts a key) ----------------------------------------


@dataclass
class Fleet:
    """A signing key, a release folder served over loopback HTTP, and a board config trusting
    the key (and the dev key that signed the shipped model)."""

    root: Path
    key: Ed25519PrivateKey
    public: Path
    served: Path

    def config(self, port: int, *, snapshot_s: float = 3600.0, models: str = "") -> Path:
        path = self.root / "agent.toml"
        text = config_text(
            self.root / "state", port, vision=ONNX, snapshot_s=snapshot_s, sensor_s=0.5
        )
        keys = f'["{self.public}", "{dev_public_key_path()}"]'
        path.write_text(f"{text}\n[models]\ntrusted_keys = {keys}\n{models}")
        return path

    def shipped_variant(self, version: int) -> dict[str, Any]:
        """The shipped model with another doc string (another sha256), signed as ``version``."""
        folder = self.served / f"v{version}"
        folder.mkdir()
        shipped = shipped_model_path()
        model = onnx.load(str(shipped))
        model.doc_string = f"variant {version}"
        target = folder / shipped.name
        onnx.save(model, str(target))
        manifest = json.loads(shipped.with_suffix(".json").read_text())
        manifest["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
        target.with_suffix(".json").write_text(json.dumps(manifest))
        return sign_model(target, self.key, version=version, now=datetime.now(UTC))

    def tiny(self, mode: str, version: int) -> dict[str, Any]:
        """A tiny model whose reference image is white (``nan_on_dark`` passes it)."""
        folder = self.served / f"v{version}"
        model = write_model_release(folder, mode)
        manifest = json.loads(model.with_suffix(".json").read_text())
        classifier = OnnxClassifier(model, threads=1)
        ok, white = cv2.imencode(".jpg", np.full((144, 192, 3), 255, np.uint8))
        assert ok
        manifest["reference"] = reference_block(classifier, [("white", bytes(white.tobytes()))])
        classifier.close()
        manifest |= {"model_version": version, "size_bytes": model.stat().st_size}
        return sign_manifest(manifest, self.key)

    def url(self, server: ModelServer, manifest: dict[str, Any]) -> str:
        folder = f"v{manifest['model_version']}"
        return server.url(f"{folder}/{manifest['model_file']}")


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    _, public = generate_keypair(tmp_path / "keys")
    served = tmp_path / "served"
    served.mkdir()
    return Fleet(tmp_path, load_private_key(tmp_path / "keys" / "signing.key"), public, served)


def model_states(messages: list[Received], request_id: str) -> list[str]:
    return [d["state"] for d in docs(messages, "model") if d.get("id") == request_id]


def assert_steps_in_order(published: list[str], logged: list[str]) -> None:
    """Each published step is a logged one, in the logged order, and the last is the last."""
    assert published and published[-1] == logged[-1], (published, logged)
    steps = iter(logged)
    assert all(step in steps for step in published), (published, logged)


def test_install_over_mqtt_from_a_loopback_server(
    fleet: Fleet, board: Board, subscribe: Callable[..., Subscriber]
) -> None:
    config = fleet.config(board.broker.port)
    agent = board.start(config, fleet.root / "agent.log")
    manifest = fleet.shipped_variant(NEXT)
    with ModelServer(fleet.served) as server:
        answer = board.install("roll-2", manifest, fleet.url(server, manifest))
    assert answer["ok"], answer
    assert answer["result"]["state"] == "active" and answer["result"]["model_version"] == NEXT
    # The agent logs every step; ``model`` is latest-per-topic in the outbox, so a step the link
    # had not yet sent may be replaced by the next one: what arrives is the steps in order, and
    # always the last.
    logged = re.findall(r"model install id=roll-2 state=(\w+)", agent.log_text())
    assert logged[0] == "verifying" and logged[-3:] == ["verifying", "testing", "active"]
    assert "downloading" in logged
    messages = board.watcher.wait_for(has("model", state="active", id="roll-2"), timeout=10)
    assert_steps_in_order(model_states(messages, "roll-2"), logged)
    late = subscribe(board.broker, f"{ROOT_TOPIC}/model")  # retained: a dashboard joining later
    retained = late.wait_for(lambda ms: bool(ms), timeout=10)
    assert json.loads(retained[-1].payload)["state"] == "active"

    status = remotair("status", "--config", config)
    assert status.returncode == 0, status.stderr
    signer = manifest["signature"]["key_id"]
    assert f"version {NEXT}, signed by {signer}, from the store" in status.stdout
    assert f"install:  roll-2 active (version {NEXT})" in status.stdout

    # The same release again is a downgrade (not newer than the active one), refused in one line.
    with ModelServer(fleet.served) as server:
        again = board.install("roll-2b", manifest, fleet.url(server, manifest))
    assert again["error"].startswith(f"downgrade: version {NEXT} is not newer")


def test_a_model_failing_after_the_switch_is_rolled_back_by_itself(
    fleet: Fleet, board: Board
) -> None:
    config = fleet.config(board.broker.port, snapshot_s=1.0, models="probation_failures = 2\n")
    agent = board.start(config, fleet.root / "agent.log")
    manifest = fleet.tiny("nan_on_dark", NEXT)
    with ModelServer(fleet.served) as server:
        assert board.install("bad-2", manifest, fleet.url(server, manifest))["ok"]
    messages = board.watcher.wait_for(has("model", state="rolled back", id="bad-2"), timeout=60)
    rolled = [d for d in docs(messages, "model") if d["state"] == "rolled back"][-1]
    assert rolled["rolled_back"] == manifest["sha256"]
    assert "classifications failed in a row" in rolled["reason"]
    board.watcher.wait_for(
        lambda ms: str(docs(ms, "status")[-1].get("model")).startswith("visual_clean"),
        timeout=20,
    )
    assert agent.process.poll() is None


def test_sigkill_during_probation_rolls_back_at_restart(fleet: Fleet, board: Board) -> None:
    config = fleet.config(board.broker.port, models="probation_verdicts = 1000\n")
    first = board.start(config, fleet.root / "first.log")
    manifest = fleet.tiny("constant", NEXT)
    with ModelServer(fleet.served) as server:
        assert board.install("new-2", manifest, fleet.url(server, manifest))["ok"]
    first.process.send_signal(signal.SIGKILL)  # as a crash inside the runtime would
    assert first.process.wait(timeout=10) == -signal.SIGKILL

    board.processes.append(spawn_agent(config, fleet.root / "second.log"))
    messages = board.watcher.wait_for(has("model", state="rolled back", id="new-2"), timeout=60)
    rolled = [d for d in docs(messages, "model") if d["state"] == "rolled back"][-1]
    assert "stopped unexpectedly" in rolled["reason"]
    board.watcher.wait_for(
        lambda ms: str(docs(ms, "status")[-1].get("model")).startswith("visual_clean"),
        timeout=30,
    )
