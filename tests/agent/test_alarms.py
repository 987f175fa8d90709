"""The alarm engine: every rule's raise and clear edges, hold times, counters and persistence."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agent.active_alarms import AlarmStateFile
from agent.alarms import (
    AlarmEngine,
    AlarmEvent,
    AlarmsConfig,
    alarm_name,
)
from drivers.measurement import Measurement

HOLD = 120.0


class Engine(AlarmEngine):
    """The engine with its injected monotonic clock at each measurement's ``ts``: these tests
    step time through ``ts``; the wall-clock jump test moves the two apart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.now = 0.0
        super().__init__(*args, monotonic=lambda: self.now, **kwargs)

    def observe_measurement(
        self, sensor: str, measurement: Measurement, ts: float
    ) -> list[AlarmEvent]:
        self.now = ts
        return super().observe_measurement(sensor, measurement, ts)


def config(**overrides: Any) -> AlarmsConfig:
    return AlarmsConfig(**{"hold_s": HOLD, **overrides})


def summary(events: list[AlarmEvent]) -> list[tuple[str, str]]:
    return [(e.name, e.state) for e in events]


def co2(ppm: float) -> Measurement:
    return Measurement(co2_ppm=ppm)


# Each threshold rule: name, Measurement field, threshold key, hysteresis key, direction.
THRESHOLD_CASES = [
    ("co2_warning", "co2_ppm", "co2_warning_ppm", "co2_hysteresis_ppm", +1),
    ("co2_critical", "co2_ppm", "co2_critical_ppm", "co2_hysteresis_ppm", +1),
    ("humidity_high", "humidity_rh", "humidity_high_rh", "humidity_hysteresis_rh", +1),
    ("temperature_high", "temperature_c", "temperature_high_c", "temperature_hysteresis_c", +1),
    ("temperature_low", "temperature_c", "temperature_low_c", "temperature_hysteresis_c", -1),
    (
        "filter_clogged",
        "differential_pressure_pa",
        "filter_dp_high_pa",
        "filter_dp_hysteresis_pa",
        +1,
    ),
]
CASE_IDS = [case[0] for case in THRESHOLD_CASES]


def test_defaults_follow_the_design_references() -> None:
    # DESIGN.md: CO2 ~1000 ppm warning, 1500 ppm critical (EN 16798-1 / ASHRAE 62.1);
    # relative humidity above ~70 % sustained is a mould risk.
    cfg = AlarmsConfig()
    assert (cfg.co2_warning_ppm, cfg.co2_critical_ppm, cfg.humidity_high_rh) == (1000, 1500, 70)
    assert cfg.co2_hysteresis_ppm > 0 and cfg.hold_s > 0


def test_every_config_field_is_documented() -> None:
    for name, f in AlarmsConfig.model_fields.items():
        assert f.description, name


# -- threshold rules: the value edges ----------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "quantity", "key", "hyst_key", "sign"), THRESHOLD_CASES, ids=CASE_IDS
)
@pytest.mark.parametrize(("offset", "raises"), [(-0.1, False), (0.0, True), (0.1, True)])
def test_threshold_raise_edge(
    rule: str, quantity: str, key: str, hyst_key: str, sign: int, offset: float, raises: bool
) -> None:
    cfg = config(hold_s=0.0)
    value = getattr(cfg, key) + sign * offset
    engine = Engine(cfg)
    events = engine.observe_measurement("s1", Measurement(**{quantity: value}), ts=10.0)
    mine = [e for e in events if e.rule == rule]
    if not raises:
        assert mine == []
        return
    assert len(mine) == 1
    event = mine[0]
    assert (event.name, event.state, event.sensors) == (rule, "raised", ("s1",))
    assert event.value == pytest.approx(value)
    assert event.threshold == getattr(cfg, key)
    assert event.ts == 10.0
    assert [a.name for a in engine.active() if a.rule == rule] == [rule]


