"""Merchant-side state: every merchant's transactions in hourly buckets, read with a 7-day delay.

Keyed by merchant, not by card, so on Kafka no worker owns it: every worker builds the same table
from the whole transactions topic (a global table, see `kafka_merchants.py`); embedded runs feed it
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


class MerchantTable:
    """Per merchant: sorted hour buckets with a transaction count and the set of cards seen."""

    def __init__(self, lateness_ms: int = DAY_MS) -> None:
        self._hours: dict[str, list[int]] = {}
        self._counts: dict[str, list[int]] = {}
        self._cards: dict[str, list[set[str]]] = {}
        self._cache: dict[str, tuple[int, tuple[int, int, int, int]]] = {}
        # Buckets older than every window still to be read (with the lateness allowed) are dropped.
        self._keep_h = (DELAY_MS + lateness_ms) // HOUR_MS + _LONGEST_H + 1
        self._max_h = -1
        self._swept_day = -1
        self.added = 0
        # Embedded: the table is fed by the events being decided, so it sweeps itself as time goes
        # on. A Kafka global table runs ahead of the partitions it serves: they sweep it instead.
        self.auto_sweep = True

    def __len__(self) -> int:
        return len(self._hours)

    def add(self, merchant: str, card: str, ts: int) -> None:
        h = ts // HOUR_MS
        hours = self._hours.get(merchant)
        if hours is None:
            self._hours[merchant] = [h]
            self._counts[merchant] = [1]
            self._cards[merchant] = [{card}]
        elif hours[-1] == h:
            self._counts[merchant][-1] += 1
            self._cards[merchant][-1].add(card)
        elif hours[-1] < h:
            hours.append(h)
            self._counts[merchant].append(1)
            self._cards[merchant].append({card})
        else:  # an out-of-order event for an older hour
            k = bisect_left(hours, h)
            if hours[k] == h:
                self._counts[merchant][k] += 1
                self._cards[merchant][k].add(card)
            else:
                hours.insert(k, h)
                self._counts[merchant].insert(k, 1)
                self._cards[merchant].insert(k, {card})
        cached = self._cache.get(merchant)
        if cached is not None and h < cached[0]:  # lands inside windows already computed
            del self._cache[merchant]
        self.added += 1
        if h > self._max_h:
            self._max_h = h
            if self.auto_sweep and h // 24 > self._swept_day:
                self._swept_day = h // 24
                self.sweep(h - self._keep_h)

    def window(self, merchant: str, t: int) -> tuple[int, int, int, int]:
        """(transactions over 1, 7, 30 days, distinct cards over 7 days) in the hours before the one
        containing t - 7 days."""
        cut = (t - DELAY_MS) // HOUR_MS
        cached = self._cache.get(merchant)
        if cached is not None and cached[0] == cut:
            return cached[1]
        hours = self._hours.get(merchant)
        if not hours:
            return 0, 0, 0, 0
        hi = bisect_left(hours, cut)
        counts = self._counts[merchant]
        lo30 = bisect_left(hours, cut - 30 * 24, 0, hi)
        lo7 = bisect_left(hours, cut - 7 * 24, lo30, hi)
        lo1 = bisect_left(hours, cut - 24, lo7, hi)
        if lo7 == hi:
            cards = 0
        elif hi - lo7 == 1:
            cards = len(self._cards[merchant][lo7])
        else:
            cards = len(set().union(*self._cards[merchant][lo7:hi]))
        out = (sum(counts[lo1:hi]), sum(counts[lo7:hi]), sum(counts[lo30:hi]), cards)
        self._cache[merchant] = (cut, out)
        return out

    def sweep_behind(self, ts: int) -> None:
        """Drop what no event at or after event time `ts` (less the lateness allowed) can read."""
        self.sweep(ts // HOUR_MS - self._keep_h)

    def sweep(self, oldest_h: int) -> None:
        """Drop buckets before hour `oldest_h` everywhere, and merchants left without any."""
        for m in list(self._hours):
            hours = self._hours[m]
            if hours[0] >= oldest_h:
                continue
            k = bisect_left(hours, oldest_h)
            if k == len(hours):
                del self._hours[m], self._counts[m], self._cards[m]
                self._cache.pop(m, None)
            else:
                del hours[:k], self._counts[m][:k], self._cards[m][:k]
