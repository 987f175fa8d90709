"""``remotair run``: the agent's main job, wiring the parts in the one direction data flows.

drivers -> sampling -> alarms/vision -> dispatcher -> outbox -> MQTT. Sensor sampling and each
camera run as their own periodic jobs; the main thread only watches: it moves the dispatcher's
backlog, publishes the health status, feeds the outbox fill level to the alarms, and pings the
systemd watchdog while the sensor job is alive.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from agent.agent_commands import agent_command_table
from agent.alarms import AlarmEngine, AlarmEvent
from agent.board import Board, open_board
from agent.command_table import CommandError
from agent.config import Config
from agent.control import ControlServer
from agent.dispatch import Dispatcher
from agent.errors import ExitCode, RemotairError
from agent.heap import keep_large_buffers_mapped
from agent.homeassistant import discovery_messages, queue_discovery, sensor_quantities
from agent.models.runtime import ModelRuntime
from agent.models.settings import model_settings
from agent.mqtt import MqttLink
from agent.outbox import MessageClass, Outbox, OutboxError
from agent.sampling import RoundResult, Sampler
from agent.scheduler import PeriodicJob
from agent.sd_notify import Notifier
from agent.snapshots import SnapshotResult, SnapshotTaker, queued_cameras
from agent.status_document import HealthInputs, fingerprint, health_document
from agent.vision import Classifier
from agent.vision.factory import build_classifier

log = logging.getLogger(__name__)

TICK_S = 1.0


class StorageError(RemotairError):
    """The state directory cannot be used (missing, read-only, full)."""

    exit_code = ExitCode.FAILURE


@dataclass(frozen=True, slots=True)
class AgentParts:
    """What :func:`open_parts` opens for an agent: storage, the board, vision."""

    outbox: Outbox
    alarms: AlarmEngine
    board: Board
    classifier: Classifier | None
    vision_error: str | None
    """Why vision is off when it was configured (the agent samples regardless)."""
    snapshot_dir: Path
    models: ModelRuntime | None = None
    """The local model's store, installs and rollback (onnx and cascade backends)."""

    def close(self) -> None:
        self.board.close()
        self.outbox.close()


def open_parts(config: Config, *, simulate: bool = False) -> AgentParts:
    """Open the state directory, the outbox, the alarm state, the board and the classifier.

    All or nothing: if one part cannot be opened, those already open are closed again before
    the error propagates, so a failed start leaves no half-built agent behind.
    """
    state_dir = Path(config.storage.dir)
    snapshot_dir = state_dir / "snapshots"
    try:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"state directory {state_dir} is not usable: {exc.strerror or exc}"
            " (set [storage] dir to a writable directory)"
        ) from exc
    with ExitStack() as opened:
        outbox = Outbox(
            state_dir / "outbox.sqlite",
            config.device.id,
            max_messages=config.storage.outbox_max_messages,
            max_bytes=config.storage.outbox_max_bytes,
            topic_root=config.mqtt.topic_root,
            simulated=simulate or config.board.kind == "sim",
        )
        opened.callback(outbox.close)
        board = open_board(config.board, simulate=simulate, realtime=True)
        opened.callback(board.close)
        # Hold times on the board's monotonic clock (accelerated on the simulated board).
        alarms = AlarmEngine(
            config.alarms, state_dir / "alarms.json", monotonic=board.clock.monotonic
        )
        classifier: Classifier | None = None
        vision_error: str | None = None
        models: ModelRuntime | None = None
        if config.vision.backend in ("onnx", "cascade"):
            models = ModelRuntime(model_settings(config), classifier_builder(config))
            classifier = models.start()
            vision_error = models.refused
        else:
            try:
                classifier = classifier_builder(config)(config.vision.model)
            except RemotairError as exc:
                vision_error = str(exc)
                log.error("vision disabled error=%s", exc)
        opened.pop_all()
    return AgentParts(outbox, alarms, board, classifier, vision_error, snapshot_dir, models)


