"""Sampling rounds over the simulated board on its injected clock: no round waits for a chip,
each sensor keeps its own interval, faults and recovery, a lost UART answer asked again."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.board import Board, open_board
from agent.config import ConfigError, parse_config
from agent.daemon import build_agent
from agent.sampling import RoundResult, Sampler
from hil.board import SimBoard
from hil.clock import SimClock

ROUND_S = 0.2
FAST = {"bme280", "sht41", "filter_dp", "mhz19", "s8"}
PACED = {"scd41": 5.0, "scd30": 2.0}  # the simulated chips' sample periods


@pytest.fixture
def board() -> Iterator[Board]:
    opened = open_board(parse_config('[board]\nkind = "sim"\n').board)
    yield opened
    opened.close()


def sampler_for(board: Board, **options: Any) -> Sampler:
    options.setdefault("interval_s", ROUND_S)
    return Sampler(
        board.sensors, board.sensor_info, clock=board.clock, wall_clock=lambda: 1000.0, **options
    )


def clock_of(board: Board) -> SimClock:
    assert isinstance(board.clock, SimClock)
    return board.clock


def sim(board: Board) -> SimBoard:
    assert board.sim is not None
    return board.sim


def rounds(board: Board, sampler: Sampler, seconds: float) -> list[RoundResult]:
    """One round every ROUND_S of board time. A round takes (almost) none of it unless it
    (re)starts a chip: the first round, the one after a fault. Starting one takes what its
    datasheet asks (SCD4x: stop_periodic_measurement, 500 ms)."""
    clock = clock_of(board)
    results = []
    for _ in range(round(seconds / ROUND_S)):
        before = clock.monotonic()
        starts = {name: state.started_at for name, state in sampler.state.items()}
        results.append(sampler.sample())
        took = clock.monotonic() - before
        restarted = [n for n, s in sampler.state.items() if s.started_at != starts[n]]
        if not restarted:
            assert took < 0.1, f"a round waited {took:.3f} s of board time for a chip"
        clock.advance(max(0.0, ROUND_S - took))
    return results


def started(board: Board, sampler: Sampler) -> Sampler:
    """The sampler after its first round, which starts every chip."""
    rounds(board, sampler, ROUND_S)
    return sampler


def test_board_layout_the_tests_assume(board: Board) -> None:
    assert set(board.sensors) == FAST | set(PACED)


def test_fast_chips_every_round_paced_chips_once_they_have_a_sample(board: Board) -> None:
    sampler = started(board, sampler_for(board))
    results = rounds(board, sampler, 12.0)
    assert all(r.faults == {} for r in results)
    assert all(set(r.new) >= FAST for r in results), "fast chips are new in every round"
    for name, period in PACED.items():
        new_at = [i * ROUND_S for i, r in enumerate(results) if name in r.new]
        assert new_at, f"{name} never delivered"
        assert new_at[0] == pytest.approx(period, abs=ROUND_S + 1e-9), (name, new_at)
        gaps = [b - a for a, b in itertools.pairwise(new_at)]
        assert all(g == pytest.approx(period, abs=ROUND_S + 1e-9) for g in gaps), (name, gaps)
        first = round(new_at[0] / ROUND_S)
        assert all(name not in r.readings for r in results[:first]), "nothing before the first"


def test_between_samples_a_paced_chip_contributes_its_last_one_with_its_age(
    board: Board,
) -> None:
    sampler = started(board, sampler_for(board))
    results = rounds(board, sampler, 7.0)
    first = next(i for i, r in enumerate(results) if "scd41" in r.new)
    sample = results[first].readings["scd41"]
    for step, later in enumerate(results[first + 1 : first + 6], start=1):
        assert later.readings["scd41"] is sample
        assert later.ages["scd41"] == pytest.approx(step * ROUND_S)
        assert "scd41" not in later.new
        body = later.telemetry_body(board.sensor_info)
        assert body["sensors"]["scd41"]["age_s"] == round(step * ROUND_S, 1)  # type: ignore[index]
        assert "age_s" not in body["sensors"]["bme280"]  # type: ignore[index]


def test_each_sensor_is_read_at_its_own_interval(board: Board) -> None:
    sampler = started(board, sampler_for(board, intervals={"bme280": 1.0, "s8": 0.6}))
    results = rounds(board, sampler, 4.0)
    for name, every in (("bme280", 5), ("s8", 3)):  # rounds: 1.0 s and 0.6 s
        new = [i for i, r in enumerate(results) if name in r.new]
        assert new[0] < every and len(new) >= 3, (name, new)
        gaps = {b - a for a, b in itertools.pairwise(new)}
        assert gaps == {every}, f"{name}: every {every} rounds, the round's jitter notwithstanding"
    assert all("bme280" in r.readings for r in results), "carried over in between"
    assert all("sht41" in r.new for r in results), "the others keep the round's interval"


def test_intervals_name_configured_sensors_only(board: Board) -> None:
    with pytest.raises(ValueError, match="unknown sensors: nope"):
        sampler_for(board, intervals={"nope": 1.0})


def test_one_failing_sensor_does_not_stop_the_others_and_recovers(board: Board) -> None:
    sampler = started(board, sampler_for(board))
    rounds(board, sampler, 6.0)
    sim(board).faults("sht41").absent = True
    sim(board).faults("s8").corrupt_crc = -1
    [result] = rounds(board, sampler, ROUND_S)
    assert set(result.faults) == {"sht41", "s8"}
    assert "DeviceAbsentError" in result.faults["sht41"]
    assert "CrcError" in result.faults["s8"]
    assert {"sht41", "s8"}.isdisjoint(result.readings), "a failed sensor has no stale values"
    state = sampler.state["sht41"]
    assert not state.ok and state.consecutive_failures == 1 and state.fault_count == 1
    sim(board).faults("sht41").clear()
    sim(board).faults("s8").clear()
    [again] = rounds(board, sampler, ROUND_S)
    assert again.faults == {}
    assert {"sht41", "s8"} <= set(again.new)
    assert sampler.state["sht41"].ok and sampler.state["sht41"].fault_count == 1


def test_a_paced_chip_without_new_samples_is_a_fault_after_its_period(board: Board) -> None:
    sampler = started(board, sampler_for(board))
    rounds(board, sampler, 6.0)
    sim(board).faults("scd41").stuck_not_ready = True
    results = rounds(board, sampler, 6.4)
    faulted = [i for i, r in enumerate(results) if "scd41" in r.faults]
    assert faulted, "a chip that never has a sample is not silently carried over forever"
    assert "NotReadyError" in results[faulted[0]].faults["scd41"]
    assert faulted[0] * ROUND_S <= PACED["scd41"] + 1.0 + ROUND_S
    assert all("scd41" in r.readings for r in results[: faulted[0]]), "until then: the last"
    assert all(r.faults.keys() <= {"scd41"} for r in results), "nobody else waits for it"


@pytest.mark.parametrize(("dropped", "fault"), [(1, False), (2, True)])
def test_a_lost_uart_answer_is_asked_again_once(board: Board, dropped: int, fault: bool) -> None:
    sampler = started(board, sampler_for(board))
    sim(board).faults("mhz19").nack_next = dropped
    [result] = rounds(board, sampler, ROUND_S)
    assert ("mhz19" in result.faults) is fault
    if fault:
        assert "SensorTimeoutError" in result.faults["mhz19"]
    else:
        assert "mhz19" in result.new and sampler.state["mhz19"].fault_count == 0


def test_an_i2c_timeout_is_not_asked_again(board: Board) -> None:
    sampler = started(board, sampler_for(board))
    sim(board).faults("sht41").timeout = True
    [result] = rounds(board, sampler, ROUND_S)
    assert "sht41" in result.faults


def test_configured_intervals_reach_the_agents_sampler(tmp_path: Path) -> None:
    config = parse_config(
        '[board]\nkind = "sim"\n'
        '[[board.sensors]]\nname = "duct"\nchip = "bme280"\ninterval_s = 60\n'
        '[[board.sensors]]\nname = "co2"\nchip = "scd4x"\n'
        f'[schedule]\nsensor_interval_s = 0.5\n[storage]\ndir = "{tmp_path}"\n'
        '[vision]\nbackend = "off"\n',
        env={},
    )
    agent = build_agent(config)
    try:
        intervals = {name: s.interval_s for name, s in agent.sampler.state.items()}
        assert intervals == {"duct": 60.0, "co2": 0.5}, "the round's interval by default"
    finally:
        agent.shutdown(flush_timeout_s=0.0)


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"board\.sensors\[0\]\.interval_s"):
        parse_config(
            '[board]\nkind = "sim"\n'
            '[[board.sensors]]\nname = "d"\nchip = "bme280"\ninterval_s = 0\n',
            env={},
        )
