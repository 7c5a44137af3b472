"""Out-of-order arrival: how late a share of events reaches the detector.

Delays are log-uniform inside three bands (seconds / minutes / hours) because real
pipelines mostly lag by seconds, sometimes by minutes, and rarely by hours (a terminal
that batches offline authorisations).
"""

from __future__ import annotations

import numpy as np

# (probability, low s, high s) of the delay bands
BANDS: tuple[tuple[float, float, float], ...] = ((0.75, 1.0, 60.0), (0.20, 60.0, 900.0), (0.05, 900.0, float("inf")))


def delays_ms(rng: np.random.Generator, n: int, late_share: float, max_delay_s: float) -> np.ndarray:
    """Per-event delay in ms (0 for events that arrive on time)."""
    late = rng.random(n) < late_share
    k = int(late.sum())
    out = np.zeros(n, np.int64)
    if k == 0 or max_delay_s <= 0:
        return out
    probs = np.array([b[0] for b in BANDS])
    band = rng.choice(len(BANDS), size=k, p=probs / probs.sum())
    hi_cap = max(float(max_delay_s), 0.001)
    lo = np.array([min(b[1], hi_cap) for b in BANDS])[band]
    hi = np.array([min(b[2], hi_cap) for b in BANDS])[band]
    hi = np.maximum(hi, lo)
    d = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    out[late] = np.maximum((d * 1000).astype(np.int64), 1)
    return out


def arrival_order(event_ms: np.ndarray, delay_ms: np.ndarray) -> np.ndarray:
    """Indices in arrival order; ties keep event order (stable) so the order is reproducible."""
    return np.argsort(event_ms + delay_ms, kind="stable")
