"""``remotair doctor``'s checklist: every way a board in a plant room is usually broken.

Each check yields :class:`Check` lines (PASS / WARN / FAIL, what was found, a one-line hint on
how to fix it). The checks go from the bottom of the stack up: bus, chips, serial sensors,
cameras, model, broker step by step (DNS, TCP, TLS, MQTT), clock, storage, service, agent.
Every network step and every subprocess is bounded by a timeout.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agent.board import Board
from agent.config import Config
from agent.mqtt.tls import client_context as tls_client_context
from drivers.camera import frame_problem
from drivers.errors import CameraError, CrcError, DeviceAbsentError, SensorError, SensorTimeoutError
from drivers.measurement import Measurement
from drivers.registry import QUANTITIES

Status = Literal["PASS", "WARN", "FAIL"]

NETWORK_TIMEOUT_S = 5.0
SUBPROCESS_TIMEOUT_S = 3.0
CERT_WARN_DAYS = 30
LOW_SPACE_BYTES = 100 * 1024 * 1024
LOW_SPACE_FRACTION = 0.05
CRITICAL_SPACE_BYTES = 10 * 1024 * 1024
SERVICE = "remotair-agent"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the checklist."""

    group: str
    name: str
    status: Status
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _pass(group: str, name: str, detail: str) -> Check:
    return Check(group, name, "PASS", detail)


def _warn(group: str, name: str, detail: str, hint: str) -> Check:
    return Check(group, name, "WARN", detail, hint)


def _fail(group: str, name: str, detail: str, hint: str) -> Check:
    return Check(group, name, "FAIL", detail, hint)


# --------------------------------------------------------------------------------------------
# The board
# --------------------------------------------------------------------------------------------


def check_i2c_bus(config: Config, board: Board) -> Iterator[Check]:
    """The bus device exists and this user may open it (group ``i2c`` on Raspberry Pi OS)."""
    number = config.board.i2c_bus
    has_i2c = any(not loc.location.startswith("/") for loc in board.sensor_info.values())
    if not has_i2c:
        return
    if board.kind == "sim":
        yield _pass("board", f"i2c-{number}", f"simulated bus i2c-{number}")
        return
    device = Path(f"/dev/i2c-{number}")
    if not device.exists():
        yield _fail(
            "board",
            f"i2c-{number}",
            f"{device} does not exist",
            "enable I2C: sudo raspi-config nonint do_i2c 0, then reboot (or check [board] i2c_bus)",
        )
        return
    yield from _device_access("board", f"i2c-{number}", device)


def _device_access(group: str, name: str, device: Path) -> Iterator[Check]:
    info = device.stat()
    try:
        owner_group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        owner_group = str(info.st_gid)
    mode = stat.filemode(info.st_mode)
    if os.access(device, os.R_OK | os.W_OK):
        yield _pass(group, name, f"{device} accessible ({mode} group {owner_group})")
    else:
        yield _fail(
            group,
            name,
            f"{device} not accessible to this user ({mode} group {owner_group})",
            f"add the user to group {owner_group!r}: sudo usermod -aG {owner_group} $USER"
            " (log in again)",
        )


def check_sensors(board: Board) -> Iterator[Check]:
    """Each chip answers with the right identity (the driver's start checks it) and reads a
    plausible value."""
    for name, sensor in board.sensors.items():
        info = board.sensor_info[name]
        uart = info.location.startswith("/")
        group = "uart" if uart else "chips"
        label = f"{name} ({info.chip} at {info.location})"
        try:
            sensor.start()
            measurement = sensor.read()
        except SensorError as exc:
            yield _fail(group, name, f"{label}: {exc.detail}", _sensor_hint(exc, uart))
            continue
        odd = _implausible(measurement)
        values = _values_text(measurement)
        if odd:
            yield _warn(
                group,
                name,
                f"{label}: implausible reading {odd} ({values})",
                "a damaged or contaminated sensor; compare with a reference instrument",
            )
        else:
            yield _pass(group, name, f"{label}: {values}")