@pytest.mark.parametrize(
    ("rule", "quantity", "key", "hyst_key", "sign"), THRESHOLD_CASES, ids=CASE_IDS
)
@pytest.mark.parametrize(("offset", "clears"), [(0.1, False), (0.0, False), (-0.1, True)])
def test_threshold_clear_edge_uses_hysteresis(
    rule: str, quantity: str, key: str, hyst_key: str, sign: int, offset: float, clears: bool
) -> None:
    """Clears strictly beyond threshold -/+ hysteresis; at the clear level it stays raised."""
    cfg = config(hold_s=0.0)
    threshold, hysteresis = getattr(cfg, key), getattr(cfg, hyst_key)
    engine = Engine(cfg)
    engine.observe_measurement("s1", Measurement(**{quantity: threshold}), ts=0.0)
    clear_level = threshold - sign * hysteresis
    value = clear_level + sign * offset
    events = engine.observe_measurement("s1", Measurement(**{quantity: value}), ts=1.0)
    mine = [e for e in events if e.rule == rule]
    if clears:
        assert summary(mine) == [(rule, "cleared")]
        assert mine[0].value == pytest.approx(value)
        assert mine[0].threshold == threshold
        assert rule not in {a.rule for a in engine.active()}
    else:
        assert mine == []
        assert rule in {a.rule for a in engine.active()}


def test_a_value_inside_the_hysteresis_band_changes_nothing() -> None:
    engine = Engine(config(hold_s=0.0))
    assert summary(engine.observe_measurement("scd41", co2(1500), ts=0.0)) == [
        ("co2_warning", "raised"),
        ("co2_critical", "raised"),
    ]
    assert engine.observe_measurement("scd41", co2(1450), ts=1.0) == []
    # 950 ppm clears critical (below 1400) but sits in warning's band (900..1000).
    assert summary(engine.observe_measurement("scd41", co2(950), ts=2.0)) == [
        ("co2_critical", "cleared")
    ]
    assert [a.name for a in engine.active()] == ["co2_warning"]


# -- threshold rules: the hold time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_at", "raises"), [(HOLD - 0.001, False), (HOLD, True), (HOLD + 0.001, True)]
)
def test_raise_waits_for_the_hold_time(second_at: float, raises: bool) -> None:
    engine = Engine(config())
    assert engine.observe_measurement("scd41", co2(1620), ts=1000.0) == []
    events = engine.observe_measurement("scd41", co2(1620), ts=1000.0 + second_at)
    expected = [("co2_warning", "raised"), ("co2_critical", "raised")]
    assert summary(events) == (expected if raises else [])


@pytest.mark.parametrize(
    ("second_at", "clears"), [(HOLD - 0.001, False), (HOLD, True), (HOLD + 0.001, True)]
)
def test_clear_waits_for_the_hold_time(second_at: float, clears: bool) -> None:
    engine = Engine(config())
    engine.observe_measurement("sht41", Measurement(humidity_rh=80), ts=0.0)
    assert summary(engine.observe_measurement("sht41", Measurement(humidity_rh=80), ts=HOLD)) == [
        ("humidity_high", "raised")
    ]
    assert engine.observe_measurement("sht41", Measurement(humidity_rh=50), ts=500.0) == []
    events = engine.observe_measurement("sht41", Measurement(humidity_rh=50), ts=500.0 + second_at)
    assert summary(events) == ([("humidity_high", "cleared")] if clears else [])


def test_a_spike_shorter_than_the_hold_raises_nothing() -> None:
    engine = Engine(config())
    events: list[AlarmEvent] = []
    # 1600 ppm for 90 s, a normal reading, 1600 ppm again: the timer restarts at t=120.
    for ts, ppm in [(0, 1600), (30, 1600), (90, 1600), (100, 700), (120, 1600), (230, 1600)]:
        events += engine.observe_measurement("scd41", co2(ppm), ts=float(ts))
    assert events == [] and engine.active() == []
    raised = engine.observe_measurement("scd41", co2(1600), ts=240.0)
    assert summary(raised) == [("co2_warning", "raised"), ("co2_critical", "raised")]


def test_a_dip_shorter_than_the_hold_clears_nothing() -> None:
    engine = Engine(config())
    engine.observe_measurement("sdp810", Measurement(differential_pressure_pa=300), ts=0.0)
    engine.observe_measurement("sdp810", Measurement(differential_pressure_pa=300), ts=HOLD)
    events: list[AlarmEvent] = []
    for ts, pa in [(200, 100), (300, 100), (310, 240), (320, 100), (439, 100)]:
        events += engine.observe_measurement(
            "sdp810", Measurement(differential_pressure_pa=pa), ts=float(ts)
        )
    assert events == []  # 240 Pa is inside the band and restarts the clear timer
    assert [a.name for a in engine.active()] == ["filter_clogged"]
    cleared = engine.observe_measurement("sdp810", Measurement(differential_pressure_pa=100), 440)
    assert summary(cleared) == [("filter_clogged", "cleared")]


