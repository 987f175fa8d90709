"""A small duct world that drives every simulated value over (accelerable) time.

The state is a pure function of the world time, built from seeded smooth signals, so any number of
simulated chips and cameras can sample it from any thread without sharing mutable state. Tests and
scenarios pin a quantity with :meth:`DuctWorld.override`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

import numpy as np

from drivers.clock import Clock

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


@dataclass(frozen=True, slots=True)
class Environment:
    """The physical state of the duct at one instant (true values, before sensor error)."""

    temperature_c: float
    humidity_rh: float
    pressure_pa: float
    co2_ppm: float
    filter_dp_pa: float
    """Differential pressure across the filter: rises as the filter clogs."""
    dirt: float
    """Deposit on the duct walls, 0 (new) to 1 (heavily soiled)."""


DEFAULT_ENVIRONMENT = Environment(
    temperature_c=21.5,
    humidity_rh=45.0,
    pressure_pa=101_325.0,
    co2_ppm=600.0,
    filter_dp_pa=80.0,
    dirt=0.1,
)
"""A comfortable office duct: 21.5 degC, 45 %RH, 101 325 Pa, 600 ppm, 80 Pa across the filter,
dirt 0.1. The starting point of :class:`FixedEnvironment`."""


def _check_quantities(values: dict[str, float]) -> None:
    unknown = set(values) - set(Environment.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown quantities: {sorted(unknown)}")


class FixedEnvironment:
    """An environment source pinned to given values, for tests and scenarios that need exact
    conditions.

    ``FixedEnvironment(co2_ppm=1800.0)`` is :data:`DEFAULT_ENVIRONMENT` with those quantities
    replaced; pass another ``base`` (positionally) to start from a different environment. Hand the
    instance to a simulated chip as its environment source (it is called for every sample), and
    change the conditions between samples with :meth:`set` or by assigning :attr:`now`.
    """

    def __init__(self, base: Environment = DEFAULT_ENVIRONMENT, /, **values: float) -> None:
        _check_quantities(values)
        self.now: Environment = replace(base, **values)
        """The environment every call returns, until changed."""

    def set(self, **values: float) -> None:
        """Change some quantities, keeping the others (``env.set(humidity_rh=0.0)``)."""
        _check_quantities(values)
        self.now = replace(self.now, **values)

    def __call__(self) -> Environment:
        return self.now


class _SmoothNoise:
    """Sum of a few seeded sinusoids: cheap, deterministic, continuous noise."""

    def __init__(self, rng: np.random.Generator, periods_s: tuple[float, ...], amplitude: float):
        self._terms = [
            (2 * math.pi / p, float(rng.uniform(0, 2 * math.pi)), amplitude / len(periods_s))
            for p in periods_s
        ]

    def __call__(self, t: float) -> float:
        return sum(a * math.sin(w * t + ph) for w, ph, a in self._terms)


class DuctWorld:
    """Occupancy-driven CO2, weather-driven humidity and pressure, a clogging filter, dirt.

    ``clock`` gives the world time in seconds; the world starts at Monday ``start_hour`` o'clock.
    ``filter_life_s`` is how long a fresh filter takes to reach the replacement pressure drop;
    ``dirt_life_s`` how long clean walls take to become heavily soiled.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int = 0,
        start_hour: float = 7.0,
        filter_life_s: float = 60 * DAY_S,
        dirt_life_s: float = 365 * DAY_S,
        initial_dirt: float = 0.05,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.clock = clock
        self.seed = seed
        self._origin = clock.monotonic() - start_hour * 3600.0
        self.filter_life_s = filter_life_s
        self.dirt_life_s = dirt_life_s
        self.initial_dirt = initial_dirt
        self._started_at = start_hour * 3600.0
        self._filter_changed_at = self._started_at
        self._occupants = 20 + 30 * float(rng.random())
        self._co2_noise = _SmoothNoise(rng, (1800.0, 5400.0, 11_000.0), 60.0)
        self._temp_noise = _SmoothNoise(rng, (3600.0, 4 * 3600.0, 3 * DAY_S), 0.8)
        self._rh_noise = _SmoothNoise(rng, (2 * 3600.0, 9 * 3600.0, 2.5 * DAY_S), 8.0)
        self._baro_noise = _SmoothNoise(rng, (DAY_S, 3.3 * DAY_S, 7.1 * DAY_S), 900.0)
        self._overrides: dict[str, float] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        """World time in seconds since Monday 00:00 of the first week."""
        return self.clock.monotonic() - self._origin

    def occupancy(self, t: float) -> float:
        """Fraction of the building occupied: weekdays 8:00-18:00 with a lunch dip."""
        day = int(t // DAY_S) % 7
        hour = (t % DAY_S) / 3600.0
        if day >= 5 or not 7.5 <= hour <= 18.5:
            return 0.0
        ramp = min(1.0, (hour - 7.5) / 1.0, (18.5 - hour) / 1.0)
        lunch = 0.35 if 12.0 <= hour <= 13.0 else 0.0
        return max(0.0, ramp - lunch)

    def _co2(self, t: float) -> float:
        # First-order room response to occupancy (time constant ~1 h), sampled on a short
        # history so the curve lags the occupancy the way a real room does.
        tau = 3600.0
        level = 0.0
        weight_sum = 0.0
        for k in range(12):
            dt = k * 900.0
            w = math.exp(-dt / tau)
            level += w * self.occupancy(t - dt)
            weight_sum += w
        return 420.0 + self._occupants * 28.0 * level / weight_sum + self._co2_noise(t)

    def environment(self) -> Environment:
        """The state of the duct now, overrides applied."""
        t = self.now()
        hour = (t % DAY_S) / 3600.0
        diurnal = math.sin(2 * math.pi * (hour - 9.0) / 24.0)
        since_change = max(0.0, t - self._filter_changed_at)
        clog = min(1.5, since_change / self.filter_life_s)
        env = Environment(
            temperature_c=21.0 + 2.0 * diurnal + self._temp_noise(t),
            humidity_rh=min(99.0, max(5.0, 48.0 - 6.0 * diurnal + self._rh_noise(t))),
            pressure_pa=101_325.0 + self._baro_noise(t),
            co2_ppm=self._co2(t),
            filter_dp_pa=80.0 + 170.0 * clog**2,
            dirt=min(1.0, self.initial_dirt + (t - self._started_at) / self.dirt_life_s),
        )
        with self._lock:
            if self._overrides:
                env = replace(env, **self._overrides)
        return env

    def override(self, **values: float) -> None:
        """Pin quantities to fixed values (``world.override(co2_ppm=1800)``)."""
        _check_quantities(values)
        with self._lock:
            self._overrides.update(values)

    def release(self, *names: str) -> None:
        """Let pinned quantities follow the world again (all of them when none is named)."""
        with self._lock:
            if not names:
                self._overrides.clear()
            for name in names:
                self._overrides.pop(name, None)

    def replace_filter(self) -> None:
        """A technician fits a new filter: the pressure drop falls back."""
        self._filter_changed_at = self.now()