def _sensor_hint(exc: SensorError, uart: bool) -> str:
    if uart:
        return (
            "check the port name, TX/RX crossed, 5 V supply, baud rate, and group 'dialout'"
            " (sudo usermod -aG dialout $USER)"
        )
    if isinstance(exc, CrcError):
        return "noisy bus: shorten the cable, check pull-ups and grounding"
    if isinstance(exc, SensorTimeoutError):
        return "the chip is slow or stuck: power-cycle the board"
    if isinstance(exc, DeviceAbsentError):
        return "check wiring, power and address; 'remotair i2c scan' lists what answers"
    return "power-cycle the board; if it persists, replace the sensor"


def _implausible(m: Measurement) -> str | None:
    for quantity, value in m.values().items():
        spec = QUANTITIES.get(quantity)
        low, high = spec.plausible if spec else (float("-inf"), float("inf"))
        if not low <= value <= high:
            return f"{quantity}={value:g} outside {low:g}..{high:g}"
    return None


def _values_text(m: Measurement) -> str:
    return ", ".join(f"{k}={v:.1f}" for k, v in m.values().items())


def check_cameras(board: Board) -> tuple[list[Check], np.ndarray | None]:
    """Two frames from each camera: neither black nor frozen. Returns a good frame for the model
    check (a real image is a better test than a synthetic one)."""
    checks: list[Check] = []
    good: np.ndarray | None = None
    for name, camera in board.cameras.items():
        try:
            first = camera.capture()
            second = camera.capture()
        except CameraError as exc:
            checks.append(
                _fail(
                    "cameras",
                    name,
                    f"no frame: {exc.detail}",
                    "check the ribbon cable / USB and [board.cameras]; 'remotair snap' retries",
                )
            )
            continue
        problem = frame_problem(first.image) or frame_problem(second.image, first.image)
        if problem:
            hint = (
                "lens covered or lighting off: check the duct LED"
                if "black" in problem
                else "the camera stream is stuck: power-cycle the board"
            )
            checks.append(_fail("cameras", name, problem, hint))
        else:
            checks.append(_pass("cameras", name, f"two live frames {first.width}x{first.height}"))
            if good is None:
                good = first.image
    return checks, good


