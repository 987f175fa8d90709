"""Reading a stopped agent's state directory: same report as the live agent, nothing written."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from agent.active_alarms import ActiveAlarm, AlarmStateFile
from agent.outbox import MessageClass, Outbox
from agent.reports import outbox_report
from agent.state_directory import StateDir


def digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_outbox_read_only_matches_the_live_report(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", "dev1", clock=lambda: time.time() - 60)
    for i in range(5):
        outbox.put(MessageClass.TELEMETRY, "telemetry", {"i": i})
    outbox.put(MessageClass.ALARM, "alarm/co2_high", {"state": "raised"})
    first = outbox.pending(1)[0]
    outbox.delivered(first.seq)
    live = outbox_report(outbox.stats(), outbox.pending(3), [], source="agent")
    outbox.close()
    before = digest(tmp_path)

    offline = StateDir(tmp_path).outbox(peek=3)

    assert offline is not None
    assert digest(tmp_path) == before  # nothing changed on disk
    assert offline["source"] == "state directory"
    for key in ("depth", "bytes", "set_aside", "next_seq", "evicted"):
        assert offline[key] == live[key], key
    assert offline["depth"] == 5
    assert [m["seq"] for m in offline["peek"]] == [m["seq"] for m in live["peek"]]
    assert offline["peek"][0]["payload"] == live["peek"][0]["payload"]
    assert 59 <= offline["oldest_age_s"] <= 70


def test_outbox_readable_from_a_read_only_directory(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", "dev1")
    outbox.put(MessageClass.TELEMETRY, "telemetry", {"i": 1})
    outbox.close()
    os.chmod(tmp_path, 0o555)
    try:
        report = StateDir(tmp_path).outbox()
    finally:
        os.chmod(tmp_path, 0o755)
    assert report is not None and report["depth"] == 1


def test_missing_outbox_is_none(tmp_path: Path) -> None:
    assert StateDir(tmp_path).outbox() is None
    assert not (tmp_path / "outbox.sqlite").exists()


def test_alarms_and_last_snapshots(tmp_path: Path) -> None:
    alarm = ActiveAlarm(
        "co2_high_scd41",
        "co2_high",
        "scd41",
        "warning",
        1000.0,
        1500.0,
        1400.0,
        "CO2 1500 ppm above 1400 ppm",
    )
    assert AlarmStateFile(tmp_path / "alarms.json").save([alarm])
    snaps = tmp_path / "snapshots"
    snaps.mkdir()
    for name in (
        "upstream-20261125T101010.000Z",
        "upstream-20261125T111111.000Z",
        "down-stream-20261125T090909.000Z",
    ):
        (snaps / f"{name}.jpg").write_bytes(b"jpeg")
        (snaps / f"{name}.json").write_text("{}")

    state = StateDir(tmp_path)
    report = state.alarms()
    assert report["active"] == [alarm.to_dict()]
    assert report["recent"] is None
    last = state.last_snapshots()
    assert set(last) == {"upstream", "down-stream"}
    assert last["upstream"]["last_snapshot"].endswith("upstream-20261125T111111.000Z.jpg")


def test_outbox_of_a_crashed_agent_includes_its_wal(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", "dev1")
    for i in range(3):
        outbox.put(MessageClass.TELEMETRY, "telemetry", {"i": i})
    # No close: the WAL still holds the committed messages, as after a SIGKILL.
    assert (tmp_path / "outbox.sqlite-wal").stat().st_size > 0
    before = digest(tmp_path)
    report = StateDir(tmp_path).outbox(peek=3)
    assert digest(tmp_path) == before
    assert report is not None and report["depth"] == 3
    assert [m["payload"].count('"i":') for m in report["peek"]] == [1, 1, 1]
    outbox.close()
