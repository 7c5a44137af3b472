"""Latency percentiles, computed one way for every report (`detect`, `bench`, `demo`, `evaluate`,
the Kafka status line and `bench --kafka`): numpy's default (linear interpolation between the two
nearest ranks), so the same latencies print the same p99 wherever they are shown."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

QUANTILES = (50, 99, 99.9)


def percentiles(values: Sequence[float] | np.ndarray, qs: Iterable[float] = QUANTILES) -> dict[str, float]:
    """{"p50": ..., "p99": ..., "p99.9": ...} in the values' unit; empty for no values."""
    a = np.asarray(values, dtype=np.float64)
    if not a.size:
        return {}
    return {f"p{q:g}": float(v) for q, v in zip(qs, np.percentile(a, list(qs)), strict=True)}


class LatencyLog:
    """The latencies of a run that may never end (`fraud detect` on stdin, a soak): exact up to
    `keep` values, then folded into a histogram of 1%-wide buckets from 1 µs to 1,000 s, so memory
    stays bounded (8 bytes a record, then nothing); its percentiles are then within 1% of exact."""

    _LO, _STEP, _BUCKETS = 1e-3, 1.01, 2100  # ms; 1.01 ** 2100 ~ 1.2e9

    def __init__(self, keep: int = 2_000_000) -> None:
        self.values = array("d")
        self.keep = keep
        self.counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values) + (int(self.counts.sum()) if self.counts is not None else 0)

    def extend(self, ms: Iterable[float]) -> None:
        self.values.extend(ms)
        if len(self.values) >= self.keep:
            self._fold()

    def _fold(self) -> None:
        if self.counts is None:
            self.counts = np.zeros(self._BUCKETS, dtype=np.int64)
        a = np.array(self.values, dtype=np.float64)  # a copy: the array is emptied below
        idx = np.log(np.maximum(a, self._LO) / self._LO) / math.log(self._STEP)
        np.add.at(self.counts, np.minimum(idx.astype(np.int64), self._BUCKETS - 1), 1)
        del self.values[:]

    def percentiles(self, qs: Iterable[float] = QUANTILES) -> dict[str, float]:
        if self.counts is None:
            return percentiles(np.frombuffer(self.values, dtype=np.float64), qs)
        self._fold()
        cum = np.cumsum(self.counts)
        out = {}
        for q in qs:
            b = int(np.searchsorted(cum, q / 100 * (cum[-1] - 1), side="right"))
            out[f"p{q:g}"] = self._LO * self._STEP ** (b + 0.5)  # the bucket's geometric middle
        return out
