"""Fixtures shared by the whole suite: a simulated board in one line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hil.board import SimBoard, simulated_board


@pytest.fixture
def sim_board() -> Iterator[SimBoard]:
    """Every supported chip and two cameras on virtual time (nothing really waits)."""
    board = simulated_board(seed=1, camera_size=(320, 240))
    yield board
    board.close()