def test_no_second_raised_while_the_condition_stays() -> None:
    engine = Engine(config())
    events: list[AlarmEvent] = []
    for ts in range(0, 3600, 30):
        events += engine.observe_measurement("scd41", co2(1200), ts=float(ts))
    assert summary(events) == [("co2_warning", "raised")]
    assert events[0].ts == HOLD


def test_one_co2_event_raises_one_alarm_listing_the_sensors_that_agree() -> None:
    engine = Engine(config())
    engine.observe_measurement("scd41", co2(1200), ts=0.0)
    engine.observe_measurement("scd30", co2(1250), ts=60.0)
    engine.observe_measurement("s8", co2(600), ts=60.0)
    [raised] = engine.observe_measurement("scd41", co2(1200), ts=HOLD)
    assert (raised.name, raised.state, raised.sensors) == ("co2_warning", "raised", ("scd41",))
    assert "at scd41 is above" in raised.message
    assert engine.observe_measurement("scd30", co2(1250), ts=180.0) == [], "no second alarm"
    [active] = engine.active()
    assert active.sensors == ("scd30", "scd41")
    # One sensor back to normal does not clear what the other still sees.
    engine.observe_measurement("scd30", co2(500), ts=200.0)
    assert engine.observe_measurement("scd30", co2(500), ts=200.0 + HOLD) == []
    assert [a.sensors for a in engine.active()] == [("scd41",)]
    engine.observe_measurement("scd41", co2(500), ts=400.0)
    [cleared] = engine.observe_measurement("scd41", co2(500), ts=400.0 + HOLD)
    assert (cleared.name, cleared.state) == ("co2_warning", "cleared")
    assert engine.active() == []


def test_a_per_sensor_alarm_stored_by_an_older_version_becomes_the_rule_alarm(
    tmp_path: Path,
) -> None:
    state = tmp_path / "alarms.json"
    old = {
        "name": "co2_warning_scd41",
        "rule": "co2_warning",
        "source": "scd41",
        "severity": "warning",
        "raised_at": 5.0,
        "value": 1200.0,
        "threshold": 1000.0,
        "message": "CO2 1200 ppm at scd41 is above the warning threshold 1000 ppm",
    }
    state.write_text(json.dumps({"version": 1, "active": [old]}))
    engine = Engine(config(), state_path=state)
    [restored] = engine.active()
    assert (restored.name, restored.sensors) == ("co2_warning", ("scd41",))
    assert engine.observe_measurement("scd41", co2(1200), ts=10.0) == [], "no second raised"
    engine.observe_measurement("scd41", co2(500), ts=20.0)
    [cleared] = engine.observe_measurement("scd41", co2(500), ts=20.0 + HOLD)
    assert (cleared.name, cleared.state) == ("co2_warning", "cleared")


def test_a_missing_quantity_leaves_its_timer_running() -> None:
    engine = Engine(config())
    engine.observe_measurement("bme280", Measurement(temperature_c=40, humidity_rh=40), ts=0.0)
    engine.observe_measurement("bme280", Measurement(humidity_rh=40), ts=60.0)
    events = engine.observe_measurement("bme280", Measurement(temperature_c=40), ts=HOLD)
    assert summary(events) == [("temperature_high", "raised")]


def test_a_failed_read_restarts_the_hold_timer() -> None:
    engine = Engine(config())
    engine.observe_measurement("scd41", co2(1200), ts=0.0)
    engine.observe_sensor_fault("scd41", "CRC mismatch", ts=60.0)
    assert engine.observe_measurement("scd41", co2(1200), ts=HOLD) == []
    assert summary(engine.observe_measurement("scd41", co2(1200), ts=2 * HOLD)) == [
        ("co2_warning", "raised")
    ]


def test_temperature_low_clears_above_threshold_plus_hysteresis() -> None:
    cfg = config(hold_s=0.0)
    engine = Engine(cfg)
    engine.observe_measurement("bme280", Measurement(temperature_c=2.0), ts=0.0)
    # Warmer than the threshold but not beyond the hysteresis: still raised.
    between = cfg.temperature_low_c + cfg.temperature_hysteresis_c / 2
    assert engine.observe_measurement("bme280", Measurement(temperature_c=between), ts=1) == []
    warm = cfg.temperature_low_c + cfg.temperature_hysteresis_c + 0.5
    events = engine.observe_measurement("bme280", Measurement(temperature_c=warm), ts=2.0)
    assert summary(events) == [("temperature_low", "cleared")]


