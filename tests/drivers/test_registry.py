"""The chip registry: one description per chip, consistent with the drivers and the simulators."""

from __future__ import annotations

import typing

from agent.homeassistant import PRESENTATION
from drivers.measurement import QUANTITIES as MEASURED
from drivers.registry import (
    CHIPS,
    I2C_ADDRESS_MAX,
    I2C_ADDRESS_MIN,
    QUANTITIES,
    ChipName,
    chips_at,
    sensor_table_markdown,
)
from hil.board import SIMULATORS


def test_chip_names_type_simulators_and_registry_agree() -> None:
    assert set(typing.get_args(ChipName)) == set(CHIPS) == set(SIMULATORS)


def test_every_quantity_is_measured_and_presented() -> None:
    assert set(QUANTITIES) == set(MEASURED) == set(PRESENTATION)
    for spec in CHIPS.values():
        assert spec.quantities and set(spec.quantities) <= set(QUANTITIES), spec.name
        low, high = QUANTITIES[spec.quantities[0]].plausible
        assert low < high


def test_i2c_chips_have_addresses_and_uart_chips_a_baud_rate() -> None:
    for spec in CHIPS.values():
        if spec.bus == "i2c":
            assert spec.default_address is not None, spec.name
            assert all(I2C_ADDRESS_MIN <= a <= I2C_ADDRESS_MAX for a in spec.addresses)
            assert len(set(spec.addresses)) == len(spec.addresses)
        else:
            assert spec.addresses == () and spec.option("baudrate") is not None, spec.name
        for option in spec.options:
            assert option.low < option.high, (spec.name, option.name)


def test_the_drivers_name_their_chip() -> None:
    for spec in CHIPS.values():
        assert getattr(spec.driver, "chip") in (spec.name, "bme280"), spec.name  # noqa: B009


def test_chips_at_an_address_and_the_sensor_table() -> None:
    assert [c.name for c in chips_at(0x76)] == ["bme280", "bmp280"]
    assert [c.name for c in chips_at(0x45)] == ["sht4x"]
    assert chips_at(0x10) == ()
    table = sensor_table_markdown()
    for name in CHIPS:
        assert f"`{name}`" in table
    assert "`altitude_m` 0..3000" in table
