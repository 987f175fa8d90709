"""The agent under test: ``remotair run`` in a subprocess, killed, paused and restarted at will.

Everything here talks to the agent from the outside, as an operator would: signals, ``/proc``
for its memory, and the control socket (the client ``remotair status`` uses).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.control import request
from agent.errors import RemotairError
from hil.agent_toml import SimAgentToml
from hil.scenario.model import CAMERAS, SENSORS, AgentSettings

DEVICE = "soak-board"
CHIPS = {"bme280": "bme280", "scd41": "scd4x", "filter_dp": "sdp8xx", "mhz19": "mhz19"}
UART_PORTS = {"mhz19": "/dev/ttySIM0"}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


class ControlFailed(RuntimeError):
    """The agent did not answer on its control socket, or answered with an error."""


def config_text(settings: AgentSettings, state_dir: Path, control: Path, port: int) -> str:
    """The agent.toml of a scenario: the simulated board, a private broker, fast intervals."""
    return SimAgentToml(
        device=DEVICE,
        port=port,
        state_dir=state_dir,
        control=control,
        sensors={name: CHIPS[name] for name in SENSORS},
        uart_ports=UART_PORTS,
        cameras=tuple(CAMERAS),
        sim_speed=settings.sim_speed,
        sensor_interval_s=settings.sensor_interval_s,
        snapshot_interval_s=settings.snapshot_interval_s,
        status_interval_s=settings.status_interval_s,
        reconnect_max_s=1.0,
        mqtt_extra="ha_discovery = true",
        storage_extra=f"outbox_max_messages = {settings.outbox_max_messages}\nsnapshots_keep = 3",
    ).text()


@dataclass(frozen=True, slots=True)
class RssSample:
    at: float
    """The runner's monotonic clock."""
    incarnation: int
    """1 for the first agent process, 2 after the first restart, ..."""
    since_start_s: float
    rss_mib: float


class AgentProcess:
    """One agent at a time, started with ``config``, its output appended to ``log``."""

    def __init__(self, config: Path, log: Path, control: Path) -> None:
        self.config = config
        self.log = log
        self.control_path = control
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.started_at = 0.0
        self.rss: list[RssSample] = []

    @property
    def pid(self) -> int:
        assert self.process is not None, "the agent was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start ``remotair run`` and wait until its control socket answers."""
        environment = dict(os.environ)
        path = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = (
            f"{_SOURCE_ROOT}{os.pathsep}{path}" if path else str(_SOURCE_ROOT)
        )
        command = [sys.executable, "-m", "agent", "run", "--config", str(self.config)]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink, env=environment)
        self.incarnation += 1
        self.started_at = time.monotonic()
        deadline = self.started_at + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise ControlFailed(f"the agent exited at start; see {self.log}")
            try:
                self.control("ping", timeout_s=1.0)
                return
            except ControlFailed:
                time.sleep(0.1)
        raise ControlFailed(
            f"the agent did not answer within {START_TIMEOUT_S:g} s; see {self.log}"
        )

    def kill(self) -> None:
        """SIGKILL: nothing flushed, no handler runs (a power cut, the OOM killer)."""
        if self.process is not None and self.alive():
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM and the exit code (None: it had to be killed)."""
        if self.process is None or not self.alive():
            return None if self.process is None else self.process.returncode
        os.kill(self.pid, signal.SIGCONT)  # a paused agent cannot handle SIGTERM
        self.process.terminate()
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def sample_rss(self) -> RssSample | None:
        """Note the agent's resident memory now (from /proc), if it runs."""
        if not self.alive():
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                now = time.monotonic()
                mib = int(line.split()[1]) / 1024
                sample = RssSample(now, self.incarnation, now - self.started_at, mib)
                self.rss.append(sample)
                return sample
        return None

    def control(
        self, name: str, args: dict[str, Any] | None = None, timeout_s: float = 3.0
    ) -> dict[str, Any]:
        """One request on the control socket, as ``remotair status`` sends it; its result."""
        try:
            return request(self.control_path, name, timeout_s=timeout_s, args=args)
        except (RemotairError, OSError) as exc:
            raise ControlFailed(f"{name}: {exc}") from exc
