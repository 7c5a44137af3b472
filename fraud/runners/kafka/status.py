"""The worker's one-line live status on a terminal (stderr), rewritten in place once a second."""

from __future__ import annotations

import sys
import time
from collections import deque

from fraud.core.latency import percentiles


class StatusLine:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._n = 0
        self._t = time.monotonic()

    def show(self, counts: dict[str, int], latencies: deque[float], partitions: list[int], lag: int) -> None:
        if not self.enabled:
            return
        pct = percentiles(latencies, (50, 99)) or {"p50": 0.0, "p99": 0.0}
        n = counts["allow"] + counts["review"] + counts["block"]
        now = time.monotonic()
        rate = (n - self._n) / max(now - self._t, 1e-9)
        self._n, self._t = n, now
        sys.stderr.write(
            f"\r{rate:8,.0f} tx/s | decided {n:,} (block {counts['block']:,}, review {counts['review']:,}) "
            f"| dead {counts['dead_letters']:,} | p50 {pct['p50']:.2f} ms p99 {pct['p99']:.2f} ms "
            f"| partitions {partitions} | lag {lag:,}   "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
