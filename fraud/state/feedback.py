"""Confirmed fraud reports (SPEC 1, Feedback), indexed by card and by merchant.

A report counts for a decision only if the decision's event time is at or after its `reported_at`:
every query (`report_kernel.py`) takes the current event time `t` and ignores later reports, so loading reports early
(a whole file at start, a topic read ahead) can never leak into an earlier decision. Reports are few
(frauds only), so the index lives in memory and is rebuilt from its source on every start: the same
source gives the same index, in every mode.
"""

from __future__ import annotations

from bisect import insort
from pathlib import Path

import numpy as np
import orjson

from fraud.core.lines import iter_lines
from fraud.core.records import BadRecord, parse_time


class FeedbackIndex:
    """Per key (card or merchant): reports as (fraud event time, reported_at), sorted by event time."""

    def __init__(self) -> None:
        self.cards: dict[str, list[tuple[int, int]]] = {}
        self.merchants: dict[str, list[tuple[int, int]]] = {}
        self._seen: set[str] = set()
        self.rejected = 0  # invalid report lines skipped when loading
        self._packed: tuple | None = None

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
        self._packed = None
        insort(self.cards.setdefault(card, []), entry)
        insort(self.merchants.setdefault(merchant, []), entry)

    def packed(self) -> tuple[dict[str, int], dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        """The index as arrays for compiled code (`report_kernel.py`): (row of each card, row of each
        merchant, fraud event times, reported_at, row offsets); rebuilt after reports are added."""
        if self._packed is None:
            ev: list[int] = []
            rp: list[int] = []
            off = [0]
            rows: list[dict[str, int]] = [{}, {}]
            for table, row_of in zip((self.cards, self.merchants), rows):
                for key, entries in table.items():
                    row_of[key] = len(off) - 1
                    ev += [e for e, _ in entries]
                    rp += [r for _, r in entries]
                    off.append(len(ev))
            self._packed = (
                rows[0],
                rows[1],
                np.array(ev, dtype=np.int64),
                np.array(rp, dtype=np.int64),
                np.array(off, dtype=np.int64),
            )
        return self._packed

    @classmethod
    def from_file(cls, path: str | Path) -> FeedbackIndex:
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