# -- counted rules -----------------------------------------------------------------------------


def test_sensor_fault_after_k_consecutive_failures_cleared_by_one_good_read() -> None:
    cfg = config(sensor_fault_consecutive=3)
    engine = Engine(cfg)
    assert engine.observe_sensor_fault("scd41", "CRC mismatch", ts=1.0) == []
    assert engine.observe_sensor_fault("scd41", "CRC mismatch", ts=2.0) == []
    raised = engine.observe_sensor_fault("scd41", "no ACK at 0x62", ts=3.0)
    assert summary(raised) == [("sensor_fault_scd41", "raised")]
    assert raised[0].severity == "critical"
    assert raised[0].value == 3 and raised[0].threshold == 3
    assert "scd41" in raised[0].message and "no ACK at 0x62" in raised[0].message
    assert engine.observe_sensor_fault("scd41", "no ACK at 0x62", ts=4.0) == []
    cleared = engine.observe_sensor_ok("scd41", ts=5.0)
    assert summary(cleared) == [("sensor_fault_scd41", "cleared")]
    assert engine.active() == []


def test_a_good_read_resets_the_failure_count() -> None:
    engine = Engine(config(sensor_fault_consecutive=3))
    events: list[AlarmEvent] = []
    events += engine.observe_sensor_fault("sht41", "timeout", ts=1.0)
    events += engine.observe_sensor_fault("sht41", "timeout", ts=2.0)
    events += engine.observe_measurement("sht41", Measurement(humidity_rh=40), ts=3.0)
    events += engine.observe_sensor_fault("sht41", "timeout", ts=4.0)
    events += engine.observe_sensor_fault("sht41", "timeout", ts=5.0)
    assert events == []
    assert summary(engine.observe_sensor_fault("sht41", "timeout", ts=6.0)) == [
        ("sensor_fault_sht41", "raised")
    ]
    # Faults are counted per sensor.
    assert engine.observe_sensor_fault("bme280", "timeout", ts=7.0) == []


def test_a_measurement_clears_a_sensor_fault() -> None:
    engine = Engine(config(sensor_fault_consecutive=1))
    engine.observe_sensor_fault("scd41", "timeout", ts=1.0)
    events = engine.observe_measurement("scd41", co2(600), ts=2.0)
    assert summary(events) == [("sensor_fault_scd41", "cleared")]


def test_camera_fault_after_k_failures_cleared_by_a_capture_or_a_verdict() -> None:
    engine = Engine(config(camera_fault_consecutive=2))
    assert engine.observe_camera_fault("cam0", "capture timed out", ts=1.0) == []
    assert engine.observe_camera_ok("cam0", ts=2.0) == []
    assert engine.observe_camera_fault("cam0", "capture timed out", ts=3.0) == []
    raised = engine.observe_camera_fault("cam0", "capture timed out", ts=4.0)
    assert summary(raised) == [("camera_fault_cam0", "raised")]
    assert "capture timed out" in raised[0].message
    assert summary(engine.observe_verdict("cam0", "clean", ts=5.0)) == [
        ("camera_fault_cam0", "cleared")
    ]
    engine.observe_camera_fault("cam0", "x", ts=6.0)
    engine.observe_camera_fault("cam0", "x", ts=7.0)
    assert summary(engine.observe_camera_ok("cam0", ts=8.0)) == [("camera_fault_cam0", "cleared")]


def test_duct_dirty_after_n_dirty_verdicts_cleared_after_n_clean() -> None:
    engine = Engine(config(dirty_consecutive=3))
    events: list[AlarmEvent] = []
    for ts, label in enumerate(["dirty", "dirty", "clean", "dirty", "uncertain", "dirty"]):
        events += engine.observe_verdict("cam0", label, ts=float(ts))
    assert events == []  # the clean verdict broke the streak; "uncertain" neither counts nor breaks
    raised = engine.observe_verdict("cam0", "Dirty", ts=10.0)
    assert summary(raised) == [("duct_dirty_cam0", "raised")]
    assert raised[0].severity == "warning" and raised[0].value == 3
    assert engine.observe_verdict("cam1", "dirty", ts=11.0) == []  # per camera
    for ts, label in enumerate(["clean", "clean", "dirty", "clean", "clean"], start=20):
        events += engine.observe_verdict("cam0", label, ts=float(ts))
    assert events == []
    cleared = engine.observe_verdict("cam0", "clean", ts=30.0)
    assert summary(cleared) == [("duct_dirty_cam0", "cleared")]


