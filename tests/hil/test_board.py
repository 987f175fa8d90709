"""The one-line simulated board: wiring, faults, and the real drivers reading it."""

from __future__ import annotations

import pytest

from agent.board import open_board
from agent.config import parse_config
from drivers.errors import DeviceAbsentError, SensorTimeoutError
from hil.board import DEFAULT_SENSORS, SensorSpec, SimBoard, simulated_board


def test_default_board_carries_every_chip_and_two_cameras(sim_board: SimBoard) -> None:
    assert set(sim_board.chips) == {s.name for s in DEFAULT_SENSORS}
    i2c = {s.address for s in DEFAULT_SENSORS if s.port is None}
    assert {a for a in range(0x03, 0x78) if sim_board.bus.device(a)} == i2c
    assert set(sim_board.serial_ports) == {s.port for s in DEFAULT_SENSORS if s.port}
    assert set(sim_board.cameras) == {"upstream", "downstream"}


def test_unknown_chip_is_refused() -> None:
    with pytest.raises(ValueError, match="no simulator for chip 'bogus'"):
        simulated_board(sensors=[SensorSpec("x", "bogus", 0x10)])


def test_drivers_read_the_world_through_the_simulated_board() -> None:
    board = open_board(parse_config('[board]\nkind = "sim"\n').board)
    assert board.sim is not None
    env = board.sim.world.environment()
    try:
        for name, sensor in board.sensors.items():
            sensor.start()
            values = sensor.read().values()
            assert values, name
            if "co2_ppm" in values:
                assert values["co2_ppm"] == pytest.approx(env.co2_ppm, abs=15), name
            if "temperature_c" in values:
                assert values["temperature_c"] == pytest.approx(env.temperature_c, abs=0.5), name
            if "differential_pressure_pa" in values:
                assert values["differential_pressure_pa"] == pytest.approx(env.filter_dp_pa, abs=1)
    finally:
        board.close()


def test_fault_panel_by_sensor_name_reaches_the_driver() -> None:
    board = open_board(parse_config('[board]\nkind = "sim"\n').board)
    assert board.sim is not None
    try:
        board.sim.faults("scd41").absent = True
        with pytest.raises(DeviceAbsentError):
            board.sensors["scd41"].start()
        board.sim.faults("mhz19").absent = True
        with pytest.raises(SensorTimeoutError):
            board.sensors["mhz19"].start()
        board.sim.faults("scd41").clear()
        board.sensors["scd41"].start()
        assert board.sensors["scd41"].read().co2_ppm is not None
    finally:
        board.close()
