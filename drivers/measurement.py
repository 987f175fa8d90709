"""The one value type every sensor driver returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass

QUANTITIES = (
    "temperature_c",
    "humidity_rh",
    "pressure_pa",
    "differential_pressure_pa",
    "co2_ppm",
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One reading of one chip. A field is None when the chip does not measure that quantity.

    Field names carry their unit; other code and outside consumers rely on them.
    """

    temperature_c: float | None = None
    humidity_rh: float | None = None
    pressure_pa: float | None = None
    differential_pressure_pa: float | None = None
    co2_ppm: float | None = None

    def values(self) -> dict[str, float]:
        """The quantities this reading carries, without the Nones."""
        return {k: v for k, v in asdict(self).items() if v is not None}
