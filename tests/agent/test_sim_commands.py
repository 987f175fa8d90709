"""``sim`` and ``sim_clock``: the control-socket commands that break a simulated board's parts.

The soak scenarios (``remotair sim scenario``) inject their sensor, camera and clock faults
through these; here each is checked on a built (not started) agent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.command_table import Transport
from agent.config import parse_config
from agent.daemon import Agent, build_agent

CONFIG = """
[board]
kind = "sim"
[[board.sensors]]
name = "scd41"
chip = "scd4x"
[[board.sensors]]
name = "bme280"
chip = "bme280"
[[board.cameras]]
name = "upstream"
backend = "sim"
[storage]
dir = "{state}"
[vision]
backend = "off"
[control]
socket = "{state}/control.sock"
"""


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    config = parse_config(CONFIG.format(state=tmp_path), source="test.toml", env={})
    built = build_agent(config)
    yield built
    built.shutdown(flush_timeout_s=0.1)


def call(agent: Agent, command: str, **args: object) -> dict[str, object]:
    return agent.commands.call(command, args, transport=Transport.LOCAL).to_body()


def test_a_crc_storm_corrupts_every_answer_until_mended(agent: Agent) -> None:
    assert agent.board.sim is not None
    answer = call(agent, "sim", name="scd41", fault="crc", broken=True)
    assert answer == {
        "ok": True,
        "result": {"name": "scd41", "kind": "sensor", "fault": "crc", "broken": True},
    }
    assert agent.board.sim.faults("scd41").corrupt_crc == -1
    call(agent, "sim", name="scd41", fault="crc", broken=False)
    assert agent.board.sim.faults("scd41").corrupt_crc == 0


@pytest.mark.parametrize("fault", ["black", "frozen", "unplug"])
def test_camera_faults_flip_the_simulated_camera(agent: Agent, fault: str) -> None:
    assert agent.board.sim is not None
    panel = agent.board.sim.cameras["upstream"].faults
    attribute = "dead" if fault == "unplug" else fault
    assert call(agent, "sim", name="upstream", fault=fault, broken=True)["ok"] is True
    assert getattr(panel, attribute) is True
    call(agent, "sim", name="upstream", fault=fault, broken=False)
    assert getattr(panel, attribute) is False


def test_a_fault_the_part_cannot_have_is_refused_in_one_line(agent: Agent) -> None:
    answer = call(agent, "sim", name="bme280", fault="black", broken=True)
    assert answer["ok"] is False
    assert answer["error"] == "a sensor cannot be black; sensor faults: ('unplug', 'crc')"


def test_a_clock_jump_moves_the_readings_timestamps_not_the_schedule(agent: Agent) -> None:
    before = agent.sample_round().ts
    answer = call(agent, "sim_clock", jump_s=-3600.0)
    assert answer == {"ok": True, "result": {"jump_s": -3600.0, "offset_s": -3600.0}}
    after = agent.sample_round().ts
    assert after - before == pytest.approx(-3600.0, abs=60.0)
    assert abs(agent.board.wall_clock() - (time.time() - 3600.0)) < 5.0
