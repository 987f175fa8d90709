"""Simulated duct cameras: they show the duct world's current dirt, rendered by :mod:`hil.render`.

Each camera keeps its own duct (its seed) and draws fresh camera noise for every capture, so
consecutive frames differ slightly as real ones do. ``faults`` switches a camera to dead (capture
raises), black (lens covered, LED off) or frozen (the last good frame again, as from a hung
pipeline).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
from numpy.typing import NDArray

from drivers.camera import Frame
from drivers.clock import Clock
from drivers.errors import CameraError
from hil.faults import CameraFaults
from hil.render import MIN_SIZE, render_duct
from hil.world import DuctWorld

SHORTEST_EXPOSURE_US = 8_000
LONGEST_EXPOSURE_US = 33_000
RENDER_MAX_WIDTH = 820
"""Widest frame the simulated camera renders itself; larger resolutions are scaled up."""
"""Auto-exposure range of the simulated sensor: a darker (dirtier) duct needs longer."""


class SimulatedCamera:
    """A camera looking into the simulated duct; implements :class:`drivers.camera.Camera`.

    ``dirt_offset`` shifts this camera's view of the world's dirt (a camera downstream of a coil
    may see more). With a ``clock``, frame times follow it from the moment the camera is built
    (so an accelerated world stamps accelerated times); without one they are the wall clock.
    """

    backend = "sim"

    def __init__(
        self,
        name: str,
        world: DuctWorld,
        *,
        seed: int = 0,
        width: int = 1640,
        height: int = 1232,
        clock: Clock | None = None,
        dirt_offset: float = 0.0,
    ) -> None:
        self._name = name
        self.world = world
        self.seed = seed
        self.width = width
        self.height = height
        self.dirt_offset = dirt_offset
        self.faults = CameraFaults()
        self._clock = clock
        self._origin = (datetime.now(UTC), clock.monotonic() if clock is not None else 0.0)
        self._captures = 0
        self._last_good: tuple[float, int] | None = None
        """Dirt and nuisance seed of the last good frame: a frozen capture renders it again
        (rendering is deterministic) rather than every camera keeping a 6 MB copy."""
        self._closed = False
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def capture(self) -> Frame:
        with self._lock:
            if self._closed:
                raise CameraError("camera is closed", camera=self._name)
            if self.faults.dead:
                raise CameraError(
                    "no response from the camera (simulated failure)", camera=self._name
                )
            self._captures += 1
            dirt = min(1.0, max(0.0, self.world.environment().dirt + self.dirt_offset))
            metadata: dict[str, object] = {"seed": self.seed, "capture": self._captures}
            if self.faults.frozen and self._last_good is not None:
                image = self._render(*self._last_good)
                metadata["fault"] = "frozen"
            elif self.faults.black:
                image = self._black_frame()
                metadata["fault"] = "black"
            else:
                self._last_good = (dirt, self._nuisance_seed())
                image = self._render(*self._last_good)
                metadata["dirt"] = round(dirt, 4)
            exposure = SHORTEST_EXPOSURE_US + (LONGEST_EXPOSURE_US - SHORTEST_EXPOSURE_US) * dirt
            if metadata.get("fault") == "black":  # auto-exposure gives all it has
                exposure = LONGEST_EXPOSURE_US
            return Frame.of(
                self._name,
                image,
                backend=self.backend,
                exposure_us=int(exposure),
                metadata=metadata,
                captured_at=self._now(),
            )

    def _render(self, dirt: float, nuisance_seed: int) -> NDArray[np.uint8]:
        # A real sensor delivers its resolution for free; the renderer's cost and buffers grow
        # with the pixel count (0.3 s and ~70 MB at 1640x1232). Rendering at most RENDER_MAX_WIDTH
        # wide and scaling up keeps the simulated board from dominating the agent's footprint.
        scale = min(1.0, RENDER_MAX_WIDTH / self.width)
        w, h = max(MIN_SIZE, round(self.width * scale)), max(MIN_SIZE, round(self.height * scale))
        image = render_duct(self.seed, dirt, w, h, nuisance_seed=nuisance_seed)
        if (w, h) != (self.width, self.height):
            return np.asarray(
                cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR),
                dtype=np.uint8,
            )
        return image

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _nuisance_seed(self) -> int:
        # A distinct stream per (camera, capture); far from any duct seed a test may use.
        return 1_000_000_007 + self.seed * 1_000_003 + self._captures

    def _black_frame(self) -> NDArray[np.uint8]:
        """What a covered lens gives: near-black with a little sensor noise."""
        rng = np.random.default_rng([self.seed, self._captures, 0xB1AC])
        return rng.integers(0, 4, (self.height, self.width, 3), dtype=np.uint8)

    def _now(self) -> datetime:
        if self._clock is None:
            return datetime.now(UTC)
        wall, start = self._origin
        return wall + timedelta(seconds=self._clock.monotonic() - start)