def check_agent(doc: Mapping[str, Any] | None, socket_path: Path) -> Iterator[Check]:
    """The running agent, as it sees itself: up, connected, every sensor and camera working."""
    if doc is None:
        yield _warn(
            "agent",
            "running",
            f"the agent is not running (nothing listens on {socket_path})",
            "sudo systemctl start remotair-agent (or 'remotair run'); then 'remotair status'",
        )
        return
    yield _pass("agent", "running", f"up {doc.get('uptime_s')} s, board {doc.get('board')}")
    broker = doc.get("broker", {})
    if broker.get("connected"):
        yield _pass("agent", "broker link", "connected")
    else:
        yield _fail(
            "agent",
            "broker link",
            f"the agent is not connected: {broker.get('last_error')}",
            "see the broker checks above; the agent keeps buffering in its outbox meanwhile",
        )
    sensors = doc.get("sensors", {})
    cameras = doc.get("cameras", {})
    failing = 0
    for name, s in sensors.items():
        if not s.get("ok"):
            failing += 1
            yield _fail(
                "agent",
                f"sensor {name}",
                f"the agent's reads of {name} ({s.get('chip')} at {s.get('at')}) fail:"
                f" {s.get('error')} ({s.get('faults')} faults)",
                "check wiring and power; 'remotair read' retries the sensor",
            )
    for name, c in cameras.items():
        if not c.get("ok"):
            failing += 1
            yield _fail(
                "agent",
                f"camera {name}",
                f"the agent's snapshots from {name} fail: {c.get('error')}"
                f" ({c.get('faults')} faults)",
                "check the camera cable and lighting; 'remotair snap' retries",
            )
    if not failing:
        yield _pass(
            "agent",
            "hardware",
            f"all {len(sensors)} sensors and {len(cameras)} cameras working for the agent",
        )


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def check_model(config: Config, frame: np.ndarray | None) -> Iterator[Check]:
    """The model file matches its manifest hash and classifies a test image."""
    from agent.vision import VisionError
    from agent.vision.manifest import load_manifest, manifest_path_for, sha256_file

    backend = config.vision.backend
    if backend == "off":
        yield _pass("model", "vision", 'vision is off ([vision] backend = "off")')
        return
    if backend == "rekognition":
        yield _warn(
            "model",
            "vision",
            "cloud backend (Rekognition): not exercised by doctor (each call is billed)",
            "try one image with 'remotair classify IMAGE'",
        )
        return
    path = Path(config.vision.model)
    if not path.exists():
        yield _fail(
            "model",
            "file",
            f"model file {path} is missing",
            "reinstall the package or set [vision] model to the .onnx file",
        )
        return
    try:
        manifest = load_manifest(manifest_path_for(path))
    except VisionError as exc:
        yield _fail("model", "manifest", str(exc), "copy the model's .json manifest next to it")
        return
    actual = sha256_file(path)
    if actual != manifest.sha256:
        yield _fail(
            "model",
            "hash",
            f"{path.name}: sha256 {actual[:12]}... but manifest says {manifest.sha256[:12]}...",
            "the file is damaged or was swapped: copy model and manifest again, together",
        )
        return
    yield _pass("model", "hash", f"{manifest.model_id} matches its manifest")
    from agent.vision.onnx_backend import OnnxClassifier

    image = frame if frame is not None else _test_image()
    source = "a camera frame" if frame is not None else "a synthetic test image"
    try:
        classifier = OnnxClassifier(path, threads=1)
        try:
            verdict = classifier.classify(image)
        finally:
            classifier.close()
    except VisionError as exc:
        yield _fail("model", "inference", str(exc), "reinstall the model; check onnxruntime")
        return
    yield _pass(
        "model",
        "inference",
        f"{source} -> {verdict.label} (p_dirty {verdict.dirty_probability:.2f})"
        f" in {verdict.latency_ms:.0f} ms",
    )


def _test_image() -> np.ndarray:
    """A grey gradient: enough to prove the model runs, with no claim about its verdict."""
    ramp = np.linspace(40, 200, 320, dtype=np.float32)
    grey = np.tile(ramp, (240, 1)).astype(np.uint8)
    return np.stack([grey, grey, grey], axis=2)


# --------------------------------------------------------------------------------------------
# The broker, step by step
# --------------------------------------------------------------------------------------------


def check_broker(config: Config, timeout_s: float = NETWORK_TIMEOUT_S) -> Iterator[Check]:
    """DNS, TCP, TLS (with the server certificate's days to expiry), MQTT CONNACK; stops at the
    first failed step, since the later ones cannot succeed."""
    m = config.mqtt
    where = f"{m.host}:{m.port}"
    try:
        addresses = _bounded(
            lambda: socket.getaddrinfo(m.host, m.port, type=socket.SOCK_STREAM),
            timeout_s,
            f"DNS lookup of {m.host}",
        )
    except OSError as exc:
        yield _fail(
            "broker",
            "dns",
            f"cannot resolve {m.host}: {exc}",
            "check [mqtt] host and the DNS server (/etc/resolv.conf, ping 8.8.8.8)",
        )
        return
    address = addresses[0][4][0]
    yield _pass("broker", "dns", f"{m.host} -> {address}")
    try:
        conn = socket.create_connection((address, m.port), timeout=timeout_s)
    except OSError as exc:
        yield _fail(
            "broker",
            "tcp",
            f"cannot connect to {where}: {exc.strerror or exc}",
            "is the broker running on that port? check [mqtt] port and any firewall",
        )
        return
    conn.close()
    yield _pass("broker", "tcp", f"{where} accepts connections")
    context: ssl.SSLContext | None = None
    if m.tls is not None:
        tls_check, context = _check_tls(config, address, timeout_s)
        yield tls_check
        if tls_check.status == "FAIL":
            return
    yield _check_connack(config, context, timeout_s)


