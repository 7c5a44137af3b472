"""Merchant-side state: every merchant's transactions in hourly buckets, read with a 7-day delay.

Keyed by merchant, not by card, so on Kafka no worker owns it: every worker builds the same table
from the whole transactions topic (a global table, see `kafka_global.py`); embedded runs feed it
from the events they process. Reads are delayed by `DELAY_MS` (7 days, the usual time for a fraud
to be confirmed and the handbook's protocol) for two reasons:

* a fraud rate means something only over transactions whose frauds are known by now;
* a window that ended 7 days ago is complete in every mode: a worker needs the other partitions to
  have reached that point, not to be in step with it, so Kafka decisions equal embedded ones.

Buckets are UTC hours: at event time t the windows cover the hours before the one containing
t - 7 days. Per (merchant, cut-off hour) the counts are computed once and cached: a busy merchant
costs one dictionary lookup per event, a quiet one a short bisect over its few buckets.
"""

from __future__ import annotations

from bisect import bisect_left

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DELAY_MS = 7 * DAY_MS
WINDOW_DAYS = (1, 7, 30)   # merchant_tx_<n>d / merchant_fraud_rate_<n>d
CARDS_DAYS = 7             # merchant_cards_7d
_LONGEST_H = max(WINDOW_DAYS) * 24
_CACHED_CUTS = 4           # cut-off hours cached per merchant: partitions a few hours apart still hit


def cutoff_hour(t: int) -> int:
    """The first hour no merchant window at event time `t` reads: the one containing t - 7 days."""
    return (t - DELAY_MS) // HOUR_MS


def _bucket(hours: list[int], h: int) -> tuple[int, bool]:
    """Index of hour `h` in the sorted `hours`, inserting it if absent: (index, inserted)."""
    if not hours or hours[-1] < h:
        hours.append(h)
        return len(hours) - 1, True
    if hours[-1] == h:
        return len(hours) - 1, False
    k = bisect_left(hours, h)
    if hours[k] == h:
        return k, False
    hours.insert(k, h)
    return k, True


class _Merchant:
    """One merchant's buckets: counts over 38 days; card sets only as long as the 7-day window needs."""

    __slots__ = ("hours", "counts", "card_hours", "cards", "cache")

    def __init__(self) -> None:
        self.hours: list[int] = []
        self.counts: list[int] = []
        self.card_hours: list[int] = []
        self.cards: list[set[str]] = []
        self.cache: dict[int, tuple[int, int, int, int]] = {}


class MerchantTable:
    """Per merchant: hour buckets with a transaction count and the set of cards seen."""

    def __init__(self, lateness_ms: int = DAY_MS) -> None:
        self._m: dict[str, _Merchant] = {}
        # Buckets older than every window still to be read (with the lateness allowed) are dropped.
        self._keep_h = (DELAY_MS + lateness_ms) // HOUR_MS + _LONGEST_H + 1
        self._keep_cards_h = (DELAY_MS + lateness_ms) // HOUR_MS + CARDS_DAYS * 24 + 1
        self._max_h = -1
        self._swept_day = -1
        # Embedded: the table is fed by the events being decided, so it sweeps itself as time goes
        # on. A Kafka global table runs ahead of the partitions it serves: they sweep it instead.
        self.auto_sweep = True

    def __len__(self) -> int:
        return len(self._m)

    def add(self, merchant: str, card: str, ts: int) -> None:
        h = ts // HOUR_MS
        m = self._m.get(merchant)
        if m is None:
            m = self._m[merchant] = _Merchant()
        k, new = _bucket(m.hours, h)
        if new:
            m.counts.insert(k, 1)
        else:
            m.counts[k] += 1
        k, new = _bucket(m.card_hours, h)
        if new:
            m.cards.insert(k, {card})
        else:
            m.cards[k].add(card)
        if m.cache:
            stale = [cut for cut in m.cache if h < cut]  # lands inside windows already computed
            for cut in stale:
                del m.cache[cut]
        if h > self._max_h:
            self._max_h = h
            if self.auto_sweep and h // 24 > self._swept_day:
                self._swept_day = h // 24
                self.sweep(h)

    def window(self, merchant: str, t: int) -> tuple[int, int, int, int]:
        """(transactions over 1, 7, 30 days, distinct cards over 7 days) in the hours before the one
        containing t - 7 days."""
        cut = cutoff_hour(t)
        m = self._m.get(merchant)
        if m is None:
            return 0, 0, 0, 0
        out = m.cache.get(cut)
        if out is not None:
            return out
        hours, counts = m.hours, m.counts
        hi = bisect_left(hours, cut)
        lo30 = bisect_left(hours, cut - 30 * 24, 0, hi)
        lo7 = bisect_left(hours, cut - 7 * 24, lo30, hi)
        lo1 = bisect_left(hours, cut - 24, lo7, hi)
        ch = m.card_hours
        chi = bisect_left(ch, cut)
        clo = bisect_left(ch, cut - CARDS_DAYS * 24, 0, chi)
        if clo == chi:
            cards = 0
        elif chi - clo == 1:
            cards = len(m.cards[clo])
        else:
            cards = len(set().union(*m.cards[clo:chi]))
        out = (sum(counts[lo1:hi]), sum(counts[lo7:hi]), sum(counts[lo30:hi]), cards)
        if len(m.cache) >= _CACHED_CUTS:
            del m.cache[min(m.cache)]
        m.cache[cut] = out
        return out

    def sweep_behind(self, ts: int) -> None:
        """Drop what no event at or after event time `ts` (less the lateness allowed) can read."""
        self.sweep(ts // HOUR_MS)

    def sweep(self, now_h: int) -> None:
        """Drop what no event at hour `now_h` or later can read (the allowed lateness included), and
        merchants left without any bucket."""
        oldest, oldest_cards = now_h - self._keep_h, now_h - self._keep_cards_h
        for name in list(self._m):
            m = self._m[name]
            if m.card_hours and m.card_hours[0] < oldest_cards:
                k = bisect_left(m.card_hours, oldest_cards)
                del m.card_hours[:k], m.cards[:k]
            if m.hours[0] < oldest:
                k = bisect_left(m.hours, oldest)
                if k == len(m.hours):
                    del self._m[name]
                else:
                    del m.hours[:k], m.counts[:k]
