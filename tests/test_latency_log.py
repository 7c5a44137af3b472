"""A run's latencies stay bounded in memory however long it runs, percentiles within 1%."""

from __future__ import annotations

import numpy as np

from fraud.core.latency import LatencyLog, percentiles


def test_exact_until_the_keep_limit_then_within_one_percent():
    rng = np.random.default_rng(1)
    ms = rng.lognormal(-2.0, 0.8, 250_000)
    log = LatencyLog(keep=1_000_000)
    for chunk in np.array_split(ms, 1000):
        log.extend(chunk.tolist())
    assert log.percentiles() == percentiles(ms)
    folded = LatencyLog(keep=30_000)
    for chunk in np.array_split(ms, 1000):
        folded.extend(chunk.tolist())
    assert len(folded) == len(ms) and len(folded.values) < 30_000  # memory: a fixed histogram
    exact = percentiles(ms)
    for q, v in folded.percentiles().items():
        assert abs(v / exact[q] - 1) < 0.01, q