def _check_tls(
    config: Config, address: str, timeout_s: float
) -> tuple[Check, ssl.SSLContext | None]:
    m = config.mqtt
    assert m.tls is not None
    try:
        context = tls_client_context(m.tls)
    except (OSError, ssl.SSLError) as exc:
        return (
            _fail(
                "broker",
                "tls",
                f"cannot load the [mqtt.tls] files: {exc}",
                "check the ca/cert/key paths and that the key matches the certificate",
            ),
            None,
        )
    try:
        der = _handshake(context, address, m.host, m.port, timeout_s)
    except ssl.SSLCertVerificationError as exc:
        unverified = _unverified_certificate(address, m.host, m.port, timeout_s)
        days = None if unverified is None else _days_left(unverified)
        if unverified is not None and days is not None and days < 0:
            return (
                _fail(
                    "broker",
                    "tls",
                    f"server certificate expired {-days} days ago"
                    f" (not after {_not_after(unverified).date()}; board clock says {_today()})",
                    "renew the broker's certificate (or fix the board clock if it is wrong)",
                ),
                None,
            )
        return (
            _fail(
                "broker",
                "tls",
                f"server certificate not trusted: {exc.verify_message}",
                "check [mqtt.tls] ca and that [mqtt] host matches the certificate's name",
            ),
            None,
        )
    except (OSError, ssl.SSLError) as exc:
        return (
            _fail(
                "broker",
                "tls",
                f"TLS handshake with {m.host}:{m.port} failed: {exc}",
                "is this a TLS port (8883)? is the client certificate accepted by the broker?",
            ),
            None,
        )
    days = _days_left(der)
    detail = f"handshake ok; server certificate valid {days} more days"
    if days < CERT_WARN_DAYS:
        return _warn("broker", "tls", detail, "renew the broker's certificate soon"), context
    return _pass("broker", "tls", detail), context


