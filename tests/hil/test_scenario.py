"""Soak scenarios: the file format's errors, the report, and the 60-second mix run for real.

The mix runs ``remotair sim scenario`` as a technician would (a subprocess with its own
Mosquitto, agent and independent consumer) and reads the JUnit file it writes.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import get_args

import pytest

from hil.scenario import ScenarioError, load_scenario
from hil.scenario.model import FaultKind
from hil.scenario.report import Report

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "hil" / "scenarios"
MIX_60S = SCENARIOS / "mix-60s.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_every_problem_is_one_line_naming_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name = "bad"
duration_s = 30
colour = "red"
[agent]
sensor_interval_s = "fast"
[[faults]]
at_s = 1
kind = "sensor_unplug"
for_s = 2
[[faults]]
at_s = 2
kind = "earthquake"
[[faults]]
at_s = 3
kind = "clock_jump"
[[faults]]
at_s = 25
kind = "broker_down"
for_s = 10
""",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    text = "\n".join(lines)
    assert "colour: unknown key" in text
    assert "agent.sensor_interval_s: " in text
    assert "faults[0]: sensor_unplug needs target = one of bme280, scd41" in text
    assert "faults[1].kind: " in text and "'broker_down'" in text
    assert "faults[2]: jump_s goes with kind = 'clock_jump'" in text
    assert len(lines) == 5, lines  # faults[3] outlasting duration_s is checked once the rest is


def test_a_fault_outlasting_the_scenario_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name = "x"\nduration_s = 30\n[[faults]]\nat_s = 25\nkind = "broker_down"\nfor_s = 10\n',
    )
    with pytest.raises(ScenarioError, match=r"faults\[0\] \(broker_down\) ends at 35 s"):
        load_scenario(path)


def test_a_fault_asked_of_a_stopped_agent_is_refused(tmp_path: Path) -> None:
    text = 'name = "x"\nduration_s = 20\n[[faults]]\nat_s = 2\nkind = "cpu_stop"\nfor_s = 5\n'
    text += '[[faults]]\nat_s = 1\nkind = "camera_black"\ntarget = "upstream"\nfor_s = 3\n'
    with pytest.raises(ScenarioError, match=r"faults\[1\] \(camera_black\) needs the agent's"):
        load_scenario(write(tmp_path, text))


def test_a_crc_storm_needs_a_sensor_with_a_checksum(tmp_path: Path) -> None:
    text = 'name = "x"\nduration_s = 9\n[[faults]]\nat_s = 1\nkind = "crc_storm"\nfor_s = 1\n'
    with pytest.raises(ScenarioError, match="one of scd41, filter_dp, mhz19"):
        load_scenario(write(tmp_path, text + 'target = "bme280"\n'))


def test_not_toml_and_missing_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not TOML"):
        load_scenario(write(tmp_path, "name = \n"))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "none.toml")


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_scenarios_load_and_inject_every_kind_of_fault(path: Path) -> None:
    scenario = load_scenario(path)
    assert {f.kind for f in scenario.faults} == set(get_args(FaultKind))
    assert any(f.alarm is not None for f in scenario.faults)


def test_the_junit_report_counts_failures_and_skips(tmp_path: Path) -> None:
    report = Report("unit")
    report.add("fault", "00 broker_down", "PASS", "at 1 s")
    report.add("fault", "01 disk_full", "SKIP", "needs root")
    report.add("expect", "no seq lost", "FAIL", "lost 3")
    report.write_junit(tmp_path / "out.xml")
    suite = ET.parse(tmp_path / "out.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='no seq lost']/failure")
    assert failure is not None and failure.get("message") == "lost 3"
    assert not report.passed
    assert "RESULT FAIL (3 checks, 1 failed)" in report.text()


@pytest.mark.broker
@pytest.mark.slow
def test_the_60_second_mix_holds_every_expectation(tmp_path: Path) -> None:
    junit = tmp_path / "soak.xml"
    command = [sys.executable, "-m", "agent", "sim", "scenario", str(MIX_60S), "--junit"]
    done = subprocess.run(
        [*command, str(junit), "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RESULT PASS" in done.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0", done.stdout
    figures = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert figures["lost"] == "0"
    assert int(figures["received"] or 0) >= int(figures["sent"] or 1) > 0
    cases = {case.get("name", "") for case in suite.iter("testcase")}
    scenario = load_scenario(MIX_60S)
    for index, fault in enumerate(scenario.faults):
        assert any(name.startswith(f"{index:02d} {fault.kind}") for name in cases), fault
    for expected in ("no seq lost", "threads alive", "RSS bounded", "clean stop"):
        assert expected in cases