def test_uncertain_and_unusable_verdicts_alone_never_raise_duct_dirty() -> None:
    engine = Engine(config(dirty_consecutive=2))
    events: list[AlarmEvent] = []
    for ts in range(20):
        events += engine.observe_verdict("cam0", ("uncertain", "unusable")[ts % 2], ts=float(ts))
    assert events == []
    # between two dirty verdicts they neither count nor break the streak
    assert engine.observe_verdict("cam0", "dirty", ts=30.0) == []
    assert engine.observe_verdict("cam0", "unusable", ts=31.0) == []
    assert engine.observe_verdict("cam0", "uncertain", ts=32.0) == []
    assert summary(engine.observe_verdict("cam0", "dirty", ts=33.0)) == [
        ("duct_dirty_cam0", "raised")
    ]
    # nor do they clear a raised alarm
    for ts in range(40, 50):
        assert engine.observe_verdict("cam0", "unusable", ts=float(ts)) == []
    assert engine.observe_verdict("cam0", "clean", ts=50.0) == []
    assert summary(engine.observe_verdict("cam0", "clean", ts=51.0)) == [
        ("duct_dirty_cam0", "cleared")
    ]


@pytest.mark.parametrize(("fill", "raises"), [(0.899, False), (0.9, True), (0.95, True)])
def test_outbox_near_full_raise_edge(fill: float, raises: bool) -> None:
    engine = Engine(config())
    events = engine.observe_outbox(fill, ts=1.0)
    assert summary(events) == ([("outbox_near_full", "raised")] if raises else [])
    if raises:
        assert events[0].source == "" and events[0].threshold == 0.9
        assert events[0].value == fill


def test_outbox_near_full_clears_ten_points_below() -> None:
    engine = Engine(config())
    engine.observe_outbox(0.93, ts=1.0)
    assert engine.observe_outbox(0.85, ts=2.0) == []
    assert engine.observe_outbox(0.80, ts=3.0) == []
    assert engine.observe_outbox(0.95, ts=4.0) == []  # no second raised
    assert summary(engine.observe_outbox(0.799, ts=5.0)) == [("outbox_near_full", "cleared")]


# -- events, names, history --------------------------------------------------------------------


def test_to_body_carries_every_field_but_the_envelope() -> None:
    engine = Engine(config(hold_s=0.0))
    event = engine.observe_measurement("scd41", co2(1620), ts=1_700_000_000.5)[-1]
    assert event.to_body() == {
        "name": "co2_critical",
        "rule": "co2_critical",
        "source": "",
        "sensors": ["scd41"],
        "state": "raised",
        "severity": "critical",
        "value": 1620.0,
        "threshold": 1500.0,
        "message": "CO2 1620 ppm at scd41 is above the critical threshold 1500 ppm",
    }
    json.dumps(event.to_body())  # JSON-ready as it is
    assert event.ts == 1_700_000_000.5


def test_messages_read_as_one_line_for_a_technician() -> None:
    engine = Engine(config(hold_s=0.0))
    raised = engine.observe_measurement("sht41", Measurement(humidity_rh=74.3), ts=0.0)
    assert raised[0].message == (
        "Humidity 74.3 %RH at sht41 is above the high threshold 70 %RH: "
        "sustained, this is a mould risk in the duct"
    )
    cleared = engine.observe_measurement("scd41", co2(1600), ts=1.0)
    cleared = engine.observe_measurement("scd41", co2(850), ts=2.0)
    assert [e.message for e in cleared] == [
        "CO2 850 ppm at scd41 is back below 900 ppm (warning threshold 1000 ppm)",
        "CO2 850 ppm at scd41 is back below 1400 ppm (critical threshold 1500 ppm)",
    ]
    for event in engine.recent():
        assert "\n" not in event.message and event.source in event.message