def build_agent(
    config: Config,
    *,
    config_file: Path | None = None,
    simulate: bool = False,
    notifier: Notifier | None = None,
) -> Agent:
    """An agent with every part open and wired, nothing running yet (see :meth:`Agent.start`)."""
    keep_large_buffers_mapped()
    parts = open_parts(config, simulate=simulate)
    try:
        return Agent(config, parts, config_file=config_file, notifier=notifier)
    except BaseException:
        parts.close()
        raise


class Agent:
    """One agent, built complete by :func:`build_agent`: ``start`` starts its threads, ``run``
    watches, ``shutdown`` stops and closes everything."""

    def __init__(
        self,
        config: Config,
        parts: AgentParts,
        *,
        config_file: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.config_file = config_file
        self.notifier = notifier or Notifier()
        self.device_id = config.device.id
        self.stop_event = threading.Event()
        self.started_at = time.time()
        self._monotonic_start = time.monotonic()
        self._alarm_lock = threading.Lock()
        self._last_status: tuple[object, ...] | None = None
        self._last_status_at = 0.0
        self.control: ControlServer | None = None
        """The control socket, once started; None when it could not be (logged, not fatal)."""

        self.outbox = parts.outbox
        self.alarms = parts.alarms
        self.board = parts.board
        self.classifier = parts.classifier
        self.vision_error = parts.vision_error
        self.snapshot_dir = parts.snapshot_dir
        self._parts = parts
        self.models = parts.models
        self.dispatch = Dispatcher(self.outbox)
        if self.models is not None:
            self.models.publish_to(self._publish_model_state)
        self._reload_requested = threading.Event()
        self.sampler = Sampler(
            self.board.sensors,
            self.board.sensor_info,
            interval_s=config.schedule.sensor_interval_s,
            intervals={
                s.name: s.interval_s for s in config.board.sensors if s.interval_s is not None
            },
            clock=self.board.clock,
            wall_clock=self.board.wall_clock,
        )
        self.takers = {
            name: SnapshotTaker(
                name,
                cam,
                self.classifier,
                self.snapshot_dir,
                keep=config.storage.snapshots_keep,
                wall_clock=self.board.wall_clock,
            )
            for name, cam in self.board.cameras.items()
        }
        self.commands = agent_command_table(self)
        self.link = MqttLink(
            config.mqtt,
            self.outbox,
            self.device_id,
            commands=self.commands,
            status_body=self.status_document,
            republish=self._send_discovery if config.mqtt.ha_discovery else None,
            birth_topic=f"{config.mqtt.ha_prefix}/status",
        )
        self.jobs: dict[str, PeriodicJob] = {}
        schedule = config.schedule
        self._add_job("sensors", schedule.sensor_interval_s, self.sample_round)
        for i, name in enumerate(self.takers):
            self._add_job(
                f"camera-{name}",
                schedule.snapshot_interval_s,
                lambda name=name: self.snapshot(name),
                first_delay_s=min(5.0, schedule.snapshot_interval_s / 4) * i,
            )
        if _cloud_of(self.classifier) is not None:
            self._add_job("cloud-retry", schedule.snapshot_interval_s, self.retry_cloud)

    # -- start-up -----------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        if cfg.mqtt.ha_discovery:
            self._send_discovery()
        self.link.start()
        for job in self.jobs.values():
            job.start()
        log.info(
            "agent started device=%s board=%s sensors=%d cameras=%d broker=%s:%d",
            self.device_id,
            self.board.kind,
            len(self.board.sensors),
            len(self.takers),
            cfg.mqtt.host,
            cfg.mqtt.port,
        )
        self.control = _start_control(self)
        self.notifier.ready(f"sampling {len(self.board.sensors)} sensors")

    def _add_job(self, name: str, interval: float, action: Any, first_delay_s: float = 0.0) -> None:
        self.jobs[name] = PeriodicJob(
            name, interval, action, stop=self.stop_event, first_delay_s=first_delay_s
        )

    def _send_discovery(self) -> None:
        quantities = sensor_quantities(
            (name, state.chip) for name, state in self.sampler.state.items()
        )
        expire = int(max(3 * self.config.schedule.sensor_interval_s, 60))
        messages = discovery_messages(
            self.device_id,
            self.config.device.name or self.device_id,
            quantities,
            list(self.takers),
            prefix=self.config.mqtt.ha_prefix,
            topic_root=self.config.mqtt.topic_root,
            expire_after_s=expire,
            verdict_expire_after_s=int(3 * self.config.schedule.snapshot_interval_s),
            status_expire_after_s=int(max(3 * self.config.schedule.status_interval_s, 60)),
        )
        queue_discovery(self.outbox, messages)

    # -- the jobs -----------------------------------------------------------------------------
    def sample_round(self) -> RoundResult:
        result = self.sampler.sample()
        self.dispatch.send(
            MessageClass.TELEMETRY,
            "",
            result.telemetry_body(self.board.sensor_info),
            ts=result.ts,
        )
        events: list[AlarmEvent] = []
        with self._alarm_lock:
            for name, m in result.new.items():  # a carried-over sample was observed already
                events += self.alarms.observe_sensor_ok(name, result.ts)
                events += self.alarms.observe_measurement(name, m, result.ts)
            for name, error in result.faults.items():
                events += self.alarms.observe_sensor_fault(name, error, result.ts)
        self._send_alarms(events)
        return result

    def snapshot(self, camera: str) -> SnapshotResult:
        result = self.takers[camera].take()
        events: list[AlarmEvent] = []
        with self._alarm_lock:
            if result.error is not None:
                events += self.alarms.observe_camera_fault(camera, result.error, result.ts)
            else:
                events += self.alarms.observe_camera_ok(camera, result.ts)
                if result.verdict is not None and not result.verdict.pending:
                    events += self.alarms.observe_verdict(camera, result.verdict.label, result.ts)
        if result.verdict is not None:
            self.dispatch.send(MessageClass.VERDICT, camera, result.verdict_body(), ts=result.ts)
        self._send_alarms(events)
        return result

    def retry_cloud(self) -> int:
        """Send snapshots queued while Rekognition was unreachable; publish their verdicts."""
        cloud = _cloud_of(self.classifier)
        if cloud is None or cloud.retry_queue is None:
            return 0
        cameras = queued_cameras(cloud.retry_queue.items())
        done = cloud.retry_pending()
        for path, verdict in done:
            camera = cameras.get(path, "unknown")
            body = SnapshotResult(camera, time.time(), None, verdict, None).verdict_body()
            self.dispatch.send(MessageClass.VERDICT, camera, body | {"retried": path.name})
        return len(done)

    def _publish_model_state(self, state: dict[str, Any]) -> None:
        self.dispatch.send(MessageClass.MODEL, "", state, retain=True)

    def request_reload(self, signum: int = signal.SIGHUP, frame: FrameType | None = None) -> None:
        """SIGHUP: reload on the next tick (a signal handler must not load models)."""
        self._reload_requested.set()

    def reload(self) -> dict[str, Any]:
        """``cmd/reload`` and SIGHUP: see :func:`agent.reload.reload_agent`."""
        from agent.reload import reload_agent

        return reload_agent(self)

    def use_classifier(self, classifier: Classifier | None, vision_error: str | None) -> None:
        """Classify the next snapshots with ``classifier`` (after a reload)."""
        self.classifier, self.vision_error = classifier, vision_error
        for taker in self.takers.values():
            taker.classifier = classifier

    def _send_alarms(self, events: list[AlarmEvent]) -> None:
        for event in events:  # the alarm engine has logged each one
            self.dispatch.send(MessageClass.ALARM, event.name, event.to_body(), ts=event.ts)

    # -- health ------------------------------------------------------------------------------
    def status_document(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        broker = self.link.state()
        with self._alarm_lock:
            active = [
                {
                    "name": a.name,
                    "severity": a.severity,
                    "since": a.raised_at,
                    "message": a.message,
                    "sensors": list(a.sensors),
                }
                for a in self.alarms.active()
            ]
        doc = health_document(
            HealthInputs(
                started_at=self.started_at,
                config_file=str(self.config_file) if self.config_file else None,
                device_id=self.device_id,
                board_kind=self.board.kind,
                model_id=getattr(self.classifier, "model_id", None),
                vision_error=self.vision_error,
                broker=_jsonable(asdict(broker)),
                sensors=list(self.sampler.state.values()),
                cameras=[t.state for t in self.takers.values()],
                active_alarms=active,
                outbox=_jsonable(asdict(stats))
                | {"memory_backlog": self.dispatch.backlog, "not_stored": self.dispatch.set_aside},
                last_error=self.dispatch.last_error,
                jobs={
                    n: {
                        "runs": j.stats.runs,
                        "skipped": j.stats.skipped,
                        "failures": j.stats.failures,
                    }
                    for n, j in self.jobs.items()
                },
            )
        )
        if self.models is not None:
            doc["model_rollout"] = self.models.status()
        return doc

    def healthy(self) -> bool:
        """The sensor job has finished a round recently: the watchdog may be pinged."""
        job = self.jobs["sensors"]
        finished = job.stats.last_finished
        limit = max(3 * job.interval_s, 60.0)
        if finished is None:
            return time.monotonic() - self._monotonic_start < limit
        return time.monotonic() - finished < limit

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        while not self.stop_event.wait(TICK_S):
            self.tick()
        return ExitCode.OK

    def tick(self) -> None:
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            try:
                self.reload()
            except (CommandError, RemotairError) as exc:  # one line; the running config stays
                log.error("SIGHUP reload refused: %s", exc)
        self.dispatch.flush()
        stats = self.outbox.stats()
        fill = stats.depth / max(1, self.config.storage.outbox_max_messages)
        with self._alarm_lock:
            events = self.alarms.observe_outbox(fill, self.board.wall_clock())
        self._send_alarms(events)
        doc = self.status_document()
        now = time.monotonic()
        fp = fingerprint(doc)
        if (
            fp != self._last_status
            or now - self._last_status_at >= self.config.schedule.status_interval_s
        ):
            try:
                self.outbox.put(MessageClass.STATUS, "", doc, retain=True)  # never refused
                self._last_status, self._last_status_at = fp, now
            except OutboxError as exc:
                # Storage full or read-only: the dispatcher holds the readings and reports the
                # error; a status is only worth its newest version, so it is retried next tick.
                log.debug("status not queued error=%s", exc)
        if self.healthy():
            self.notifier.watchdog()

    def request_stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        log.info("stopping signal=%s", signal.Signals(signum).name)
        self.notifier.stopping()
        self.stop_event.set()

    def shutdown(self, flush_timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        if self.control is not None:
            self.control.stop()
        for job in self.jobs.values():
            if not job.join(timeout=5.0):
                log.warning("job still running at shutdown job=%s", job.name)
        if self.models is not None:
            self.models.note_clean_exit()
        self.link.stop(flush_timeout_s)
        self._parts.close()
        log.info("agent stopped")


def _cloud_of(classifier: Classifier | None) -> Any:
    """The Rekognition backend inside a classifier (itself or a cascade's), if any."""
    backend = getattr(classifier, "inner", classifier)  # behind the image-quality gate
    cloud = getattr(backend, "cloud", backend)
    return cloud if hasattr(cloud, "retry_pending") else None


def classifier_builder(cfg: Config) -> Callable[[Path], Classifier | None]:
    """Builds the configured classifier (backend, threads, cloud) around a model file."""
    retry_dir = Path(cfg.storage.dir) / "cloud-retry"
    return lambda model: build_classifier(
        cfg.vision.model_copy(update={"model": model}), retry_dir=retry_dir
    )


def _start_control(agent: Agent) -> ControlServer | None:
    """Serve the CLI's control socket; a failure is logged, never fatal (sampling comes first)."""
    path = Path(agent.config.control.socket)
    server = ControlServer(path, agent.commands)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        server.start()
    except (OSError, RemotairError) as exc:
        log.error("control socket disabled path=%s error=%s", path, exc)
        return None
    return server


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}


def run_agent(config: Config, *, config_file: Path | None, simulate: bool) -> int:
    """Start, run until SIGTERM/SIGINT, shut down cleanly. Returns the exit code."""
    agent = build_agent(config, config_file=config_file, simulate=simulate)
    signal.signal(signal.SIGTERM, agent.request_stop)
    signal.signal(signal.SIGINT, agent.request_stop)
    signal.signal(signal.SIGHUP, agent.request_reload)
    try:
        agent.start()
        return agent.run()
    finally:
        agent.shutdown()
