"""``remotair status``: what the running agent says about itself, or what its state dir shows."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from agent.cli.options import add_config_argument, config_path, load
from agent.cli.output import add_json_argument, print_json, print_table
from agent.config import Config
from agent.control import AgentNotRunning, request
from agent.errors import ExitCode
from agent.models.runtime import stored_model_status
from agent.models.settings import model_settings
from agent.state_directory import StateDir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="ask the running agent how it is doing",
        description="Ask the running agent over its control socket: state, uptime, broker,"
        " outbox, sensors, cameras, alarms, model. If the agent is not running, say so and show"
        " what the state directory holds (outbox, active alarms, last snapshots); exit code 4.",
        epilog="example: remotair status --config /etc/remotair/agent.toml",
    )
    add_config_argument(p)
    add_json_argument(p)
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="answer timeout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    socket_path = Path(config.control.socket)
    try:
        doc = request(socket_path, "status", args.timeout)
    except AgentNotRunning as exc:
        state = StateDir(Path(config.storage.dir))
        return _offline(args, state, socket_path, str(exc), config)
    if args.json:
        print_json({"running": True, **doc})
        return ExitCode.OK
    _print_running(doc, config_path(args))
    return ExitCode.OK


def _print_running(doc: dict[str, Any], config_file: Path | None) -> None:
    broker = doc.get("broker", {})
    outbox = doc.get("outbox", {})
    print(f"agent:    running, up {_duration(doc.get('uptime_s'))} (pid {doc.get('pid')})")
    print(f"device:   {doc.get('device')}  board: {doc.get('board')}  version {doc.get('version')}")
    print(f"config:   {doc.get('config') or config_file or 'built-in simulated board'}")
    print(f"broker:   {_broker_line(broker)}")
    print(
        f"outbox:   {outbox.get('depth')} undelivered"
        f", oldest {_duration(outbox.get('oldest_age_s'))}"
        f", evicted {sum((outbox.get('evicted') or {}).values())}"
        f", set aside {outbox.get('set_aside')}"
    )
    model = doc.get("model") or f"none ({doc.get('vision_error') or 'vision off'})"
    print(f"model:    {model}{_release_line(doc.get('model_rollout'))}")
    install = (doc.get("model_rollout") or {}).get("last_install")
    if install:
        print(f"install:  {_install_line(install)}")
    if doc.get("last_error"):
        print(f"last error: {doc['last_error']}")
    print()
    print_table(
        ["SENSOR", "CHIP", "AT", "LAST VALUES", "AGE", "FAULTS", "STATUS"],
        [
            [
                name,
                s.get("chip"),
                s.get("at"),
                _values(s.get("values") or {}),
                _duration(s.get("age_s")),
                s.get("faults"),
                "ok" if s.get("ok") else f"FAIL: {s.get('error')}",
            ]
            for name, s in doc.get("sensors", {}).items()
        ],
    )
    print()
    print_table(
        ["CAMERA", "LAST SNAPSHOT", "AGE", "VERDICT", "FAULTS", "STATUS"],
        [
            [
                name,
                Path(c["last_snapshot"]).name if c.get("last_snapshot") else None,
                _duration(c.get("age_s")),
                _verdict(c.get("verdict")),
                c.get("faults"),
                "ok" if c.get("ok") else f"FAIL: {c.get('error')}",
            ]
            for name, c in doc.get("cameras", {}).items()
        ],
    )
    print()
    alarms = doc.get("alarms", [])
    if not alarms:
        print("alarms:   none active")
    else:
        print_table(
            ["ALARM", "SEVERITY", "SINCE", "MESSAGE"],
            [
                [a.get("name"), a.get("severity"), _clock(a.get("since")), a.get("message")]
                for a in alarms
            ],
        )


def _offline(
    args: argparse.Namespace, state: StateDir, socket_path: Path, why: str, config: Config
) -> int:
    rollout = stored_model_status(model_settings(config))
    outbox = state.outbox(peek=0, set_aside=0)
    alarms = state.alarms()
    snapshots = state.last_snapshots()
    if args.json:
        print_json(
            {
                "running": False,
                "error": why,
                "control_socket": str(socket_path),
                "storage_dir": str(state.path),
                "outbox": outbox,
                "alarms": alarms["active"],
                "cameras": snapshots,
                "model_rollout": rollout,
            }
        )
        return ExitCode.UNAVAILABLE
    print(f"agent:    NOT RUNNING (nothing listens on {socket_path})")
    print("          start it: sudo systemctl start remotair-agent")
    print("          its log:  journalctl -u remotair-agent -n 50")
    print(f"state:    {state.path} (what the agent left on disk)")
    if outbox is None:
        print(f"outbox:   no outbox file at {state.outbox_path}")
    else:
        print(
            f"outbox:   {outbox['depth']} undelivered, oldest {_duration(outbox['oldest_age_s'])}"
            f", set aside {outbox['set_aside']}"
        )
    if alarms["active"]:
        print_table(
            ["ALARM", "SEVERITY", "SINCE", "MESSAGE"],
            [
                [a["name"], a["severity"], _clock(a["raised_at"]), a["message"]]
                for a in alarms["active"]
            ],
        )
    else:
        print("alarms:   none active on disk")
    for camera, snap in snapshots.items():
        age = _duration(snap["age_s"])
        print(f"camera {camera}: last snapshot {snap['last_snapshot']} ({age} ago)")
    print(f"model:    {Path(rollout['file']).name}{_release_line(rollout)}")
    if rollout.get("last_install"):
        print(f"install:  {_install_line(rollout['last_install'])}")
    return ExitCode.UNAVAILABLE


def _broker_line(broker: dict[str, Any]) -> str:
    if broker.get("connected"):
        since = _clock(broker.get("connected_since"))
        return f"connected since {since}, {broker.get('inflight')} in flight"
    parts = ["DISCONNECTED"]
    if broker.get("last_error"):
        parts.append(f"last error: {broker['last_error']}")
    if broker.get("next_retry_at"):
        parts.append(f"next retry in {_duration(broker['next_retry_at'] - time.time())}")
    return "; ".join(parts)


def _values(values: dict[str, Any]) -> str:
    short = {
        "co2_ppm": "ppm",
        "temperature_c": "°C",
        "humidity_rh": "%RH",
        "pressure_pa": "Pa",
        "differential_pressure_pa": "Pa(dP)",
    }
    return " ".join(f"{v:.1f}{short.get(k, ' ' + k)}" for k, v in values.items()) or "-"


def _verdict(verdict: dict[str, Any] | None) -> str | None:
    if not verdict:
        return None
    label = verdict.get("label")
    confidence = verdict.get("confidence")
    return f"{label} {confidence:.2f}" if isinstance(confidence, float) else str(label)


def _release_line(rollout: dict[str, Any] | None) -> str:
    """ ", version 3, signed by 0ed358de667593ef" (or "unsigned"), from the store or the config."""
    if not rollout:
        return ""
    signer = f"signed by {rollout['signer']}" if rollout.get("signer") else "unsigned"
    where = "store" if rollout.get("from_store") else "config"
    text = f", version {rollout.get('model_version') or '-'}, {signer}, from the {where}"
    if rollout.get("refused"):
        text += f"; REFUSED: {rollout['refused']}"
    if rollout.get("probation"):
        text += f"; on probation ({rollout['probation'].get('ok', 0)} good verdicts)"
    return text


def _install_line(install: dict[str, Any]) -> str:
    """The last install attempt: "r7 active (version 3) at ..." or "r8 failed: wrong key: ..."."""
    text = f"{install.get('id')} {install.get('state')}"
    if install.get("model_version") is not None:
        text += f" (version {install['model_version']})"
    if install.get("percent") is not None and install.get("state") == "downloading":
        text += f" {install['percent']}%"
    if install.get("check"):
        text += f": {install['check']}: {install.get('reason')}"
    elif install.get("reason"):
        text += f": {install['reason']}"
    return f"{text} at {install['at']}" if install.get("at") else text


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    s = max(0.0, float(seconds))
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _clock(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))
