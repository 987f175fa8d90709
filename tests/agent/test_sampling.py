"""A sampling round over the simulated board: values, faults, recovery."""

from __future__ import annotations

from agent.board import open_board
from agent.config import parse_config
from agent.sampling import Sampler


def sampler_and_board():  # type: ignore[no-untyped-def]
    board = open_board(parse_config('[board]\nkind = "sim"\n').board)
    return Sampler(board.sensors, board.sensor_info, wall_clock=lambda: 1000.0), board


def test_a_round_reads_every_sensor_into_one_telemetry_body() -> None:
    sampler, board = sampler_and_board()
    result = sampler.sample()
    assert result.faults == {}
    body = result.telemetry_body(board.sensor_info)
    assert set(body["sensors"]) == set(board.sensors)  # type: ignore[arg-type]
    assert body["sensors"]["scd41"]["chip"] == "scd4x"  # type: ignore[index]
    assert body["sensors"]["scd41"]["co2_ppm"] > 300  # type: ignore[index]
    assert "humidity_rh" not in body["sensors"]["filter_dp"]  # type: ignore[index]
    assert all(s.ok and s.last_ok_at == 1000.0 for s in sampler.state.values())
    board.close()


def test_one_failing_sensor_does_not_stop_the_others_and_recovers() -> None:
    sampler, board = sampler_and_board()
    sampler.sample()
    board.sim.faults("sht41").absent = True
    board.sim.faults("s8").corrupt_crc = -1
    result = sampler.sample()
    assert set(result.faults) == {"sht41", "s8"}
    assert "DeviceAbsentError" in result.faults["sht41"]
    assert "CrcError" in result.faults["s8"]
    assert len(result.readings) == len(board.sensors) - 2
    state = sampler.state["sht41"]
    assert not state.ok and state.consecutive_failures == 1 and state.fault_count == 1
    board.sim.faults("sht41").clear()
    board.sim.faults("s8").clear()
    again = sampler.sample()
    assert again.faults == {}
    assert sampler.state["sht41"].ok and sampler.state["sht41"].fault_count == 1
    board.close()
