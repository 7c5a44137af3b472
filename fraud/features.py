"""Feature catalogue and the per-event feature computation.

Every feature a rule or the model may name is defined here, once; training, backtests and live
detection all call `FeaturePlan.compute`, so there is no training/serving skew. A plan computes only
the features its consumers named (SPEC 4: naming `count_90m` in a rule is enough to get it).
"""

from __future__ import annotations

import math
import operator
import re
from bisect import bisect_right
from typing import Iterable

from .feedback import FeedbackIndex
from .history import NAN, CardHistory
from .merchant_table import HOUR_MS, MerchantTable, cutoff_hour

DAY_MS = 86_400_000
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}
WINDOW_RE = re.compile(r"^(count|sum|avg|min|max|distinct_merchants)_([1-9][0-9]{0,5})([smhd])$")
MAX_WINDOW_DAYS = 366  # longest window a rule may ask for: card histories are kept that long
MAX_WINDOW_MS = MAX_WINDOW_DAYS * DAY_MS
PROFILE_MS = 30 * DAY_MS  # span of the card's own history that amount_z_30d & co. compare against

# name -> documentation (the README's feature table is generated from the same words).
EXTRA_FEATURES: dict[str, str] = {
    "amount": "the transaction amount",
    "secs_since_prev": "seconds since the card's previous transaction in event time (NaN for the first)",
    "dist_prev_km": "great-circle distance (km) from the card's previous card-present payment with a "
                    "location; NaN unless this payment is card-present with a location",
    "speed_kmh": "dist_prev_km divided by the time between the two payments (at least 1 minute), km/h",
    "new_merchant": "1 if the card has no earlier transaction at this merchant in the last 30 days, else 0",
    "hour_of_day": "hour of the event time, UTC, 0-23 (fractional)",
    "card_present": "1 for pos/atm, 0 for other channels, NaN when the record has no channel",
    "amount_z_30d": "z-score of the amount against the card's earlier amounts of the last 30 days "
                    "(std floored at 1); NaN with fewer than 3 earlier transactions",
    "amount_to_avg_30d": "amount divided by (1 + mean of the card's earlier amounts of the last 30 days); "
                         "NaN without earlier transactions",
    "amount_to_max_30d": "amount divided by (1 + max of the card's earlier amounts of the last 30 days); "
                         "NaN without earlier transactions",
    "hour_habit_30d": "share of the card's earlier transactions of the last 30 days within 2 hours (time of "
                      "day) of this one; low = unusual hour for this card; NaN without earlier transactions",
    "card_frauds_known_30d": "confirmed frauds on this card (feedback) with event time in the last 30 days, "
                             "counting only reports with reported_at <= this event time",
    "merchant_frauds_known_7d": "confirmed frauds at this merchant (feedback, all cards) with event time in "
                                "the last 7 days, reported by this event time",
    "merchant_frauds_known_30d": "the same over 30 days",
    "merchant_days_since_known_fraud": "days since the event time of the latest confirmed fraud at this "
                                       "merchant reported by now (NaN if none): ongoing vs past compromise",
    "card_days_since_known_fraud": "the same for the card",
    "merchant_tx_1d": "transactions at this merchant (all cards) in the day before the delay cut-off: "
                      "t - 7 days, rounded down to the hour (merchant_table.py explains the delay)",
    "merchant_tx_7d": "the same over the 7 days before the cut-off",
    "merchant_tx_30d": "the same over the 30 days before the cut-off",
    "merchant_fraud_rate_1d": "confirmed frauds (feedback reported by t) among merchant_tx_1d, divided by "
                              "merchant_tx_1d; NaN when merchant_tx_1d is 0",
    "merchant_fraud_rate_7d": "the same over the 7-day delayed window",
    "merchant_fraud_rate_30d": "the same over the 30-day delayed window",
    "merchant_cards_7d": "distinct cards at this merchant in the 7-day delayed window",
}

WINDOW_DOC = ("`<agg>_<window>`: agg in count, sum, avg, min, max, distinct_merchants over the card's "
              "transactions with event time in (t - window, t], this one included; window = a whole "
              "number with unit s, m, h or d")

_MERCHANT_SLOT = {"merchant_tx_1d": 0, "merchant_tx_7d": 1, "merchant_tx_30d": 2, "merchant_fraud_rate_1d": 3,
                  "merchant_fraud_rate_7d": 4, "merchant_fraud_rate_30d": 5, "merchant_cards_7d": 6}
