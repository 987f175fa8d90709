"""The duct world: deterministic, occupancy-driven CO2, a clogging filter, overrides."""

from __future__ import annotations

import pytest

from hil.clock import SimClock
from hil.world import DAY_S, DuctWorld


def world_at(hours: float, seed: int = 4) -> DuctWorld:
    clock = SimClock()
    world = DuctWorld(clock, seed=seed, start_hour=0.0)
    clock.advance(hours * 3600)
    return world


def test_same_seed_same_world() -> None:
    assert world_at(30.5).environment() == world_at(30.5).environment()
    assert world_at(30.5, seed=5).environment() != world_at(30.5).environment()


def test_co2_follows_occupancy() -> None:
    weekday_afternoon = world_at(24 + 16).environment().co2_ppm  # Tuesday 16:00
    weekday_night = world_at(24 + 3).environment().co2_ppm  # Tuesday 03:00
    sunday_afternoon = world_at(6 * 24 + 16).environment().co2_ppm
    assert weekday_afternoon > weekday_night + 300
    assert weekday_afternoon > sunday_afternoon + 300
    assert 330 < weekday_night < 520


def test_filter_clogs_and_is_replaced() -> None:
    clock = SimClock()
    world = DuctWorld(clock, seed=1, filter_life_s=10 * DAY_S)
    fresh = world.environment().filter_dp_pa
    clock.advance(10 * DAY_S)
    clogged = world.environment().filter_dp_pa
    assert clogged == pytest.approx(fresh + 170, abs=1)
    world.replace_filter()
    assert world.environment().filter_dp_pa == pytest.approx(80, abs=0.1)


def test_dirt_accumulates() -> None:
    clock = SimClock()
    world = DuctWorld(clock, dirt_life_s=100.0, initial_dirt=0.1)
    assert world.environment().dirt == pytest.approx(0.1, abs=0.01)
    clock.advance(50)
    assert world.environment().dirt == pytest.approx(0.6, abs=0.01)
    clock.advance(500)
    assert world.environment().dirt == 1.0


def test_override_and_release() -> None:
    world = world_at(3)
    natural = world.environment().co2_ppm
    world.override(co2_ppm=2000.0)
    assert world.environment().co2_ppm == 2000.0
    world.release("co2_ppm")
    assert world.environment().co2_ppm == natural
    with pytest.raises(ValueError, match="unknown quantities"):
        world.override(co2=1.0)
