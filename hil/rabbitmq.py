"""A throwaway RabbitMQ node with its MQTT plugin on loopback: the second broker of the tests.

RabbitMQ is where a fleet that outgrows one Mosquitto can go (it clusters), and its MQTT plugin
(Debian's ``rabbitmq-server`` 3.10) behaves differently enough to be tested against: MQTT 3.1.1
only, retained messages only for exact topic filters, sessions as durable queues.

The node runs unprivileged from a private temporary directory (as the ``rabbitmq`` user when we
are root, the way the Debian package runs it), with its own Erlang port mapper (epmd) on a free
port so that it can neither collide with a system RabbitMQ nor with another test run. Booting a
node takes about 10 s, so one node serves a whole test session: ``stop()`` and ``start()`` only
stop and start the RabbitMQ application (about 2 s each, the MQTT port stays the same, durable
sessions and retained messages survive, as in a broker restart); ``close()`` ends the node and
its port mapper and removes the directory.

Both processes are our children and get SIGTERM when the thread that started them ends
(``setpriv --pdeathsig``): a test run that is killed outright leaves no node behind either.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from hil.broker import BrokerError, await_or_kill, end_process, free_port, port_open

SCRIPTS = Path("/usr/lib/rabbitmq/bin")
"""Debian's unwrapped RabbitMQ scripts (``/usr/sbin``'s wrappers insist on running as root)."""

BOOT_TIMEOUT_S = 90.0
APP_TIMEOUT_S = 30.0
EPMD_TIMEOUT_S = 10.0
CTL_TIMEOUT_S = 60.0
SERVICE_USER = "rabbitmq"

# Erlang's schedulers busy-wait by default: on a 2-core machine shared with the tests that
# costs a core for nothing.
ERL_ARGS = "+sbwt none +sbwtdcpu none +sbwtdio none"


def _dies_with_us() -> list[str]:
    """The command prefix that makes a child get SIGTERM when we end (util-linux setpriv)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def rabbitmq_scripts() -> Path:
    if not (SCRIPTS / "rabbitmq-server").exists():
        raise BrokerError(
            "rabbitmq-server is not installed: run `make broker` "
            "(or `apt-get install rabbitmq-server`)"
        )
    return SCRIPTS


class RabbitMqBroker:
    """One RabbitMQ node listening for MQTT on ``host:port`` (free loopback ports)."""

    kind = "rabbitmq"
    protocols = frozenset({"3.1.1"})

    def __init__(self, extra_config: str = "") -> None:
        self.scripts = rabbitmq_scripts()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.amqp_port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="remotair-rabbitmq-"))
        self.log_path = self.directory / "console.log"
        node = f"remotair-test-{self.port}@localhost"
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "log.console = true\n"
            "log.console.level = warning\n"
            "log.file = false\n" + extra_config
        )
        (self.directory / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.directory),  # the Erlang cookie the node and rabbitmqctl share
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(free_port()),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
        }
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = SERVICE_USER
            account = pwd.getpwnam(SERVICE_USER)
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._process: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self._node_pid: int | None = None
        self._epmd_pid: int | None = None
        self._app_running = False

    @property
    def running(self) -> bool:
        return self._app_running and self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Boot the node the first time, start its application after a ``stop()``."""
        if self.running:
            return
        if self._process is None or self._process.poll() is not None:
            self._boot()
        else:
            self._ctl("start_app")
            self._wait_for_port(APP_TIMEOUT_S, "after start_app")
        self._app_running = True

    def stop(self) -> None:
        """Take the MQTT listener away (a broker outage); the node keeps its state."""
        if not self.running:
            return
        self._ctl("stop_app")
        self._app_running = False

    def close(self) -> None:
        """Stop the node and its port mapper, remove the directory. Safe to call twice."""
        atexit.unregister(self.close)
        process, self._process = self._process, None
        self._app_running = False
        if process is not None and process.poll() is None:
            with contextlib.suppress(BrokerError):
                self._ctl("stop")
            await_or_kill(process, 30)
        epmd, self._epmd = self._epmd, None
        end_process(epmd)
        shutil.rmtree(self.directory, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this node is still there (after ``close()``: nothing, or a bug to fix)."""
        found = []
        for what, pid in (("node", self._node_pid), ("port mapper", self._epmd_pid)):
            if pid is not None and Path(f"/proc/{pid}").exists():
                found.append(f"{what} process {pid}")
        for what, port in (("MQTT", self.port), ("port mapper", int(self._env["ERL_EPMD_PORT"]))):
            if port_open(self.host, port):
                found.append(f"{what} listening on {self.host}:{port}")
        if self.directory.exists():
            found.append(f"directory {self.directory}")
        return found

    def _boot(self) -> None:
        atexit.register(self.close)  # a forgotten close() must not leave a node behind
        with self.log_path.open("ab") as log_file:
            # Our own port mapper, in the foreground: the node finds it on ERL_EPMD_PORT and does
            # not start a daemon one that would outlive everything.
            self._epmd = self._spawn(["epmd", "-port", self._env["ERL_EPMD_PORT"]], log_file)
            self._process = self._spawn([str(self.scripts / "rabbitmq-server")], log_file)
        self._node_pid, self._epmd_pid = self._process.pid, self._epmd.pid
        try:
            self._wait_for_epmd()
            self._wait_for_port(BOOT_TIMEOUT_S, "after boot")
            # The port may be someone else's (free ports are only free when asked): the node
            # is up when it says so, and it dies if its listener cannot bind.
            self._ctl("await_startup")
        except BrokerError as exc:
            log = self._log_tail()
            self.close()
            raise BrokerError(f"{exc}\nits console log:\n{log}") from exc

    def _spawn(self, argv: list[str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        """A child as the node's user, that gets SIGTERM when we end. Not in the terminal's
        process group: a Ctrl-C reaches only the tests, whose teardown stops it cleanly."""
        return subprocess.Popen(
            [*_dies_with_us(), *argv],
            **self._as_node_user,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )

    def _wait_for_epmd(self) -> None:
        port = int(self._env["ERL_EPMD_PORT"])
        deadline = time.monotonic() + EPMD_TIMEOUT_S
        while not port_open(self.host, port):
            if self._epmd is None or self._epmd.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"the Erlang port mapper did not listen on port {port}")
            time.sleep(0.05)

    def _wait_for_port(self, timeout_s: float, when: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            if port_open(self.host, self.port):
                return
            time.sleep(0.1)
        if self._process is not None and self._process.poll() is not None:
            raise BrokerError(
                f"RabbitMQ exited (status {self._process.returncode}) before accepting MQTT "
                f"connections on {self.host}:{self.port} {when}"
            )
        raise BrokerError(
            f"RabbitMQ did not accept MQTT connections on {self.host}:{self.port} {when} within "
            f"{timeout_s:g} s"
        )

    def _ctl(self, command: str) -> None:
        try:
            done = self._run_as_node_user(
                [str(self.scripts / "rabbitmqctl"), "-q", command], timeout_s=CTL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"rabbitmqctl {command} took over {CTL_TIMEOUT_S:g} s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise BrokerError(f"rabbitmqctl {command} failed ({done.returncode}): {output}")

    def _run_as_node_user(
        self, argv: list[str], timeout_s: float
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a tool with the node's environment (its Erlang cookie, its port mapper)."""
        return subprocess.run(
            argv, **self._as_node_user, capture_output=True, timeout=timeout_s, check=False
        )

    @property
    def _as_node_user(self) -> dict[str, Any]:
        """Where and as whom the node's processes run: its directory, environment and user."""
        return {"cwd": self.directory, "env": self._env, "user": self._user}

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RabbitMqBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