def test_a_multi_line_error_becomes_one_line() -> None:
    engine = Engine(config(sensor_fault_consecutive=1, camera_fault_consecutive=1))
    error = "CRC mismatch\n  received=0x12 expected=0x34"
    events = engine.observe_sensor_fault("scd41", error, ts=1.0)
    events += engine.observe_camera_fault("cam0", error, ts=1.0)
    for event in events:
        assert "\n" not in event.message
        assert "CRC mismatch received=0x12 expected=0x34" in event.message


def test_alarm_names_are_single_topic_levels() -> None:
    assert alarm_name("outbox_near_full", "") == "outbox_near_full"
    name = alarm_name("duct_dirty", "cam/0 +#")
    assert name.startswith("duct_dirty_cam")
    assert not set(name) & set("/+# ")


def test_recent_is_bounded_and_oldest_first() -> None:
    engine = Engine(config(sensor_fault_consecutive=1), history_size=3)
    engine.observe_sensor_fault("a", "x", ts=1.0)
    engine.observe_sensor_ok("a", ts=2.0)
    engine.observe_sensor_fault("b", "x", ts=3.0)
    engine.observe_sensor_ok("b", ts=4.0)
    assert [(e.name, e.ts) for e in engine.recent(10)] == [
        ("sensor_fault_a", 2.0),
        ("sensor_fault_b", 3.0),
        ("sensor_fault_b", 4.0),
    ]
    assert [e.ts for e in engine.recent(1)] == [4.0]
    assert engine.recent(0) == []


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"hold_s": -1.0}, "hold_s"),
        ({"co2_hysteresis_ppm": -5.0}, "co2_hysteresis_ppm"),
        ({"dirty_consecutive": 0}, "dirty_consecutive"),
        ({"outbox_near_full_fraction": 1.5}, "outbox_near_full_fraction"),
        ({"outbox_hysteresis_fraction": 0.95}, "outbox_hysteresis_fraction"),
    ],
)
def test_unusable_settings_are_refused_by_name(overrides: dict[str, float], key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        Engine(config(**overrides))


# -- persistence -------------------------------------------------------------------------------


def raise_co2_critical(engine: AlarmEngine, start: float = 0.0) -> None:
    engine.observe_measurement("scd41", co2(1700), ts=start)
    events = engine.observe_measurement("scd41", co2(1700), ts=start + HOLD)
    assert ("co2_critical", "raised") in summary(events)


def test_restart_keeps_active_alarms_without_a_second_raised(tmp_path: Path) -> None:
    state = tmp_path / "alarms.json"
    first = Engine(config(sensor_fault_consecutive=1), state_path=state)
    raise_co2_critical(first)
    first.observe_sensor_fault("sht41", "timeout", ts=200.0)
    before = first.active()
    assert not list(tmp_path.glob("*.tmp"))

    second = Engine(config(sensor_fault_consecutive=1), state_path=state)
    assert second.active() == before
    events: list[AlarmEvent] = []
    for ts in range(1000, 2000, 30):
        events += second.observe_measurement("scd41", co2(1700), ts=float(ts))
    events += second.observe_sensor_fault("sht41", "timeout", ts=2000.0)
    assert events == []

    # The condition has gone: clears normally, after the hold.
    assert second.observe_measurement("scd41", co2(600), ts=3000.0) == []
    cleared = second.observe_measurement("scd41", co2(600), ts=3000.0 + HOLD)
    assert summary(cleared) == [("co2_warning", "cleared"), ("co2_critical", "cleared")]
    assert summary(second.observe_sensor_ok("sht41", ts=3200.0)) == [
        ("sensor_fault_sht41", "cleared")
    ]
    assert Engine(config(), state_path=state).active() == []


def test_state_file_is_versioned_json(tmp_path: Path) -> None:
    state = tmp_path / "alarms.json"
    engine = Engine(config(), state_path=state)
    engine.observe_outbox(0.95, ts=42.0)
    document = json.loads(state.read_text())
    assert document["version"] == 1
    assert [(a["name"], a["raised_at"], a["value"]) for a in document["active"]] == [
        ("outbox_near_full", 42.0, 0.95)
    ]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 1, "active": [{"name": "x"}]}',
        '{"version": 99, "active": []}',
        "[]",
        b"\xff\xfe\x00",
    ],
)
def test_a_corrupt_state_file_is_reported_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | bytes
) -> None:
    state = tmp_path / "alarms.json"
    if isinstance(content, bytes):
        state.write_bytes(content)
    else:
        state.write_text(content)
    with caplog.at_level(logging.WARNING):
        engine = Engine(config(hold_s=0.0), state_path=state)
    assert engine.active() == []
    assert str(state) in caplog.text
    # It keeps working, and the next change replaces the bad file.
    engine.observe_outbox(0.95, ts=1.0)
    assert [a.name for a in Engine(config(), state_path=state).active()] == ["outbox_near_full"]


