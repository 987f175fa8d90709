"""What the agent needs of every sensor driver, whatever the chip or the bus."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from drivers.measurement import Measurement


class Sensor(Protocol):
    """A configured sensor chip.

    ``start`` brings the chip into its measuring state and checks that it is the chip we think it
    is; it is idempotent and copes with a chip that is already measuring (an agent restart does not
    power-cycle the sensors). ``read`` returns the newest measurement, waiting at most one
    measurement period for it, and raises a :class:`drivers.errors.SensorError` otherwise.
    """

    chip: str
    """Short chip name as used in the config (``"scd4x"``)."""

    def start(self) -> None: ...

    def read(self) -> Measurement: ...

    def stop(self) -> None: ...


@runtime_checkable
class PacedSensor(Sensor, Protocol):
    """A chip that makes a sample on its own schedule and says when one is waiting.

    The SCD4x has one every 5 s, the SCD30 one every measurement interval: ``read`` waits for
    it, up to a whole period. A caller that must not wait asks ``data_ready`` first (one short
    bus transaction) and reads only when it says yes.
    """

    @property
    def sample_period_s(self) -> float:
        """Seconds between two samples of the chip."""
        ...

    def data_ready(self) -> bool: ...