MERCHANT_FEATURES = frozenset(_MERCHANT_SLOT)
# features that only fraud reports (feedback) can fill: without reports they say "no known fraud"
FEEDBACK_FEATURES = frozenset({"card_frauds_known_30d", "merchant_frauds_known_7d", "merchant_frauds_known_30d",
                               "merchant_days_since_known_fraud", "card_days_since_known_fraud",
                               "merchant_fraud_rate_1d", "merchant_fraud_rate_7d", "merchant_fraud_rate_30d"})

_COUNT, _SUM, _AVG, _MIN, _MAX, _DISTINCT = range(6)
_AGG_CODE = {"count": _COUNT, "sum": _SUM, "avg": _AVG, "min": _MIN, "max": _MAX,
             "distinct_merchants": _DISTINCT}


def parse_window(name: str) -> tuple[str, int] | None:
    """`sum_24h` -> ("sum", 86_400_000); None if the name is not a window feature."""
    m = WINDOW_RE.match(name)
    if m is None:
        return None
    return m.group(1), int(m.group(2)) * _UNIT_MS[m.group(3)]


def is_known(name: str) -> bool:
    return name in EXTRA_FEATURES or parse_window(name) is not None


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    a = (math.sin((p2 - p1) * 0.5) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) * 0.5) ** 2)
    return 12_742.0 * math.asin(min(1.0, math.sqrt(a)))


