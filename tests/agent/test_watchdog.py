"""The watchdog is pinged only while the sensor job is alive: a hung bus gets a restart."""

from __future__ import annotations

import threading
import time

from agent.config import parse_config
from agent.daemon import Agent
from agent.scheduler import PeriodicJob


def agent_with_sensor_job(interval_s: float) -> Agent:
    agent = Agent(parse_config('[board]\nkind = "sim"\n'))
    agent.jobs["sensors"] = PeriodicJob("sensors", interval_s, lambda: None, stop=threading.Event())
    return agent


def test_healthy_while_rounds_finish_in_time() -> None:
    agent = agent_with_sensor_job(30.0)
    assert agent.healthy(), "before the first round, within the grace period"
    agent.jobs["sensors"].stats.last_finished = time.monotonic() - 80.0
    assert agent.healthy(), "80 s ago is within 3 x 30 s"


def test_a_stalled_sensor_job_stops_the_watchdog() -> None:
    agent = agent_with_sensor_job(30.0)
    agent.jobs["sensors"].stats.last_finished = time.monotonic() - 95.0
    assert not agent.healthy()


def test_no_round_ever_finished_is_unhealthy_after_the_grace_period() -> None:
    agent = agent_with_sensor_job(1.0)
    agent._monotonic_start -= 61.0  # started a minute ago, never finished a round
    assert not agent.healthy()
