"""Latency percentiles, computed one way for every report (`detect`, `bench`, `demo`, `evaluate`,
the Kafka status line and `bench --kafka`): numpy's default (linear interpolation between the two
nearest ranks), so the same latencies print the same p99 wherever they are shown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

QUANTILES = (50, 99, 99.9)


def percentiles(values: Sequence[float] | np.ndarray, qs: Iterable[float] = QUANTILES) -> dict[str, float]:
    """{"p50": ..., "p99": ..., "p99.9": ...} in the values' unit; empty for no values."""
    a = np.asarray(values, dtype=np.float64)
    if not a.size:
        return {}
    return {f"p{q:g}": float(v) for q, v in zip(qs, np.percentile(a, list(qs)), strict=True)}