class FeaturePlan:
    """The features one detector computes, in a fixed order (`names`), and how to compute them."""

    def __init__(self, names: Iterable[str], lateness_ms: int = DAY_MS) -> None:
        self.names: list[str] = list(dict.fromkeys(names))
        unknown = [n for n in self.names if not is_known(n)]
        if unknown:
            raise ValueError(f"unknown feature(s): {', '.join(unknown)}")
        self.index = {n: i for i, n in enumerate(self.names)}
        groups: dict[int, list[tuple[int, int]]] = {}
        for slot, name in enumerate(self.names):
            parsed = parse_window(name)
            if parsed:
                groups.setdefault(parsed[1], []).append((_AGG_CODE[parsed[0]], slot))
        # (duration, needs amounts slice, needs merchants, [(agg, slot)]) - decided once, not per event
        self._groups = [
            (dur, any(a in (_SUM, _AVG, _MIN, _MAX) for a, _ in aggs),
             any(a == _DISTINCT for a, _ in aggs), aggs)
            for dur, aggs in sorted(groups.items())
        ]
        want = set(self.names)
        self._extras = [(n, self.index[n]) for n in EXTRA_FEATURES if n in want]
        self._profile = bool(want & {"amount_z_30d", "amount_to_avg_30d", "amount_to_max_30d"})
        self.feedback = FeedbackIndex()  # the detector replaces it when it is given reports
        self.uses_merchants = bool(want & MERCHANT_FEATURES)
        self.merchants = MerchantTable(lateness_ms)  # a Kafka worker replaces it with its global table
        longest = max((d for d, *_ in self._groups), default=0)
        self.retention_ms = max(longest, PROFILE_MS)

    def new_vector(self) -> list[float]:
        return [NAN] * len(self.names)

    def compute(self, h: CardHistory, i: int, tx, out: list[float]) -> None:
        """Fill `out` for the event just inserted at index `i` of history `h`."""
        times = h.ts
        t = times[i]
        hi = i + 1  # insert() puts an event after every event with the same time
        for dur, need_amt, need_mer, aggs in self._groups:
            lo = bisect_right(times, t - dur, 0, i)
            n = hi - lo
            if need_amt:
                window = h.amt[lo:hi]
            for agg, slot in aggs:
                if agg == _COUNT:
                    out[slot] = n
                elif agg == _SUM:
                    out[slot] = sum(window)
                elif agg == _AVG:
                    out[slot] = sum(window) / n
                elif agg == _MIN:
                    out[slot] = min(window)
                elif agg == _MAX:
                    out[slot] = max(window)
                else:
                    out[slot] = len(set(h.mer[lo:hi]))
        if not self._extras:
            return
        amount = h.amt[i]
        plo = bisect_right(times, t - PROFILE_MS, 0, i)  # the card's earlier 30 days: [plo, i)
        travel: tuple[float, float] | None = None
        merchant: tuple[int, ...] | None = None
        if self._profile:
            prior = h.amt[plo:i]
            k = len(prior)
            if k:
                total = sum(prior)
                mean = total / k
                to_avg = amount / (1.0 + mean)
                to_max = amount / (1.0 + max(prior))
                if k >= 3:
                    var = sum(map(operator.mul, prior, prior)) / k - mean * mean
                    z = (amount - mean) / max(math.sqrt(var) if var > 0 else 0.0, 1.0)
                else:
                    z = NAN
            else:
                to_avg = to_max = z = NAN
        for name, slot in self._extras:
            if name == "amount":
                out[slot] = amount
            elif name == "secs_since_prev":
                out[slot] = (t - times[i - 1]) / 1000.0 if i else NAN
            elif name == "dist_prev_km" or name == "speed_kmh":
                if travel is None:
                    travel = self._travel(h, i)
                out[slot] = travel[0] if name == "dist_prev_km" else travel[0] / travel[1]
            elif name == "new_merchant":
                out[slot] = 0.0 if h.mer[i] in h.mer[plo:i] else 1.0
            elif name == "hour_of_day":
                out[slot] = (t % DAY_MS) / 3_600_000.0
            elif name == "card_present":
                cp = tx.card_present
                out[slot] = NAN if cp is None else float(cp)
            elif name == "amount_z_30d":
                out[slot] = z
            elif name == "amount_to_avg_30d":
                out[slot] = to_avg
            elif name == "amount_to_max_30d":
                out[slot] = to_max
            elif name == "hour_habit_30d":
                out[slot] = self._hour_habit(times, plo, i, t)
            elif name == "card_frauds_known_30d":
                out[slot] = FeedbackIndex.count(self.feedback.cards.get(tx.card_id), t, PROFILE_MS)
            elif name == "merchant_days_since_known_fraud":
                out[slot] = FeedbackIndex.days_since_latest(self.feedback.merchants.get(tx.merchant_id), t)
            elif name == "card_days_since_known_fraud":
                out[slot] = FeedbackIndex.days_since_latest(self.feedback.cards.get(tx.card_id), t)
            elif name == "merchant_frauds_known_7d":
                out[slot] = FeedbackIndex.count(self.feedback.merchants.get(tx.merchant_id), t, 7 * DAY_MS)
            elif name == "merchant_frauds_known_30d":
                out[slot] = FeedbackIndex.count(self.feedback.merchants.get(tx.merchant_id), t, PROFILE_MS)
            else:
                if merchant is None:
                    merchant = self._merchant(tx.merchant_id, t)
                out[slot] = merchant[_MERCHANT_SLOT[name]]

    def _merchant(self, merchant_id: str, t: int) -> tuple[float, ...]:
        """The merchant_* delayed-window features, in `_MERCHANT_SLOT` order."""
        n1, n7, n30, cards = self.merchants.window(merchant_id, t)
        entries = self.feedback.merchants.get(merchant_id)
        if entries:
            cut = cutoff_hour(t) * HOUR_MS
            f1 = FeedbackIndex.count_between(entries, cut - DAY_MS, cut, t)
            f7 = FeedbackIndex.count_between(entries, cut - 7 * DAY_MS, cut, t)
            f30 = FeedbackIndex.count_between(entries, cut - 30 * DAY_MS, cut, t)
        else:
            f1 = f7 = f30 = 0
        return (n1, n7, n30, f1 / n1 if n1 else NAN, f7 / n7 if n7 else NAN, f30 / n30 if n30 else NAN, cards)

    @staticmethod
    def _hour_habit(times: list[int], lo: int, i: int, t: int) -> float:
        if lo == i:
            return NAN
        near = 0
        mine = t % DAY_MS
        for x in times[lo:i]:
            d = abs(x % DAY_MS - mine)
            if d <= 7_200_000 or d >= DAY_MS - 7_200_000:
                near += 1
        return near / (i - lo)

    @staticmethod
    def _travel(h: CardHistory, i: int) -> tuple[float, float]:
        """(km, hours) from the previous card-present payment with a location; (NaN, 1) if none."""
        if not h.cp[i]:
            return NAN, 1.0
        cps = h.cp
        j = i - 1
        while j >= 0 and not cps[j]:
            j -= 1
        if j < 0:
            return NAN, 1.0
        dist = haversine_km(h.lat[j], h.lon[j], h.lat[i], h.lon[i])
        return dist, max(h.ts[i] - h.ts[j], 60_000) / 3_600_000.0
