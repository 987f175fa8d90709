"""Run one soak scenario: a private broker, the agent as a subprocess, an independent consumer,
the fault timeline, then every expectation checked from the outside.

The timeline's clock starts when the agent first answers on its control socket. Faults are
injected and mended at their times; afterwards the run waits (``drain_within_s``) for a status
whose every stream seq arrived or is reported, and checks the alarms, the threads and memory.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.broker import LocalBroker
from hil.consumer import ContractConsumer
from hil.scenario.agent_process import DEVICE, AgentProcess, ControlFailed, config_text
from hil.scenario.faults import FaultSkipped, Harness, inject, mend
from hil.scenario.model import Fault, Scenario
from hil.scenario.report import Outcome, Report

RSS_PERIOD_S = 1.0
THREAD_DEATH = "Exception in thread"
"""What Python prints when a thread dies of an uncaught exception."""


@dataclass(frozen=True, slots=True)
class _Step:
    at_s: float
    index: int
    fault: Fault
    mending: bool


def run_scenario(
    scenario: Scenario, workdir: Path, *, echo: Callable[[str], None] = lambda _: None
) -> Report:
    """Run ``scenario`` with its files under ``workdir``; ``echo`` hears each line as it happens."""
    report = Report(scenario.name)
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    needs_disk = any(f.kind == "disk_full" for f in scenario.faults)
    with contextlib.ExitStack() as stack:
        mounted = needs_disk and stack.enter_context(_tmpfs(state_dir, scenario.agent.disk_mib))
        broker = LocalBroker(workdir / "broker", persistence=True)
        broker.start()
        stack.callback(broker.stop)
        consumer = ContractConsumer(broker.host, broker.port, DEVICE, f"soak-{os.getpid()}")
        stack.callback(consumer.close)
        config = workdir / "agent.toml"
        control = workdir / "control.sock"
        config.write_text(config_text(scenario.agent, state_dir, control, broker.port))
        agent = AgentProcess(config, workdir / "agent.log", control)
        harness = Harness(broker, agent, state_dir, bool(mounted))
        stack.callback(harness.close)
        stack.callback(agent.stop)
        agent.start()
        echo(f"agent pid {agent.pid} on broker port {broker.port}; files in {workdir}")
        stop_sampling = _sample_rss(agent)
        stack.callback(stop_sampling)
        t0 = agent.started_at
        injected_at = _play(scenario, harness, report, t0, echo)
        _pause_until(t0 + scenario.duration_s)
        _check_delivery(scenario, consumer, report, echo)
        _check_alarms(scenario, consumer, injected_at, report, echo)
        _check_threads(scenario, agent, report, echo)
        stop_sampling()
        _check_rss(scenario, agent, report, echo)
        code = agent.stop()
        detail = f"SIGTERM -> exit code {code}"
        report.add("expect", "clean stop", "PASS" if code == 0 else "FAIL", detail)
        report.figures.agent_starts = agent.incarnation
    report.figures.wall_s = time.monotonic() - started
    return report


def _play(
    scenario: Scenario,
    harness: Harness,
    report: Report,
    t0: float,
    echo: Callable[[str], None],
) -> dict[int, tuple[float, float | None]]:
    """Inject and mend on time; for each fault, when it was injected and mended (monotonic)."""
    steps: list[_Step] = []
    for index, fault in enumerate(scenario.faults):
        steps.append(_Step(fault.at_s, index, fault, mending=False))
        if fault.kind != "clock_jump" and not (fault.kind == "agent_kill" and fault.for_s == 0):
            steps.append(_Step(fault.ends_at_s, index, fault, mending=True))
    steps.sort(key=lambda s: (s.at_s, s.mending is False, s.index))
    times: dict[int, tuple[float, float | None]] = {}
    notes: dict[int, str] = {}
    failed: dict[int, tuple[Outcome, str]] = {}
    for step in steps:
        if step.index in failed:
            continue
        _pause_until(t0 + step.at_s)
        try:
            note = (mend if step.mending else inject)(harness, step.fault)
        except FaultSkipped as exc:
            failed[step.index] = ("SKIP", str(exc))
            continue
        except (ControlFailed, OSError, subprocess.SubprocessError) as exc:
            doing = "mending" if step.mending else "injecting"
            failed[step.index] = ("FAIL", f"{doing}: {exc}")
            continue
        now = time.monotonic()
        injected, _ = times.get(step.index, (now, None))
        times[step.index] = (injected, now if step.mending else None)
        notes[step.index] = f"{notes[step.index]}; {note}" if step.mending else note
        what = "mended" if step.mending else "injected"
        echo(f"{now - t0:7.1f} s  {step.fault.kind} {what}: {note}")
    for index, fault in enumerate(scenario.faults):
        name = f"{index:02d} {fault.kind}" + (f" {fault.target}" if fault.target else "")
        if index in failed:
            report.add("fault", name, *failed[index])
            continue
        injected, mended = times[index]
        when = f"at {injected - t0:.1f} s"
        if mended is not None:
            when += f", mended at {mended - t0:.1f} s"
        report.add(
            "fault", name, "PASS", f"{when}: {notes[index]}", (mended or injected) - injected
        )
        report.figures.faults_injected += 1
    return times


def _check_delivery(
    scenario: Scenario, consumer: ContractConsumer, report: Report, echo: Callable[[str], None]
) -> None:
    expect = scenario.expect
    seen = len(consumer.statuses)
    began = time.monotonic()
    complete = consumer.wait_for(
        lambda: len(consumer.statuses) > seen and not consumer.missing(), expect.drain_within_s
    )
    drained_s = time.monotonic() - began
    f = report.figures
    lost = consumer.missing() - {-1}
    f.sent, f.received = consumer.issued(), len(consumer.received)
    f.reported_gaps, f.lost, f.duplicates = len(consumer.reported()), len(lost), consumer.duplicates
    ok = complete and f.lost <= expect.max_lost and not consumer.reused and f.sent > 0
    detail = (
        f"sent {f.sent}, received {f.received}, reported gaps {f.reported_gaps},"
        f" lost {f.lost} (at most {expect.max_lost}), duplicates {f.duplicates},"
        f" drained in {drained_s:.1f} s"
    )
    if not complete:
        detail += f"; no complete status within {expect.drain_within_s:g} s"
    if lost:
        detail += f"; first lost seqs {sorted(lost)[:10]}"
    if consumer.reused:
        detail += f"; seqs reused for other payloads {consumer.reused[:10]}"
    report.add("expect", "no seq lost", "PASS" if ok else "FAIL", detail, drained_s)


def _check_alarms(
    scenario: Scenario,
    consumer: ContractConsumer,
    times: dict[int, tuple[float, float | None]],
    report: Report,
    echo: Callable[[str], None],
) -> None:
    for index, fault in enumerate(scenario.faults):
        alarm = fault.alarm
        if alarm is None or index not in times:
            continue
        injected, mended = times[index]
        raised = _first(consumer, alarm.name, "raised", injected)
        label = f"{index:02d} alarm {alarm.name} raised"
        if raised is None:
            report.add("expect", label, "FAIL", f"never raised (limit {alarm.raised_within_s:g} s)")
        else:
            latency = raised - injected
            report.figures.alarm_latencies_s[f"{index:02d} {alarm.name} raised"] = round(latency, 2)
            ok = latency <= alarm.raised_within_s
            detail = f"{latency:.2f} s after the fault (limit {alarm.raised_within_s:g} s)"
            report.add("expect", label, "PASS" if ok else "FAIL", detail, latency)
        if alarm.cleared_within_s is None or mended is None:
            continue
        cleared = _first(consumer, alarm.name, "cleared", mended)
        label = f"{index:02d} alarm {alarm.name} cleared"
        if cleared is None:
            detail = f"never cleared (limit {alarm.cleared_within_s:g} s)"
            report.add("expect", label, "FAIL", detail)
            continue
        latency = cleared - mended
        report.figures.alarm_latencies_s[f"{index:02d} {alarm.name} cleared"] = round(latency, 2)
        ok = latency <= alarm.cleared_within_s
        detail = f"{latency:.2f} s after mending (limit {alarm.cleared_within_s:g} s)"
        report.add("expect", label, "PASS" if ok else "FAIL", detail, latency)


def _first(consumer: ContractConsumer, name: str, state: str, after: float) -> float | None:
    arrivals = [a.at for a in list(consumer.alarms) if a.name == name and a.state == state]
    return next((at for at in arrivals if at >= after), None)


def _check_threads(
    scenario: Scenario, agent: AgentProcess, report: Report, echo: Callable[[str], None]
) -> None:
    """Every job of the agent still runs: its run count grows over two of its longest periods."""
    if not scenario.expect.threads_alive:
        return
    settings = scenario.agent
    window = 2 * max(settings.sensor_interval_s, settings.snapshot_interval_s) + 0.5
    problems: list[str] = []
    counts: dict[str, str] = {}
    try:
        before = _jobs(agent)
        _pause_until(time.monotonic() + window)
        after = _jobs(agent)
    except ControlFailed as exc:
        problems.append(f"no status from the agent: {exc}")
        before = after = {}
    for job, runs in before.items():
        grown = after.get(job, {}).get("runs", 0) - runs["runs"]
        counts[job] = f"+{grown}"
        if grown <= 0:
            problems.append(f"job {job} made no run in {window:g} s")
    log = agent.log.read_text(errors="replace")
    if THREAD_DEATH in log:
        problems.append(f"{log.count(THREAD_DEATH)} thread(s) died (see {agent.log})")
    if not agent.alive():
        problems.append("the agent is not running")
    detail = ", ".join(f"{job} {grown} runs" for job, grown in counts.items())
    detail += f" in {window:g} s; no '{THREAD_DEATH}' in the log"
    if problems:
        detail = "; ".join(problems)
    report.add("expect", "threads alive", "FAIL" if problems else "PASS", detail, window)


def _jobs(agent: AgentProcess) -> dict[str, Any]:
    jobs: dict[str, Any] = agent.control("status")["jobs"]
    return jobs


def _check_rss(
    scenario: Scenario, agent: AgentProcess, report: Report, echo: Callable[[str], None]
) -> None:
    warm = [s for s in agent.rss if s.since_start_s >= scenario.expect.warm_up_s]
    if not warm:
        report.add("expect", "RSS bounded", "SKIP", "no RSS sample after the warm-up")
        return
    growth = 0.0
    for incarnation in sorted({s.incarnation for s in warm}):
        mine = [s for s in warm if s.incarnation == incarnation]
        growth = max(growth, mine[-1].rss_mib - mine[0].rss_mib)
    f = report.figures
    f.rss_start_mib, f.rss_end_mib = round(warm[0].rss_mib, 1), round(warm[-1].rss_mib, 1)
    f.rss_growth_mib = round(growth, 1)
    limit = scenario.expect.max_rss_growth_mib
    detail = (
        f"{f.rss_start_mib} MiB after {scenario.expect.warm_up_s:g} s -> {f.rss_end_mib} MiB"
        f" at the end; largest growth of one process {growth:+.1f} MiB"
    )
    if limit is None:
        report.add("expect", "RSS bounded", "PASS", detail + " (no limit set)")
        return
    detail += f" (limit {limit:g})"
    report.add("expect", "RSS bounded", "PASS" if growth <= limit else "FAIL", detail)


def _sample_rss(agent: AgentProcess) -> Callable[[], None]:
    """Sample the agent's RSS every second in a thread; the returned call stops it."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(RSS_PERIOD_S):
            agent.sample_rss()

    thread = threading.Thread(target=loop, name="soak-rss", daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(timeout=5)

    return stop


def _pause_until(deadline: float) -> None:
    """The timeline's own clock: wait for a point of the scenario (not a test's wait)."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


@contextlib.contextmanager
def _tmpfs(where: Path, mib: int) -> Iterator[bool]:
    """A ``mib`` MiB tmpfs at ``where`` when we may mount (root); yields whether it is."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    command = ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(where)]
    mounted = subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)
