"""Outbox drain throughput to Mosquitto at QoS 1, against raw paho publishing the same messages.

Both sides use the same broker, protocol, payloads and in-flight window; each run is timed from
the connect call to the last PUBACK (the outbox side also deletes every message from SQLite on its
PUBACK). Prints the median of several runs and the ratio (target >= 0.7x), then how long a
100 000-message outbox takes to open and to answer stats().

    .venv/bin/python bench/outbox_drain.py [--messages 20000] [--runs 5] [--inflight 20]

``--rate N`` drains with the link's publish-rate cap at N a second (0, the default here: uncapped,
to compare with raw paho; the agent's own default is 100, AWS IoT Core's limit):

    .venv/bin/python bench/outbox_drain.py --messages 1000 --runs 3 --rate 100 --large 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import MqttLink, MqttSettings
from agent.outbox import MessageClass, Outbox
from hil.broker import BrokerError, LocalBroker

DEVICE = "bench-1"
BODY = {
    "sensors": {
        "duct": {"chip": "scd4x", "co2_ppm": 612.0, "temperature_c": 21.4, "humidity_rh": 48.2},
        "filter": {"chip": "sdp8xx", "differential_pressure_pa": 118.6, "temperature_c": 21.0},
    },
    "faults": {},
}


@contextmanager
def mosquitto(directory: Path) -> Iterator[int]:
    try:
        with LocalBroker(directory) as broker:
            yield broker.port
    except BrokerError as exc:
        raise SystemExit(str(exc)) from None


def fill(path: Path, count: int) -> Outbox:
    """Untimed set-up: one transaction per 1000 messages (a put each would fsync each)."""
    outbox = Outbox(path, DEVICE, max_messages=max(count, 100_000))
    for start in range(0, count, 1000):
        outbox.put_many(MessageClass.TELEMETRY, "telemetry", [BODY] * min(1000, count - start))
    return outbox


def drain_outbox(
    port: int, path: Path, count: int, inflight: int, protocol: str, rate: float
) -> float:
    outbox = fill(path, count)
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        protocol="5" if protocol == "5" else "3.1.1",
        inflight=inflight,
        max_publish_rate=rate,
        reconnect_min_s=0.1,
        reconnect_max_s=1.0,
    )
    link = MqttLink(settings, outbox, DEVICE, status_body=dict)
    start = time.perf_counter()
    link.start()
    deadline = start + 300
    while outbox.stats().depth > 0:
        if time.perf_counter() > deadline:
            raise SystemExit("outbox drain did not finish in 300 s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    link.stop(flush_timeout_s=2)
    outbox.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return elapsed


def raw_paho(port: int, payloads: list[bytes], inflight: int, protocol: str) -> float:
    topic = f"remotair/v1/{DEVICE}/telemetry"
    done = threading.Event()
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] == len(payloads):
            done.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id="bench-raw",
        protocol=paho.MQTTv5 if protocol == "5" else paho.MQTTv311,
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    start = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit("raw paho did not connect")
    for payload in payloads:
        client.publish(topic, payload, qos=1)
    if not done.wait(300):
        raise SystemExit("raw paho publishing did not finish in 300 s")
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


def open_large(directory: Path, count: int) -> tuple[float, float]:
    path = directory / "large.db"
    fill(path, count).close()
    start = time.perf_counter()
    outbox = Outbox(path, DEVICE, max_messages=count)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(100):
        outbox.stats()
    per_stats = (time.perf_counter() - start) / 100
    outbox.close()
    return opened, per_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--protocol", choices=["3.1.1", "5"], default="5")
    parser.add_argument("--large", type=int, default=100_000, help="messages in the open test")
    parser.add_argument("--rate", type=float, default=0.0, help="publish-rate cap, 0: none")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="remotair-bench-") as tmp:
        directory = Path(tmp)
        payloads = [
            m.payload for m in fill(directory / "payloads.db", args.messages).pending(args.messages)
        ]
        outbox_times: list[float] = []
        raw_times: list[float] = []
        with mosquitto(directory) as port:
            for run in range(args.runs):
                outbox_times.append(
                    drain_outbox(
                        port,
                        directory / f"drain{run}.db",
                        args.messages,
                        args.inflight,
                        args.protocol,
                        args.rate,
                    )
                )
                raw_times.append(raw_paho(port, payloads, args.inflight, args.protocol))
        opened, per_stats = open_large(directory, args.large) if args.large else (0.0, 0.0)
    outbox_rate = args.messages / statistics.median(outbox_times)
    raw_rate = args.messages / statistics.median(raw_times)
    cap = f"{args.rate:g}/s" if args.rate else "none"
    print(
        f"messages={args.messages} runs={args.runs} inflight={args.inflight} "
        f"protocol={args.protocol} payload={len(payloads[0])}B qos=1 rate_cap={cap}"
    )
    print(f"outbox drain : {outbox_rate:9.0f} msg/s  (median of {args.runs})")
    print(f"raw paho     : {raw_rate:9.0f} msg/s  (median of {args.runs})")
    print(f"ratio        : {outbox_rate / raw_rate:9.2f}x  (target >= 0.7x)")
    if args.large:
        print(
            f"open {args.large}-message outbox: {opened * 1000:.1f} ms; stats(): "
            f"{per_stats * 1e6:.0f} us"
        )


if __name__ == "__main__":
    main()
