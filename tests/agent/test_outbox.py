"""The durable outbox: seq, durability, per-class policy, set-aside, storage errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import wire
from agent.outbox import MessageClass, Outbox, OutboxError, PutOutcome

T = MessageClass.TELEMETRY
V = MessageClass.VERDICT
A = MessageClass.ALARM
S = MessageClass.STATUS
D = MessageClass.DISCOVERY
ROOT = Path(__file__).resolve().parents[2]


def kinds_and_seqs(outbox: Outbox) -> list[tuple[str, int]]:
    return [(m.kind.value, m.seq) for m in outbox.pending(1000)]


def test_put_builds_the_payload_and_topic(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "duct-7", clock=lambda: 1_700_000_000.25) as outbox:
        message = outbox.put(A, "co2_high", {"event": "raised", "value": 1600.0}).message
        assert message.seq == 1
        assert message.topic == "remotair/v1/duct-7/alarm/co2_high"
        assert json.loads(message.payload) == {
            "v": 1,
            "device": "duct-7",
            "seq": 1,
            "ts": "2023-11-14T22:13:20.250Z",
            "event": "raised",
            "value": 1600.0,
        }
        assert outbox.pending(10) == [message]


def test_a_simulated_boards_outbox_marks_every_enveloped_message(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "duct-7", simulated=True) as outbox:
        alarm = outbox.put(A, "co2_high", {"event": "raised"}).message
        status = outbox.put(MessageClass.STATUS, "", {"state": "online"}, retain=True).message
        assert json.loads(alarm.payload)["sim"] is True
        assert json.loads(status.payload)["sim"] is True


def test_seq_is_monotonic_and_never_reused_across_deletes_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, "d1") as outbox:
        seqs = [outbox.put(T, "", {"i": i}).message.seq for i in range(3)]
        assert seqs == [1, 2, 3]
        assert outbox.delivered_many(seqs) == 3
        assert outbox.stats().depth == 0
    with Outbox(path, "d1") as outbox:
        assert outbox.put(T, "", {"i": 3}).message.seq == 4
        assert outbox.stats().next_seq == 5


def test_concurrent_puts_get_unique_contiguous_seqs(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        got: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            for i in range(50):
                seq = outbox.put(T, "", {"i": i}).message.seq
                with lock:
                    got.append(seq)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(got) == list(range(1, 201))
        assert [m.seq for m in outbox.pending(1000)] == list(range(1, 201))


def test_put_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from agent.outbox import Outbox, MessageClass
        outbox = Outbox(Path({str(path)!r}), "d1")
        for i in range(20):
            outbox.put(MessageClass.TELEMETRY, "", {{"i": i}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Outbox(path, "d1") as outbox:
        assert [m.seq for m in outbox.pending(100)] == list(range(1, 21))
        assert outbox.stats().depth == 20
        assert outbox.put(T, "", {"i": 20}).message.seq == 21


def test_stats_counts_depth_bytes_and_age(tmp_path: Path) -> None:
    now = [1000.0]
    with Outbox(tmp_path / "o.db", "d1", clock=lambda: now[0]) as outbox:
        assert outbox.stats().oldest_age_s is None
        first = outbox.put(T, "", {"i": 1}).message
        now[0] = 1010.0
        second = outbox.put(V, "cam0", {"label": "clean"}).message
        now[0] = 1025.5
        stats = outbox.stats()
        assert stats.depth == 2
        assert stats.bytes == len(first.payload) + len(second.payload)
        assert stats.oldest_age_s == pytest.approx(25.5)
        assert outbox.delivered(first.seq) is True
        assert outbox.delivered(first.seq) is False
        stats = outbox.stats()
        assert (stats.depth, stats.bytes) == (1, len(second.payload))
        assert stats.oldest_age_s == pytest.approx(15.5)


def test_put_many_is_one_all_or_nothing_transaction(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        messages = outbox.put_many(T, "telemetry", [{"i": i} for i in range(3)]).messages
        assert [m.seq for m in messages] == [1, 2, 3]
        assert [json.loads(m.payload)["i"] for m in outbox.pending(10)] == [0, 1, 2]
        with pytest.raises(wire.WireError, match="non-finite"):
            outbox.put_many(T, "telemetry", [{"i": 3}, {"i": float("nan")}])
        stats = outbox.stats()
        assert (stats.depth, stats.next_seq) == (3, 4)


def test_pending_after_seq(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        for i in range(5):
            outbox.put(T, "", {"i": i})
        assert [m.seq for m in outbox.pending(2)] == [1, 2]
        assert [m.seq for m in outbox.pending(10, after_seq=3)] == [4, 5]


def test_eviction_order_telemetry_then_verdicts_never_alarms(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1", max_messages=6) as outbox:
        for kind, suffix in [(T, ""), (T, ""), (V, "cam0"), (A, "co2"), (T, ""), (V, "cam0")]:
            outbox.put(kind, suffix, {"x": 1})
        assert outbox.stats().depth == 6
        outbox.put(A, "rh", {"x": 1})  # evicts telemetry 1
        outbox.put(A, "rh", {"x": 1})  # evicts telemetry 2
        outbox.put(A, "rh", {"x": 1})  # evicts telemetry 5
        assert kinds_and_seqs(outbox) == [
            ("verdict", 3),
            ("alarm", 4),
            ("verdict", 6),
            ("alarm", 7),
            ("alarm", 8),
            ("alarm", 9),
        ]
        outbox.put(A, "rh", {"x": 1})  # no telemetry left: evicts verdict 3
        stats = outbox.stats()
        assert stats.evicted[T] == 3
        assert stats.evicted[V] == 1
        assert stats.evicted[A] == 0
        assert stats.depth == 6
        outbox.put(T, "", {"x": 1})  # evicts verdict 6 for itself
        outbox.put(T, "", {"x": 1})  # evicts telemetry 11
        assert kinds_and_seqs(outbox) == [
            ("alarm", 4),
            ("alarm", 7),
            ("alarm", 8),
            ("alarm", 9),
            ("alarm", 10),
            ("telemetry", 12),
        ]
        outbox.put(A, "rh", {"x": 1})  # evicts telemetry 12
        outbox.put(A, "rh", {"x": 1})  # nothing evictable: kept over the bound
        assert outbox.stats().depth == 7
        refused = outbox.put(T, "", {"x": 1})
        assert refused.outcome is PutOutcome.REFUSED_BY_POLICY and refused.message is None
        assert "no room for a telemetry message" in str(refused.reason)
        stats = outbox.stats()
        assert stats.evicted[T] == 6  # 1, 2, 5, 11, 12 evicted, and the refused one counted
        assert stats.evicted[V] == 2
        assert all(kind == "alarm" for kind, _ in kinds_and_seqs(outbox))
        assert stats.next_seq == 15  # 14 puts; the refused put did not consume a seq


def test_put_says_stored_stored_after_evicting_or_refused_by_policy(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1", max_messages=2) as outbox:
        first = outbox.put(T, "", {"x": 1})
        assert (first.outcome, first.stored, dict(first.evicted)) == (PutOutcome.STORED, True, {})
        outbox.put(A, "a", {"x": 2})
        evicting = outbox.put(A, "b", {"x": 3})
        assert evicting.outcome is PutOutcome.STORED_AFTER_EVICTING
        assert dict(evicting.evicted) == {T: 1} and evicting.message is not None
        refused = outbox.put(V, "cam0", {"label": "clean"})
        assert (refused.outcome, refused.stored, refused.messages) == (
            PutOutcome.REFUSED_BY_POLICY,
            False,
            (),
        )
        assert outbox.stats().evicted[V] == 1


def test_byte_bound_evicts_oldest_telemetry(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, "d1", max_bytes=1000) as outbox:
        size = len(outbox.put(T, "", {"pad": "x" * 200}).message.payload)
        for _ in range(10):
            outbox.put(T, "", {"pad": "x" * 200})
        stats = outbox.stats()
        assert stats.bytes <= 1000
        assert stats.depth == 1000 // size
        assert stats.evicted[T] == 11 - stats.depth
        remaining = [m.seq for m in outbox.pending(100)]
        assert remaining == list(range(12 - stats.depth, 12))
        evicted = stats.evicted[T]
    with Outbox(path, "d1", max_bytes=1000) as reopened:
        assert reopened.stats().evicted[T] == evicted  # counts persist


def test_status_and_discovery_are_latest_per_topic(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        outbox.put(S, "", {"state": "online", "n": 1}, retain=True)
        telemetry = outbox.put(T, "", {"x": 1}).message
        newest = outbox.put(S, "", {"state": "online", "n": 2}, retain=True).message
        outbox.put_discovery("homeassistant/sensor/d1/a/config", {"name": "a", "rev": 1})
        outbox.put_discovery("homeassistant/sensor/d1/b/config", {"name": "b"})
        last_a = outbox.put_discovery(
            "homeassistant/sensor/d1/a/config", {"name": "a", "rev": 2}
        ).message
        assert [m.seq for m in outbox.pending(100)] == [telemetry.seq]
        latest = outbox.pending_latest()
        assert [m.topic for m in latest] == [
            newest.topic,
            "homeassistant/sensor/d1/b/config",
            last_a.topic,
        ]
        assert latest[0] == newest and latest[2] == last_a
        assert newest.retain is True
        assert json.loads(last_a.payload) == {"name": "a", "rev": 2}  # no envelope for HA
        stats = outbox.stats()
        assert stats.depth == 4
        assert stats.bytes == len(telemetry.payload) + sum(len(m.payload) for m in latest)
        assert stats.evicted_total == 0


def test_the_stream_seq_has_no_hole_for_latest_value_messages(tmp_path: Path) -> None:
    """Status and discovery neither take nor leave stream numbers; status says seq null."""
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        outbox.put_discovery("homeassistant/sensor/d1/a/config", {"name": "a"})
        stream = []
        for n in range(3):
            stream.append(outbox.put(T, "", {"n": n}).message)
            status = outbox.put(S, "", {"state": "online", "n": n}, retain=True).message
        stream.append(outbox.put(A, "co2", {"state": "raised"}).message)
        assert status is not None and status.wire_seq is None
        assert json.loads(status.payload)["seq"] is None
        seqs = [json.loads(m.payload)["seq"] for m in stream if m is not None]
        assert seqs == [1, 2, 3, 4]
        assert outbox.stats().next_seq == 5


def test_evicted_and_set_aside_seqs_are_reported_as_gaps(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1", max_messages=4, max_attempts=1) as outbox:
        for n in range(3):
            outbox.put(T, "", {"n": n})  # seq 1-3
        outbox.put(A, "co2", {"state": "raised"})  # seq 4
        outbox.put(T, "", {"n": 3})  # seq 5: evicts 1
        outbox.put(T, "", {"n": 4})  # seq 6: evicts 2
        outbox.put(T, "", {"n": 5})  # seq 7: evicts 3
        outbox.put(T, "", {"n": 6})  # seq 8: evicts 5 (4 is an alarm)
        assert outbox.failed(4, "Not authorized (0x87)") is True
        gaps = [(g.first, g.last, g.kind, g.cause) for g in outbox.stats().gaps]
        assert gaps == [
            (1, 3, "telemetry", "evicted"),
            (4, 4, "alarm", "set_aside"),
            (5, 5, "telemetry", "evicted"),
        ]
        delivered = {m.seq for m in outbox.pending(100)}
        reported = {s for first, last, *_ in gaps for s in range(first, last + 1)}
        assert delivered | reported == set(range(1, outbox.stats().next_seq))
    with Outbox(tmp_path / "o.db", "d1") as reopened:
        assert len(reopened.stats().gaps) == 3  # persisted with the evictions


def test_failed_message_is_set_aside_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, "d1", max_attempts=3) as outbox:
        bad = outbox.put(A, "big", {"x": 1}).message
        good = outbox.put(T, "", {"x": 2}).message
        assert outbox.failed(bad.seq, "Not authorized (0x87)") is False
        assert outbox.failed(bad.seq, "Not authorized (0x87)") is False
        assert outbox.get(bad.seq) is not None
        assert outbox.get(bad.seq).attempts == 2  # type: ignore[union-attr]
        assert outbox.failed(bad.seq, "Not authorized (0x87)") is True
        assert [m.seq for m in outbox.pending(10)] == [good.seq]
        stats = outbox.stats()
        assert (stats.depth, stats.set_aside, stats.bytes) == (1, 1, len(good.payload))
        assert outbox.failed(bad.seq, "again") is False  # already gone from the queue
    with Outbox(path, "d1", max_attempts=3) as reopened:
        [aside] = reopened.set_aside_messages()
        assert (aside.seq, aside.kind, aside.attempts) == (bad.seq, A, 3)
        assert aside.reason == "Not authorized (0x87)"
        assert aside.payload == bad.payload
        assert reopened.stats().set_aside == 1


def test_oversize_payload_refused_at_put(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        with pytest.raises(wire.PayloadTooLargeError, match="131072-byte limit"):
            outbox.put(V, "cam0", {"image": "x" * wire.MAX_PAYLOAD_BYTES})
        stats = outbox.stats()
        assert (stats.depth, stats.next_seq) == (0, 1)


def test_result_can_carry_response_topic_and_correlation(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", "d1") as outbox:
        message = outbox.put(
            MessageClass.RESULT, "ping", {"ok": True}, topic="replies/x", correlation_data=b"\x01"
        ).message
        assert outbox.get(message.seq) == message
        assert message.topic == "replies/x"
        with pytest.raises(wire.WireError, match="wildcard"):
            outbox.put(MessageClass.RESULT, "ping", {"ok": True}, topic="replies/#")


# -- storage failures ----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[bool]:
    """Mount a tiny tmpfs at ``where`` when we may (root); yields whether it is mounted."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            timeout=10,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def test_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    storage = tmp_path / "ro"
    with tmpfs(storage, "1m", read_only=True) as mounted:
        if not mounted:
            if os.geteuid() == 0:
                pytest.skip("root without mount: cannot make a directory read-only for root")
            storage.chmod(0o555)
        with pytest.raises(OutboxError) as caught:
            Outbox(storage / "outbox.db", "d1")
        assert str(storage / "outbox.db") in str(caught.value)
        assert "read-only" in str(caught.value)


def test_full_disk_is_a_clear_error_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    storage = tmp_path / "full"
    with tmpfs(storage, "256k") as mounted:
        outbox = Outbox(storage / "outbox.db", "d1")
        if not mounted:  # make SQLite itself run out of pages instead
            outbox._db.execute("PRAGMA max_page_count = 64")
        stored: list[int] = []
        with pytest.raises(OutboxError) as caught:
            for i in range(10_000):
                stored.append(outbox.put(A, "x", {"i": i, "pad": "p" * 2000}).message.seq)
        assert "full" in str(caught.value)
        assert str(storage / "outbox.db") in str(caught.value)
        assert stored, "nothing fitted at all: the test storage is too small"
        assert [m.seq for m in outbox.pending(len(stored) + 10)] == stored
        assert outbox.stats().depth == len(stored)
        outbox.close()
