"""Doctor's hardware checks: the I2C bus device and the sensors on it."""

from __future__ import annotations

from collections.abc import Callable

from agent import doctor
from agent.board import open_board
from agent.config import Config


def test_a_missing_i2c_bus_device_fails_with_the_raspi_config_hint(
    config_file: Callable[[str], Config],
) -> None:
    config = config_file(
        '[board]\nkind = "pi"\ni2c_bus = 97\n[[board.sensors]]\nname = "t"\nchip = "sht4x"\n',
    )
    board = open_board(config.board)
    try:
        (bus,) = doctor.check_i2c_bus(config, board)
        (chip,) = doctor.check_sensors(board)
    finally:
        board.close()
    assert (bus.status, bus.detail) == ("FAIL", "/dev/i2c-97 does not exist")
    assert "raspi-config" in bus.hint
    assert chip.status == "FAIL" and "/dev/i2c-97" in chip.detail
