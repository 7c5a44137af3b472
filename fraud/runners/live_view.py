"""The live status line an operator watches on a terminal, the same embedded and on Kafka.

Redrawn at most once a second from running totals the runner already keeps (never per event):
throughput, decisions by kind, dead letters, p50/p99 latency of recent decisions, how far the
watermark is behind the wall clock, and the rules firing most. Kafka adds its partitions and lag.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from fraud.core.latency import percentiles

REFRESH_S = 1.0


def watermark_text(watermark_ms: int | None, now_s: float) -> str:
    """'watermark lag 2.1 s' behind the wall clock; a replay of past days says where its watermark is."""
    if watermark_ms is None:
        return "watermark -"
    lag = now_s - watermark_ms / 1000.0
    if abs(lag) < 3600:
        return f"watermark lag {lag:.1f} s"
    return datetime.fromtimestamp(watermark_ms / 1000.0, UTC).strftime("watermark at %Y-%m-%d %H:%M")


def top_rules(rules: Mapping[str, int], k: int = 3) -> str:
    if not rules:
        return "none"
    ranked = sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return ", ".join(f"{name} {n:,}" for name, n in ranked)


class StatusLine:
    """One line on stderr, rewritten in place; `enabled` only on a terminal."""

    def __init__(self, enabled: bool, out=None) -> None:
        self.enabled = enabled
        self._out = out or sys.stderr
        self._n = 0
        self._t = time.monotonic()
        self._shown = 0.0
        self._rate = 0.0

    def due(self) -> bool:
        """True at most once a second: callers gather what `show` needs only then."""
        now = time.monotonic()
        if now - self._shown < REFRESH_S:
            return False
        self._shown = now
        return True

    def text(
        self,
        counts: Mapping[str, int],
        latencies: Sequence[float],
        watermark_ms: int | None,
        rules: Mapping[str, int],
        extra: str = "",
    ) -> str:
        pct = percentiles(latencies, (50, 99)) or {"p50": 0.0, "p99": 0.0}
        n = counts["allow"] + counts["review"] + counts["block"]
        now = time.monotonic()
        if now - self._t >= REFRESH_S / 2:  # a last, forced draw keeps the rate of the last full second
            self._rate = (n - self._n) / (now - self._t)
            self._n, self._t = n, now
        rate = self._rate
        return (
            f"{rate:8,.0f} tx/s | decided {n:,} (block {counts['block']:,}, review {counts['review']:,}) "
            f"| dead {counts.get('dead_letters', 0):,} | p50 {pct['p50']:.2f} ms p99 {pct['p99']:.2f} ms "
            f"| {watermark_text(watermark_ms, time.time())} | top rules {top_rules(rules)}"
            + (f" | {extra}" if extra else "")
        )

    def show(self, *args, **kwargs) -> None:
        if self.enabled:
            self._out.write("\r" + self.text(*args, **kwargs) + "   ")
            self._out.flush()

    def close(self) -> None:
        if self.enabled:
            self._out.write("\n")


def rules_fired(recs: Sequence[dict], into: Counter) -> None:
    """Count the rules of a run's decisions (few fire: most records have none)."""
    for d in recs:
        if d["rules"]:
            into.update(d["rules"])


class RunView:
    """An embedded run's status line and metrics: fed once per run with its decisions, drawn and
    exported at most once a second (the metrics get what was decided since the last time)."""

    def __init__(self, status: StatusLine, metrics=None, total_bytes: int | None = None) -> None:
        self.status, self.metrics = status, metrics
        self.enabled = status.enabled or metrics is not None
        self.total_bytes = total_bytes
        self.read_bytes = 0
        self.rules: Counter[str] = Counter()
        self.recent: deque[float] = deque(maxlen=20_000)  # the panel's latencies: the last decisions
        self._pending: list[float] = []  # latencies not yet given to the metrics
        self._sent: dict[str, int] = {}
        self._sent_rules: Counter[str] = Counter()

    def after_run(self, recs: Sequence[dict], latency_ms: float) -> None:
        rules_fired(recs, self.rules)
        lat = [latency_ms] * len(recs)  # one arrival, one decision time for the whole run
        self.recent.extend(lat)
        if self.metrics is not None:
            self._pending += lat

    def tick(self, counts: Mapping[str, int], dead_letters: int, watermark_ms: int | None, force: bool = False) -> None:
        if not (self.status.due() or force):
            return
        totals = {**counts, "dead_letters": dead_letters}
        if self.metrics is not None:
            delta = {k: n - self._sent.get(k, 0) for k, n in totals.items()}
            delta.update({f"rule:{r}": n - self._sent_rules[r] for r, n in self.rules.items()})
            self.metrics.decided(delta, self._pending)
            self.metrics.set_watermark(watermark_ms)
            self._sent, self._sent_rules, self._pending = totals, Counter(self.rules), []
        extra = f"read {100 * self.read_bytes / self.total_bytes:.0f}%" if self.total_bytes else ""
        self.status.show(totals, self.recent, watermark_ms, self.rules, extra)

    def close(self, counts: Mapping[str, int], dead_letters: int, watermark_ms: int | None) -> None:
        self.tick(counts, dead_letters, watermark_ms, force=True)
        self.status.close()
