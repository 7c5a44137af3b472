"""Confirmed fraud reports (SPEC 1, Feedback), indexed by card and by merchant.

A report counts for a decision only if the decision's event time is at or after its `reported_at`:
every query takes the current event time `t` and ignores later reports, so loading reports early
(a whole file at start, a topic read ahead) can never leak into an earlier decision. Reports are few
(frauds only), so the index lives in memory and is rebuilt from its source on every start: the same
source gives the same index, in every mode.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from pathlib import Path

import orjson

from .records import BadRecord, iter_lines, parse_time


class FeedbackIndex:
    """Per key (card or merchant): reports as (fraud event time, reported_at), sorted by event time."""

    def __init__(self) -> None:
        self.cards: dict[str, list[tuple[int, int]]] = {}
        self.merchants: dict[str, list[tuple[int, int]]] = {}
        self._seen: set[str] = set()
        self.rejected = 0  # invalid report lines skipped when loading

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, rec: dict) -> None:
        """Add one report; a repeated tx_id is ignored (reports may be re-delivered)."""
        tx_id = rec.get("tx_id")
        if not isinstance(tx_id, str) or tx_id in self._seen:
            return
        card, merchant = rec.get("card_id"), rec.get("merchant_id")
        if not isinstance(card, str) or not isinstance(merchant, str):
            raise BadRecord("feedback needs string card_id and merchant_id")
        entry = (parse_time(rec.get("event_time"), "event_time"), parse_time(rec.get("reported_at"), "reported_at"))
        self._seen.add(tx_id)
        insort(self.cards.setdefault(card, []), entry)
        insort(self.merchants.setdefault(merchant, []), entry)

    @staticmethod
    def count(entries: list[tuple[int, int]] | None, t: int, window_ms: int) -> int:
        """Reports known at `t` (reported_at <= t) about frauds with event time in (t - window, t]."""
        return FeedbackIndex.count_between(entries, t - window_ms + 1, t + 1, t)  # times are whole ms

    @staticmethod
    def count_between(entries: list[tuple[int, int]] | None, lo_ts: int, hi_ts: int, t: int) -> int:
        """Reports known at `t` about frauds with event time in [lo_ts, hi_ts)."""
        if not entries:
            return 0
        lo = bisect_right(entries, (lo_ts, -1))
        hi = bisect_right(entries, (hi_ts, -1))
        n = 0
        for k in range(lo, hi):
            if entries[k][1] <= t:
                n += 1
        return n

    @staticmethod
    def days_since_latest(entries: list[tuple[int, int]] | None, t: int) -> float:
        """Days from the latest fraud known at `t` (reported_at <= t, event time <= t) to `t`; NaN if none.

        Tells an ongoing compromise (frauds keep being confirmed) from one that ended long ago.
        """
        if not entries:
            return float("nan")
        k = bisect_right(entries, (t, 1 << 62)) - 1
        while k >= 0:
            if entries[k][1] <= t:
                return (t - entries[k][0]) / 86_400_000
            k -= 1
        return float("nan")

    @classmethod
    def from_file(cls, path: str | Path) -> "FeedbackIndex":
        index = cls()
        for _, line in iter_lines(str(path), "feedback"):
            try:
                rec = orjson.loads(line)
                if not isinstance(rec, dict):
                    raise BadRecord("not a JSON object")
                index.add(rec)
            except (orjson.JSONDecodeError, BadRecord):
                index.rejected += 1  # a bad report never stops detection
        return index
