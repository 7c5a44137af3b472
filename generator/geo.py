"""Real city coordinates (from Faker's seeded geo provider) and great-circle distances.

Cities anchor cardholders and merchants so that card-present payments carry plausible
coordinates and travel distances; Faker is seeded so the same seed gives the same map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Cities:
    """Table of cities: parallel arrays indexed by city number."""

    lat: np.ndarray
    lon: np.ndarray
    country: tuple[str, ...]
    name: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.country)


def _distinct_cities(fake: Faker, country: str, want: int) -> list[tuple[float, float, str, str]]:
    """Draw up to `want` distinct cities of a country (fewer when Faker knows fewer)."""
    seen: dict[str, tuple[float, float, str, str]] = {}
    for _ in range(want * 6):
        lat, lon, place, cc, _tz = fake.local_latlng(country_code=country)
        if place not in seen:
            seen[place] = (float(lat), float(lon), place, cc)
            if len(seen) >= want:
                break
    return list(seen.values())  # insertion order: deterministic


def build_cities(
    seed: int, home_countries: tuple[tuple[str, float], ...], n_home: int, travel_countries: tuple[str, ...]
) -> tuple[Cities, np.ndarray, np.ndarray, np.ndarray]:
    """Return (cities, home city ids, home city weights, travel-only city ids).

    Home cities are split between countries by share; each travel country adds one or two
    destination cities that are nobody's home (holidays, and where card fraudsters cash out).
    """
    fake = Faker()
    fake.seed_instance(seed)
    rows: list[tuple[float, float, str, str]] = []
    home_ids: list[int] = []
    home_w: list[float] = []
    for cc, share in home_countries:
        k = max(1, int(round(n_home * share)))
        got = _distinct_cities(fake, cc, k)
        # Zipf-like city sizes inside each country: a few big metros hold most cardholders
        zipf = 1.0 / np.arange(1, len(got) + 1, dtype=float) ** 0.9
        home_w.extend((share * zipf / zipf.sum()).tolist())
        for row in got:
            home_ids.append(len(rows))
            rows.append(row)
    home_places = {r[2] for r in rows}
    travel_ids: list[int] = []
    for cc in travel_countries:
        for row in _distinct_cities(fake, cc, 2):
            if row[2] not in home_places:
                travel_ids.append(len(rows))
                rows.append(row)
    cities = Cities(
        lat=np.array([r[0] for r in rows]),
        lon=np.array([r[1] for r in rows]),
        country=tuple(r[3] for r in rows),
        name=tuple(r[2] for r in rows),
    )
    weights = np.array(home_w)
    return cities, np.array(home_ids), weights / weights.sum(), np.array(travel_ids, dtype=np.int64)


def haversine_km(
    lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: np.ndarray | float, lon2: np.ndarray | float
) -> np.ndarray:
    """Great-circle distance in km (vectorised)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
