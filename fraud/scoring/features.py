"""Feature catalogue, and the plan that tells the compiled kernel which features to compute.

Every feature a rule or the model may name is defined here, once; training, backtests and live
detection all run the same kernel (`core/run_kernel.py`) with a plan, so there is no training/serving skew.
A plan computes only the features its consumers named (SPEC 4: naming `count_90m` in a rule is
enough to get it). Card features are computed by the card kernel from the card's history; the
merchant and fraud-report features come from tables shared by all cards (`merchant_kernel.py`,
`report_kernel.py`), which write them into the card kernel's input rows, event by event in arrival
order, just before it runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

from fraud.core import window_kernel as K
from fraud.core.units import DAY_MS, UNIT_MS
from fraud.state.feedback import FeedbackIndex
from fraud.state.merchant_table import MerchantTable

NAN = float("nan")
WINDOW_RE = re.compile(r"^(count|sum|avg|min|max|distinct_merchants)_([1-9][0-9]{0,5})([smhd])$")
MAX_WINDOW_DAYS = 366  # longest window a rule may ask for: card histories are kept that long
MAX_WINDOW_MS = MAX_WINDOW_DAYS * DAY_MS
PROFILE_MS = K.PROFILE_MS  # span of the card's own history that amount_z_30d & co. compare against

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

WINDOW_DOC = (
    "`<agg>_<window>`: agg in count, sum, avg, min, max, distinct_merchants over the card's "
    "transactions with event time in (t - window, t], this one included; window = a whole "
    "number with unit s, m, h or d"
)

_MERCHANT_SLOT = {
    "merchant_tx_1d": 0,
    "merchant_tx_7d": 1,
    "merchant_tx_30d": 2,
    "merchant_fraud_rate_1d": 3,
    "merchant_fraud_rate_7d": 4,
    "merchant_fraud_rate_30d": 5,
    "merchant_cards_7d": 6,
}
MERCHANT_FEATURES = frozenset(_MERCHANT_SLOT)
# features that only fraud reports (feedback) can fill: without reports they say "no known fraud"
FEEDBACK_FEATURES = frozenset(
    {
        "card_frauds_known_30d",
        "merchant_frauds_known_7d",
        "merchant_frauds_known_30d",
        "merchant_days_since_known_fraud",
        "card_days_since_known_fraud",
        "merchant_fraud_rate_1d",
        "merchant_fraud_rate_7d",
        "merchant_fraud_rate_30d",
    }
)

_AGG_CODE = {
    "count": K.A_COUNT,
    "sum": K.A_SUM,
    "avg": K.A_AVG,
    "min": K.A_MIN,
    "max": K.A_MAX,
    "distinct_merchants": K.A_DISTINCT,
}
_CARD_CODE = {
    "amount": K.E_AMOUNT,
    "secs_since_prev": K.E_SECS_PREV,
    "dist_prev_km": K.E_DIST,
    "speed_kmh": K.E_SPEED,
    "new_merchant": K.E_NEW_MERCHANT,
    "hour_of_day": K.E_HOUR,
    "card_present": K.E_CARD_PRESENT,
    "amount_z_30d": K.E_Z,
    "amount_to_avg_30d": K.E_TO_AVG,
    "amount_to_max_30d": K.E_TO_MAX,
    "hour_habit_30d": K.E_HABIT,
}
_FEEDBACK_ONLY = (
    "card_frauds_known_30d",
    "merchant_frauds_known_7d",
    "merchant_frauds_known_30d",
    "merchant_days_since_known_fraud",
    "card_days_since_known_fraud",
)


def parse_window(name: str) -> tuple[str, int] | None:
    """`sum_24h` -> ("sum", 86_400_000); None if the name is not a window feature."""
    m = WINDOW_RE.match(name)
    if m is None:
        return None
    return m.group(1), int(m.group(2)) * UNIT_MS[m.group(3)]


def is_known(name: str) -> bool:
    return name in EXTRA_FEATURES or parse_window(name) is not None


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    a = math.sin((p2 - p1) * 0.5) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) * 0.5) ** 2
    return 12_742.0 * math.asin(min(1.0, math.sqrt(a)))


_NO_REPORTS = (0, 0, 0, NAN, NAN)
_RATES = ("merchant_fraud_rate_1d", "merchant_fraud_rate_7d", "merchant_fraud_rate_30d")


class FeaturePlan:
    """The features one detector computes, in a fixed order (`names`), as arrays the kernel reads."""

    def __init__(self, names: Iterable[str], lateness_ms: int = DAY_MS) -> None:
        self.names: list[str] = list(dict.fromkeys(names))
        unknown = [n for n in self.names if not is_known(n)]
        if unknown:
            raise ValueError(f"unknown feature(s): {', '.join(unknown)}")
        self.index = {n: i for i, n in enumerate(self.names)}
        windows = sorted(
            (parse_window(n)[1], _AGG_CODE[parse_window(n)[0]], slot)
            for slot, n in enumerate(self.names)
            if parse_window(n)
        )
        # (duration, aggregate, slot) sorted by duration: the kernel bisects once per duration
        self.windows = np.array(windows, dtype=np.int64).reshape(-1, 3)
        want = set(self.names)
        # features the merchant and report kernels write into the input rows, in `inputs` order
        self.inputs = [n for n in EXTRA_FEATURES if n in want and n not in _CARD_CODE]
        extras = [(_CARD_CODE[n], self.index[n], 0) for n in EXTRA_FEATURES if n in _CARD_CODE and n in want]
        extras += [(K.E_INPUT, self.index[n], K.IN_F_FIXED + c) for c, n in enumerate(self.inputs)]
        self.extras = np.array(extras, dtype=np.int64).reshape(-1, 3)
        self.profile = bool(want & {"amount_z_30d", "amount_to_avg_30d", "amount_to_max_30d"})
        self.feedback = FeedbackIndex()  # the detector replaces it when it is given reports
        self.uses_merchants = bool(want & MERCHANT_FEATURES)
        self.merchants = MerchantTable(lateness_ms)  # a Kafka worker replaces it with its global table
        # where the kernel's input rows hold each merchant feature (in _MERCHANT_SLOT order) and
        # each report feature (in _FEEDBACK_ONLY order); -1: not computed
        col = {n: K.IN_F_FIXED + c for c, n in enumerate(self.inputs)}
        self.merchant_cols = np.array([col.get(n, -1) for n in _MERCHANT_SLOT], dtype=np.int64)
        # where the report kernel writes each report feature (in _FEEDBACK_ONLY order, then the
        # corrected merchant rates); empty: none is computed
        rcols = np.array([col.get(n, -1) for n in _FEEDBACK_ONLY + _RATES], dtype=np.int64)
        self.report_cols = rcols if (rcols >= 0).any() else np.zeros(0, dtype=np.int64)
        self.report_defaults = np.array(_NO_REPORTS + (NAN,) * len(_RATES), dtype=np.float64)
        longest = max((int(d) for d in self.windows[:, 0]), default=0)
        self.retention_ms = max(longest, PROFILE_MS)

    def new_vector(self) -> list[float]:
        return [NAN] * len(self.names)


def feature_table() -> str:
    """The Markdown table of every feature, from the catalogue's own words (docs/features.md is
    this text; a test keeps the two equal: `python -m fraud.scoring.features > docs/features.md`)."""
    rows = [("`<agg>_<window>`", WINDOW_DOC)] + [(f"`{name}`", doc) for name, doc in EXTRA_FEATURES.items()]
    lines = [
        "# Features",
        "",
        "Generated from the feature catalogue (`fraud/scoring/features.py`): "
        "`python -m fraud.scoring.features > docs/features.md`. Any of these can be named in a rule or used by a model;",
        "a missing value (NaN) makes every rule comparison false. Merchant features are read 7 days behind the event",
        "(docs/semantics.md explains why).",
        "",
        "| feature | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {doc.replace('|', '/')} |" for name, doc in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(feature_table(), end="")