def test_an_unreadable_state_path_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alarms.json"
    state.mkdir()  # reading a directory fails even as root
    with caplog.at_level(logging.WARNING):
        engine = Engine(config(), state_path=state)
    assert engine.active() == [] and str(state) in caplog.text


def test_a_stored_alarm_of_an_unknown_rule_is_dropped(tmp_path: Path) -> None:
    state = tmp_path / "alarms.json"
    engine = Engine(config(), state_path=state)
    engine.observe_outbox(0.95, ts=1.0)
    document = json.loads(state.read_text())
    ghost = dict(document["active"][0], name="retired_rule", rule="retired_rule")
    document["active"].append(ghost)
    state.write_text(json.dumps(document))
    assert [a.name for a in Engine(config(), state_path=state).active()] == ["outbox_near_full"]


def test_unwritable_state_keeps_working_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # a regular file as parent: the write fails even as root
    state = blocker / "alarms.json"
    engine = Engine(config(sensor_fault_consecutive=1), state_path=state)
    with caplog.at_level(logging.WARNING, logger="agent.active_alarms"):
        raised = engine.observe_sensor_fault("scd41", "timeout", ts=1.0)
        assert engine.observe_sensor_fault("scd41", "timeout", ts=2.0) == []  # no change, no log
        cleared = engine.observe_sensor_ok("scd41", ts=3.0)
    assert summary(raised + cleared) == [
        ("sensor_fault_scd41", "raised"),
        ("sensor_fault_scd41", "cleared"),
    ]
    saves = [r for r in caplog.records if "not saved" in r.getMessage()]
    assert len(saves) == 2 and all(str(state) in r.getMessage() for r in saves)
    assert engine.persistence_error is not None and str(state) in engine.persistence_error


def test_a_failed_rename_leaves_the_previous_state_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "alarms.json"
    engine = Engine(config(), state_path=state)
    engine.observe_outbox(0.95, ts=1.0)
    saved = state.read_text()

    def refuse(src: object, dst: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    assert summary(engine.observe_outbox(0.1, ts=2.0)) == [("outbox_near_full", "cleared")]
    assert engine.active() == []
    assert state.read_text() == saved
    assert not list(tmp_path.glob("*.tmp"))
    assert engine.persistence_error is not None
    monkeypatch.undo()
    engine.observe_outbox(0.95, ts=3.0)
    assert engine.persistence_error is None


def test_state_file_round_trips_every_field(tmp_path: Path) -> None:
    engine = Engine(config(dirty_consecutive=1))
    engine.observe_verdict("cam0", "dirty", ts=5.5)
    store = AlarmStateFile(tmp_path / "alarms.json")
    assert store.save(engine.active())
    assert store.load() == engine.active()


def test_a_wall_clock_jump_does_not_end_a_hold_early() -> None:
    """NTP stepping the wall clock an hour at boot: the hold runs on the monotonic clock."""
    monotonic = [0.0]
    engine = AlarmEngine(config(), monotonic=lambda: monotonic[0])
    assert engine.observe_measurement("scd41", co2(1200), ts=1000.0) == []
    monotonic[0] = 1.0
    assert engine.observe_measurement("scd41", co2(1200), ts=1000.0 + 3600) == [], "raised early"
    monotonic[0] = HOLD
    [raised] = engine.observe_measurement("scd41", co2(1200), ts=1000.0 + 3600 + HOLD)
    assert raised.name == "co2_warning" and raised.ts == 1000.0 + 3600 + HOLD
    monotonic[0] = HOLD + 10
    assert engine.observe_measurement("scd41", co2(500), ts=1000.0 - 7200) == []
    monotonic[0] = HOLD + 11
    assert engine.observe_measurement("scd41", co2(500), ts=1000.0 + 9 * 3600) == [], (
        "cleared early"
    )
    monotonic[0] = 2 * HOLD + 10
    assert summary(engine.observe_measurement("scd41", co2(500), ts=5.0)) == [
        ("co2_warning", "cleared")
    ]
