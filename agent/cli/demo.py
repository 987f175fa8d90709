"""``remotair demo``: the agent on the simulated board, publishing to a local Mosquitto.

It uses a broker already listening on localhost:1883, or starts a private Mosquitto on a free
loopback port, then runs the real agent (the same code as ``remotair run``) with fast intervals
and an accelerated duct world, and prints every message a subscriber receives, one line each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import load_config
from agent.errors import ExitCode
from agent.logging_setup import configure_logging

DEMO_CONFIG = """
[device]
id = "demo-board"
name = "Remotair demo board"

[board]
kind = "sim"
sim_speed = {speed}

[mqtt]
host = "{host}"
port = {port}
reconnect_max_s = 5

[schedule]
sensor_interval_s = {sensor_s}
snapshot_interval_s = {snapshot_s}
status_interval_s = 30

[storage]
dir = "{storage}"

[control]
socket = "{socket}"

[alarms]
hold_s = 10
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the agent on the simulated board against a local broker and show the messages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: remotair demo --duration 0   (runs until Ctrl-C)",
    )
    p.add_argument(
        "--duration", type=float, default=90.0, help="seconds to run, 0 = until Ctrl-C (default 90)"
    )
    p.add_argument("--speed", type=float, default=120.0, help="duct world time acceleration")
    p.add_argument("--sensor-interval", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--snapshot-interval", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--storage", type=Path, help="state directory (default: a temporary one)")
    p.set_defaults(func=run)


def summarize(topic: str, payload: dict[str, Any]) -> str:
    """One line a person can read for any Remotair message."""
    kind = topic.split("/", 3)[3] if topic.count("/") >= 3 else topic
    if kind == "telemetry":
        parts = []
        for name, values in payload.get("sensors", {}).items():
            short = {
                "co2_ppm": "CO2 {:.0f}ppm",
                "temperature_c": "{:.1f}°C",
                "humidity_rh": "{:.0f}%RH",
                "pressure_pa": "{:.0f}Pa",
                "differential_pressure_pa": "dP {:.0f}Pa",
            }
            shown = " ".join(short[q].format(v) for q, v in values.items() if q in short)
            parts.append(f"{name}[{shown}]")
        faults = payload.get("faults") or {}
        text = " ".join(parts)
        return text + (f"  FAULTS: {', '.join(faults)}" if faults else "")
    if kind.startswith("vision/"):
        return (
            f"{payload.get('camera')}: {str(payload.get('label', '?')).upper()} "
            f"conf {payload.get('confidence', 0):.2f} via {payload.get('decided_by')} "
            f"in {payload.get('latency_ms', 0):.0f} ms ({payload.get('snapshot')})"
        )
    if kind.startswith("alarm/"):
        state = str(payload.get("state", "?")).upper()
        return f"{state} {payload.get('severity')}: {payload.get('message')}"
    if kind == "status":
        outbox = payload.get("outbox", {})
        alarms = [a.get("name") for a in payload.get("alarms", [])]
        return (
            f"{payload.get('state')} uptime {payload.get('uptime_s', 0):.0f}s, "
            f"outbox depth {outbox.get('depth', '?')}, alarms {alarms or 'none'}"
        )
    return json.dumps(payload)[:120]


class _Printer:
    def __init__(self, host: str, port: int) -> None:
        self.counts: Counter[str] = Counter()
        self.seqs: list[int] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="remotair-demo-view")
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe("remotair/v1/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        kind = msg.topic.split("/")[3] if msg.topic.count("/") >= 3 else msg.topic
        with self._lock:
            self.counts[kind] += 1
            if isinstance(payload.get("seq"), int) and not msg.retain:
                self.seqs.append(payload["seq"])
            stamp = time.strftime("%H:%M:%S")
            seq = payload.get("seq")
            seq = "-" if seq is None else seq  # status is not numbered in the stream
            where = msg.topic.split("/", 3)[-1]
            print(f"{stamp}  #{seq:<5} {where:<22} {summarize(msg.topic, payload)}", flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(args: argparse.Namespace) -> int:
    from agent.daemon import build_agent
    from hil.broker import BrokerError, LocalBroker, port_open

    configure_logging("warning", debug=args.debug)
    with tempfile.TemporaryDirectory(prefix="remotair-demo-") as tmp:
        broker: LocalBroker | None = None
        host, port = "127.0.0.1", 1883
        if port_open(host, port):
            print(f"using the broker already running on {host}:{port}")
        else:
            try:
                broker = LocalBroker(Path(tmp) / "broker")
                broker.start()
                port = broker.port
                print(f"started a private Mosquitto on {host}:{port}")
            except BrokerError as exc:
                print(f"no broker ({exc}); the agent will run and buffer in its outbox")
        storage = args.storage or Path(tmp) / "state"
        config_file = Path(tmp) / "demo.toml"
        config_file.write_text(
            DEMO_CONFIG.format(
                host=host,
                port=port,
                speed=args.speed,
                sensor_s=args.sensor_interval,
                snapshot_s=args.snapshot_interval,
                storage=storage,
                socket=Path(tmp) / "control.sock",
            )
        )
        config = load_config(config_file)
        printer = _Printer(host, port)
        # Watch from the first message on (bounded: with no broker the agent runs regardless).
        printer.subscribed.wait(timeout=5.0)
        agent = build_agent(config, config_file=config_file)
        print(
            f"agent on the simulated board: 7 sensors, 2 cameras, world time x{args.speed:g};"
            f" messages under remotair/v1/{config.device.id}/ ..."
            + (f" (running {args.duration:g} s)" if args.duration else " (Ctrl-C stops)")
        )
        me = sys.argv[0] if sys.argv[0].endswith("remotair") else "remotair"
        print(
            f"in another terminal: {me} status --config {config_file}"
            f"   |   {me} sim unplug scd41 --config {config_file}"
        )
        try:
            agent.start()
            if agent.board.sim is not None:
                # The downstream camera looks at a soiled stretch of duct, so that the demo shows
                # dirty verdicts and the duct_dirty alarm as well as clean ones.
                agent.board.sim.cameras["downstream"].dirt_offset = 0.7
            deadline = time.monotonic() + args.duration if args.duration else None
            while not agent.stop_event.wait(1.0):
                agent.tick()
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            agent.shutdown(flush_timeout_s=5.0)
            time.sleep(0.5)
            printer.close()
            if broker is not None:
                broker.stop()
        seqs = sorted(set(printer.seqs))
        gaps = [b for a, b in itertools.pairwise(seqs) if b != a + 1]
        print(
            "received: "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(printer.counts.items()))
            + (f"; seq {seqs[0]}..{seqs[-1]}, gaps: {len(gaps)}" if seqs else "")
        )
    return ExitCode.OK
