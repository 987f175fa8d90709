"""Simulated cameras: they show the world's dirt, differ frame to frame, and fail on demand."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from drivers.camera import Camera, frame_problem
from drivers.errors import CameraError
from hil.cameras import SimulatedCamera
from hil.clock import SimClock
from hil.world import DuctWorld

SIZE = {"width": 96, "height": 72}


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def world(clock: SimClock) -> DuctWorld:
    return DuctWorld(clock, seed=3)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_simulated_camera_is_a_camera(world: DuctWorld, clock: SimClock) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, clock=clock, **SIZE)
    assert isinstance(camera, Camera)
    frame = camera.capture()
    assert (frame.camera, frame.backend) == ("upstream", "sim")
    assert frame.image.shape == (72, 96, 3)
    assert (frame.width, frame.height) == (96, 72)
    assert frame.exposure_us is not None and frame.exposure_us > 0
    assert frame_problem(frame.image) is None


def test_default_size_is_the_pi_camera_still_mode(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world)
    assert (camera.width, camera.height) == (1640, 1232)


def test_consecutive_frames_differ_but_show_the_same_duct(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    other = SimulatedCamera("downstream", world, seed=2, **SIZE)
    first, second = camera.capture().image, camera.capture().image
    assert not np.array_equal(first, second)
    assert frame_problem(second, previous=first) is None
    assert _diff(first, second) < _diff(first, other.capture().image)


def test_the_camera_sees_the_world_dirt_plus_its_offset(world: DuctWorld) -> None:
    world.override(dirt=0.5)
    plain = SimulatedCamera("a", world, seed=1, **SIZE)
    shifted = SimulatedCamera("b", world, seed=1, dirt_offset=0.3, **SIZE)
    saturated = SimulatedCamera("c", world, seed=1, dirt_offset=0.8, **SIZE)
    assert plain.capture().metadata["dirt"] == pytest.approx(0.5)
    assert shifted.capture().metadata["dirt"] == pytest.approx(0.8)
    assert saturated.capture().metadata["dirt"] == pytest.approx(1.0)


def test_a_dirtier_duct_looks_different_from_a_clean_one(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=4, **SIZE)
    world.override(dirt=0.0)
    clean_a, clean_b = camera.capture().image, camera.capture().image
    world.override(dirt=1.0)
    dirty = camera.capture().image
    assert _diff(clean_b, dirty) > _diff(clean_a, clean_b)


def test_frame_times_follow_the_simulated_clock(world: DuctWorld, clock: SimClock) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, clock=clock, **SIZE)
    first = camera.capture().captured_at
    clock.advance(3600.0)
    assert camera.capture().captured_at - first == timedelta(seconds=3600)


def test_dead_camera_raises_naming_itself(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    camera.faults.dead = True
    with pytest.raises(CameraError) as caught:
        camera.capture()
    assert caught.value.camera == "upstream"
    camera.faults.clear()
    assert camera.capture().image.shape == (72, 96, 3)


def test_black_fault_gives_a_frame_the_checks_call_black(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    camera.faults.black = True
    frame = camera.capture()
    assert frame.image.shape == (72, 96, 3)
    problem = frame_problem(frame.image)
    assert problem is not None and "black" in problem


def test_frozen_fault_repeats_the_last_good_frame(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    good = camera.capture().image
    camera.faults.frozen = True
    repeated = camera.capture().image
    assert np.array_equal(repeated, good)
    problem = frame_problem(repeated, previous=good)
    assert problem is not None and "frozen" in problem
    camera.faults.clear()
    assert not np.array_equal(camera.capture().image, good)


def test_frozen_before_any_frame_freezes_on_the_first(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    camera.faults.frozen = True
    first = camera.capture().image
    assert frame_problem(first) is None
    assert np.array_equal(camera.capture().image, first)


def test_a_frozen_frame_is_a_copy_not_the_same_buffer(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    camera.faults.frozen = True
    first = camera.capture().image
    first[:] = 0  # a consumer drawing on its frame must not change the next one
    assert camera.capture().image.any()


def test_closed_camera_refuses(world: DuctWorld) -> None:
    camera = SimulatedCamera("upstream", world, seed=1, **SIZE)
    camera.close()
    with pytest.raises(CameraError, match="closed"):
        camera.capture()
