"""How each fault of a scenario is injected and mended, from outside the agent where it can be.

=============  ============================================================================
kind           what it does (``for_s`` later it is mended)
=============  ============================================================================
broker_down    stops the private Mosquitto (its persistence kept), starts it on the same port
agent_kill     SIGKILLs the agent; restarts it ``for_s`` later (0: at once)
disk_full      fills the state directory's tmpfs until ENOSPC; deletes the filler
sensor_unplug  the sensor stops answering (I2C NACK, UART silence)
crc_storm      every answer of the sensor has a bad checksum
camera_unplug  captures fail (a dead ribbon cable)
camera_black   frames arrive black (lens covered)
camera_frozen  every frame is the last good one (a hung pipeline)
clock_jump     steps the simulated board's wall clock by ``jump_s`` (an NTP step); one-shot
cpu_stop       SIGSTOPs the agent, SIGCONTs it (a starved or swapped-out process)
cpu_hog        runs ``processes`` busy loops on the agent's CPUs, at the agent's priority
=============  ============================================================================

Sensor, camera and clock faults live inside the agent's simulated board, so they are asked
for on its control socket (``sim`` and ``sim_clock``); a restart of the agent mends them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hil.broker import LocalBroker
from hil.scenario.agent_process import AgentProcess
from hil.scenario.model import Fault

_BUSY_LOOP = "while True: pass"
_SIM_FAULT = {
    "sensor_unplug": "unplug",
    "crc_storm": "crc",
    "camera_unplug": "unplug",
    "camera_black": "black",
    "camera_frozen": "frozen",
}


class FaultSkipped(Exception):
    """This fault cannot be injected here (and why); the run reports it as SKIP."""


@dataclass
class Harness:
    """What faults act on: the broker, the agent, its state directory."""

    broker: LocalBroker
    agent: AgentProcess
    state_dir: Path
    disk_mounted: bool
    hogs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def close(self) -> None:
        for hog in self.hogs:
            hog.kill()
            hog.wait(timeout=5)
        self.hogs.clear()


def inject(harness: Harness, fault: Fault) -> str:
    """Break it; returns what was done, in words. Raises :class:`FaultSkipped`."""
    agent = harness.agent
    match fault.kind:
        case "broker_down":
            harness.broker.stop()
            return f"broker stopped for {fault.for_s:g} s"
        case "agent_kill":
            agent.kill()
            if fault.for_s == 0:
                agent.start()
                return f"SIGKILL, restarted (pid {agent.pid})"
            return f"SIGKILL, restart in {fault.for_s:g} s"
        case "disk_full":
            if not harness.disk_mounted:
                raise FaultSkipped("needs root and mount to put the state directory on a tmpfs")
            return f"state tmpfs filled with {_fill(harness.state_dir / 'filler') >> 10} KiB"
        case "clock_jump":
            assert fault.jump_s is not None
            answer = agent.control("sim_clock", {"jump_s": fault.jump_s})
            return f"wall clock {fault.jump_s:+g} s (now {answer['offset_s']:+g} s off)"
        case "cpu_stop":
            agent.pause()
            return f"SIGSTOP for {fault.for_s:g} s"
        case "cpu_hog":
            cpus = os.sched_getaffinity(agent.pid)
            for _ in range(fault.processes):
                hog = subprocess.Popen([sys.executable, "-c", _BUSY_LOOP])
                os.sched_setaffinity(hog.pid, cpus)
                harness.hogs.append(hog)
            return f"{fault.processes} busy loop(s) on CPUs {sorted(cpus)} for {fault.for_s:g} s"
        case _:
            _sim(agent, fault, broken=True)
            return f"{fault.target}: {_SIM_FAULT[fault.kind]} for {fault.for_s:g} s"


def mend(harness: Harness, fault: Fault) -> str:
    """Undo it; returns what was done."""
    agent = harness.agent
    match fault.kind:
        case "broker_down":
            harness.broker.start()
            return "broker started"
        case "agent_kill":
            agent.start()
            return f"restarted (pid {agent.pid})"
        case "disk_full":
            (harness.state_dir / "filler").unlink(missing_ok=True)
            return "filler deleted"
        case "cpu_stop":
            agent.resume()
            return "SIGCONT"
        case "cpu_hog":
            harness.close()
            return "busy loops killed"
        case "clock_jump":
            return "one-shot"
        case _:
            _sim(agent, fault, broken=False)
            return f"{fault.target}: mended"


def _sim(agent: AgentProcess, fault: Fault, *, broken: bool) -> None:
    args = {"name": fault.target, "fault": _SIM_FAULT[fault.kind], "broken": broken}
    agent.control("sim", args)


def _fill(path: Path) -> int:
    """Write zeros until the file system is full; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with contextlib.suppress(OSError), path.open("wb") as sink:
        while True:
            sink.write(chunk)
            sink.flush()
            written += len(chunk)
    return written
