"""The watchdog is pinged only while the sensor job is alive: a hung bus gets a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.daemon import Agent, build_agent
from agent.scheduler import PeriodicJob


@pytest.fixture
def agent_with_sensor_job(tmp_path: Path) -> Iterator[Callable[[float], Agent]]:
    """A complete agent, never started, whose sensor job is one that never runs by itself."""
    built: list[Agent] = []

    def build(interval_s: float) -> Agent:
        config = parse_config(
            f'[board]\nkind = "sim"\n[storage]\ndir = "{tmp_path}"\n[vision]\nbackend = "off"\n',
            env={},
        )
        agent = build_agent(config)
        built.append(agent)
        job = PeriodicJob("sensors", interval_s, lambda: None, stop=threading.Event())
        agent.jobs["sensors"] = job
        return agent

    yield build
    for agent in built:
        agent.shutdown(flush_timeout_s=0.0)


def test_healthy_while_rounds_finish_in_time(
    agent_with_sensor_job: Callable[[float], Agent],
) -> None:
    agent = agent_with_sensor_job(30.0)
    assert agent.healthy(), "before the first round, within the grace period"
    agent.jobs["sensors"].stats.last_finished = time.monotonic() - 80.0
    assert agent.healthy(), "80 s ago is within 3 x 30 s"


def test_a_stalled_sensor_job_stops_the_watchdog(
    agent_with_sensor_job: Callable[[float], Agent],
) -> None:
    agent = agent_with_sensor_job(30.0)
    agent.jobs["sensors"].stats.last_finished = time.monotonic() - 95.0
    assert not agent.healthy()


def test_no_round_ever_finished_is_unhealthy_after_the_grace_period(
    agent_with_sensor_job: Callable[[float], Agent],
) -> None:
    agent = agent_with_sensor_job(1.0)
    agent._monotonic_start -= 61.0  # started a minute ago, never finished a round
    assert not agent.healthy()
