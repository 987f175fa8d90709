"""Soak scenarios: a TOML timeline of faults and expectations run against the simulated board.

``remotair sim scenario FILE`` (and ``make soak``) run one; :mod:`hil.scenario.model` is the
file's format, :mod:`hil.scenario.faults` what each fault does.
"""

from hil.scenario.model import Scenario, ScenarioError, load_scenario
from hil.scenario.report import Report
from hil.scenario.run import run_scenario

__all__ = ["Report", "Scenario", "ScenarioError", "load_scenario", "run_scenario"]