def _handshake(
    context: ssl.SSLContext, address: str, host: str, port: int, timeout_s: float
) -> bytes:
    with (
        socket.create_connection((address, port), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the server sent no certificate")
    return der


def _unverified_certificate(address: str, host: str, port: int, timeout_s: float) -> bytes | None:
    """The server's certificate without verifying it: only to say *why* verification failed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        return _handshake(context, address, host, port, timeout_s)
    except (OSError, ssl.SSLError):
        return None


def _not_after(der: bytes) -> dt.datetime:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _days_left(der: bytes) -> int:
    """Whole days until expiry; negative, in whole days elapsed, once expired."""
    left = _not_after(der) - dt.datetime.now(dt.UTC)
    return left.days if left >= dt.timedelta(0) else -(-left).days


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _check_connack(config: Config, context: ssl.SSLContext | None, timeout_s: float) -> Check:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    m = config.mqtt
    # Never the agent's own client id: the broker would disconnect the running agent.
    client_id = f"{m.client_id or config.device.id}-doctor-{os.getpid()}"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if m.protocol == "5" else paho.MQTTv311,
    )
    client.connect_timeout = timeout_s
    if context is not None:
        client.tls_set_context(context)
    if m.username:
        client.username_pw_set(m.username, m.password)
    answered = threading.Event()
    reason: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, code: Any, _p: Any = None) -> None:
        reason.append("" if not code.is_failure else str(code))
        answered.set()

    client.on_connect = on_connect
    started = time.monotonic()
    try:
        client.connect(m.host, m.port, keepalive=max(5, int(timeout_s) * 2))
        client.loop_start()
        answered.wait(timeout_s)
    except (OSError, ssl.SSLError) as exc:
        return _fail(
            "broker",
            "mqtt",
            f"MQTT connect failed: {exc}",
            "check the broker's log; TLS port and [mqtt.tls] must go together",
        )
    finally:
        client.disconnect()
        client.loop_stop()
    if not answered.is_set():
        return _fail(
            "broker",
            "mqtt",
            f"no CONNACK within {timeout_s:g} s",
            "something answers on the port but it is not an MQTT broker (wrong port?)",
        )
    if reason[0]:
        return _fail(
            "broker",
            "mqtt",
            f"broker refused the connection: {reason[0]}",
            "check [mqtt] username/password or the client certificate's policy",
        )
    ms = (time.monotonic() - started) * 1000
    return _pass("broker", "mqtt", f"CONNACK accepted in {ms:.0f} ms (MQTT {m.protocol})")


def _bounded(action: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Run a call that has no timeout of its own (getaddrinfo) in a thread we stop waiting for."""
    box: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(action())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=target, name="doctor-bounded", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if errors:
        raise errors[0]
    if not box:
        raise TimeoutError(f"{what} took longer than {timeout_s:g} s")
    return box[0]


# --------------------------------------------------------------------------------------------
# The host
# --------------------------------------------------------------------------------------------


def check_clock(config: Config) -> Check:
    """An unsynchronised clock breaks TLS (certificates look expired or not yet valid)."""
    if dt.datetime.now(dt.UTC).year < 2024:
        return _fail(
            "host",
            "clock",
            f"the clock says {_today()}",
            "set the time: sudo timedatectl set-ntp true (needs network)",
        )
    result = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if result is None:
        return _warn(
            "host",
            "clock",
            "cannot tell whether the clock is synchronised (timedatectl not available)",
            "check the time against a phone",
        )
    if result.strip() == "yes":
        return _pass("host", "clock", f"synchronised (NTP), {_today()}")
    status: Literal["WARN", "FAIL"] = "FAIL" if config.mqtt.tls is not None else "WARN"
    return Check(
        "host",
        "clock",
        status,
        f"not synchronised ({_today()})",
        "sudo timedatectl set-ntp true; check that UDP 123 reaches a time server",
    )


def check_storage(config: Config) -> Iterator[Check]:
    """The state directory is writable and has room for the outbox and snapshots."""
    directory = Path(config.storage.dir)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if directory.exists():
        if os.access(directory, os.W_OK):
            yield _pass("host", "storage dir", f"{directory} writable")
        else:
            yield _fail(
                "host",
                "storage dir",
                f"{directory} is not writable by this user",
                "run as the service user (sudo -u remotair) or fix the ownership",
            )
    else:
        yield _warn(
            "host",
            "storage dir",
            f"{directory} does not exist yet",
            "the agent creates it on start (systemd StateDirectory=)",
        )
    usage = shutil.disk_usage(existing)
    free_mb = usage.free / 1024 / 1024
    detail = f"{free_mb:.0f} MB free on {existing} ({usage.free / usage.total:.0%})"
    hint = "free space: old snapshots, logs (journalctl --vacuum-size=50M), apt clean"
    if usage.free < CRITICAL_SPACE_BYTES:
        yield _fail("host", "free space", detail, hint)
    elif usage.free < LOW_SPACE_BYTES or usage.free / usage.total < LOW_SPACE_FRACTION:
        yield _warn("host", "free space", detail, hint)
    else:
        yield _pass("host", "free space", detail)


def check_service() -> Check:
    """The systemd unit is active."""
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return _warn(
            "host",
            "service",
            "not under systemd",
            "on the board: sudo systemctl enable --now remotair-agent",
        )
    state = _run(["systemctl", "is-active", SERVICE])
    state = (state or "unknown").strip()
    if state == "active":
        return _pass("host", "service", f"{SERVICE} is active")
    return _fail(
        "host",
        "service",
        f"{SERVICE} is {state}",
        f"sudo systemctl start {SERVICE}; see journalctl -u {SERVICE} -n 50",
    )


def _run(argv: list[str]) -> str | None:
    """A command's stdout, or None if it is missing, fails to start or takes too long."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 or done.stdout else None
