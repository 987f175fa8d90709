"""Model rollout through the real agent process and a real Mosquitto: commands, retained state,
reload and SIGHUP. (The install steps themselves are covered in ``tests/agent/models``.)"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

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
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Mosquitto, Received, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

ONNX = 'backend = "onnx"\nthreads = 1'


def result(messages: list[Received], command: str, request_id: str) -> dict[str, Any] | None:
    found = [d for d in docs(messages, f"result/{command}") if d["id"] == request_id]
    return found[-1] if found else None


def answered(command: str, request_id: str) -> Callable[[list[Received]], bool]:
    return lambda messages: result(messages, command, request_id) is not None


@pytest.fixture
def processes() -> list[AgentProcess]:
    started: list[AgentProcess] = []
    yield started  # type: ignore[misc]
    for p in started:
        if p.process.poll() is None:
            p.process.kill()
            p.process.wait(timeout=10)


def test_reload_applies_a_good_config_and_refuses_a_bad_one(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    processes: list[AgentProcess],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    config = tmp_path / "agent.toml"
    good = config_text(tmp_path / "state", mosquitto.port, vision=ONNX)
    config.write_text(good)
    agent = spawn_agent(config, tmp_path / "agent.log")
    processes.append(agent)
    watcher.wait_for(has("status", state="online"), timeout=30)

    publish_command(mosquitto, "reload", {"id": "re-1"})
    messages = watcher.wait_for(answered("reload", "re-1"), timeout=20)
    first = result(messages, "reload", "re-1")
    assert first is not None and first["ok"], first
    assert first["result"]["model"].startswith("visual_clean_resnet18_int8@")
    assert first["result"]["restart_needed"] == []

    config.write_text(good.replace("sensor_interval_s = 0.2", "sensor_interval_s = 0.3"))
    publish_command(mosquitto, "reload", {"id": "re-2"})
    messages = watcher.wait_for(answered("reload", "re-2"), timeout=20)
    second = result(messages, "reload", "re-2")
    assert second is not None and second["result"]["restart_needed"] == ["schedule"]

    config.write_text(good.replace("[schedule]", "[schedule]\nsensor_intervall_s = 1"))
    agent.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP reload refused" in agent.log_text(), 20, "SIGHUP refused")
    publish_command(mosquitto, "reload", {"id": "re-3"})
    messages = watcher.wait_for(answered("reload", "re-3"), timeout=20)
    refused = result(messages, "reload", "re-3")
    assert refused is not None and refused["ok"] is False
    assert refused["error"].startswith("config refused, the running one is kept: ")
    assert "sensor_intervall_s" in refused["error"] and "\n" not in refused["error"]
    assert agent.process.poll() is None  # still running, on the old config
    publish_command(mosquitto, "ping", {"id": "alive"})
    watcher.wait_for(answered("ping", "alive"), timeout=20)
    assert "Traceback" not in agent.log_text()


def test_remote_install_without_trusted_keys_is_refused_and_said_so(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    processes: list[AgentProcess],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    config = tmp_path / "agent.toml"
    config.write_text(config_text(tmp_path / "state", mosquitto.port, vision=ONNX))
    agent = spawn_agent(config, tmp_path / "agent.log")
    processes.append(agent)
    watcher.wait_for(has("status", state="online"), timeout=30)
    manifest = json.loads(
        (Path(__file__).parents[2] / "models" / "visual_clean_resnet18_int8.json").read_text()
    )
    publish_command(
        mosquitto, "model_install", {"id": "in-1", "manifest": manifest, "url": "file:///nowhere"}
    )
    messages = watcher.wait_for(answered("model_install", "in-1"), timeout=20)
    answer = result(messages, "model_install", "in-1")
    assert answer is not None and answer["ok"] is False
    assert answer["error"].startswith("no trusted keys: ")
    state = watcher.wait_for(has("model", state="failed", id="in-1"), timeout=10)
    retained = [m for m in state if m.topic == f"{ROOT_TOPIC}/model"]
    assert retained and json.loads(retained[-1].payload)["check"] == "no trusted keys"

    publish_command(mosquitto, "model_rollback", {"id": "rb-1"})
    messages = watcher.wait_for(answered("model_rollback", "rb-1"), timeout=20)
    rollback = result(messages, "model_rollback", "rb-1")
    assert rollback is not None and rollback["error"] == "store: no previous model to roll back to"


def test_model_use_and_rollback_switch_the_running_agent(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    processes: list[AgentProcess],
) -> None:
    watcher = subscribe(mosquitto, f"{ROOT_TOPIC}/#")
    config = tmp_path / "agent.toml"
    config.write_text(config_text(tmp_path / "state", mosquitto.port, vision=ONNX))
    agent = spawn_agent(config, tmp_path / "agent.log")
    processes.append(agent)
    watcher.wait_for(has("status", state="online"), timeout=30)
    model = write_model_release(tmp_path / "release", "constant")

    used = remotair("model", "use", model, "--config", config)
    assert used.returncode == 0, used.stderr
    assert "the agent now runs tiny_constant@" in used.stdout
    watcher.wait_for(
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
