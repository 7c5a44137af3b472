"""Merchant-side features against a brute-force reference, with random out-of-order arrivals.

The reference applies the documented definition literally: at event time t the cut-off is
t - 7 days rounded down to the hour; `merchant_tx_<n>d` counts the merchant's transactions that
arrived earlier with event time in [cut - n days, cut); the fraud rate divides the reports known at t
(reported_at <= t) about frauds at the merchant with event time in the same span by that count.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.core.detector import Detector
from fraud.core.records import validate
from fraud.state.feedback import FeedbackIndex
from fraud.state.merchant_table import MerchantTable
from fraud.state.store import StateStore

H = 3_600_000
D = 24 * H
T0 = 1_767_225_600_000
FEATS = [
    "merchant_tx_1d",
    "merchant_tx_7d",
    "merchant_tx_30d",
    "merchant_fraud_rate_1d",
    "merchant_fraud_rate_7d",
    "merchant_fraud_rate_30d",
    "merchant_cards_7d",
]


def reference(events: list[dict], reports: list[dict], k: int) -> list[float]:
    me = events[k]
    t = me["ts"]
    cut = (t - 7 * D) // H * H
    out_n, out_rate = [], []
    for days in (1, 7, 30):
        lo = cut - days * D
        n = sum(1 for e in events[:k] if e["merchant_id"] == me["merchant_id"] and lo <= e["ts"] < cut)
        f = sum(
            1
            for r in reports
            if r["merchant_id"] == me["merchant_id"] and lo <= r["event_time"] < cut and r["reported_at"] <= t
        )
        out_n.append(n)
        out_rate.append(f / n if n else math.nan)
    cards = {e["card_id"] for e in events[:k] if e["merchant_id"] == me["merchant_id"] and cut - 7 * D <= e["ts"] < cut}
    return out_n + out_rate + [len(cards)]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)


event = st.tuples(
    st.integers(0, 45 * 24 * 4),
    st.sampled_from(["m1", "m2", "m3"]),
    st.sampled_from(["c1", "c2", "c3", "c4"]),
    st.integers(0, 10 * 24 * 4),
)
report = st.tuples(st.integers(0, 45 * 24 * 4), st.sampled_from(["m1", "m2", "m3"]), st.integers(0, 10 * 24))


@settings(max_examples=60, deadline=None)
@given(st.lists(event, min_size=1, max_size=120), st.lists(report, max_size=15))
def test_merchant_features_match_reference(raw_events, raw_reports):
    # quarter-hour grid over 45 days; each event arrives up to 10 days behind its place in time order
    events = [
        {"tx_id": f"t{i}", "card_id": c, "merchant_id": m, "amount": 10.0, "ts": T0 + q * 900_000, "arrival": q + delay}
        for i, (q, m, c, delay) in enumerate(raw_events)
    ]
    events.sort(key=lambda e: (e["arrival"], e["tx_id"]))
    reports = [
        {
            "tx_id": f"f{i}",
            "card_id": "cx",
            "merchant_id": m,
            "event_time": T0 + q * 900_000,
            "reported_at": T0 + q * 900_000 + lag * H,
        }
        for i, (q, m, lag) in enumerate(raw_reports)
    ]
    fb = FeedbackIndex()
    for r in reports:
        fb.add(r)
    store = StateStore(None)
    det = Detector(store, extra_features=FEATS, feedback=fb)
    det.plan.merchants = MerchantTable(lateness_ms=11 * D)  # events here may be 10 days late
    for k, e in enumerate(events):
        det.update(
            validate({**{f: e[f] for f in ("tx_id", "card_id", "merchant_id", "amount")}, "event_time": e["ts"]})
        )
        got = [det.vector[det.plan.index[f]] for f in FEATS]
        want = reference(events, reports, k)
        assert all(_same(a, b) for a, b in zip(got, want)), (k, got, want)
    store.close()


def test_table_forgets_what_no_window_can_read():
    table = MerchantTable(lateness_ms=D)
    table.add("old", "c1", T0)
    table.add("busy", "c1", T0)
    for day in range(1, 50):
        table.add("busy", "c2", T0 + day * D)
    assert "old" not in table  # swept once 7 + 30 + 1 days and a bit had passed
    hours, card_hours = table.buckets("busy")
    assert hours[0] > T0 // H
    assert len(card_hours) <= 16  # card rows: only as long as the 7-day window needs
    n1, n7, n30, cards = table.window("busy", T0 + 49 * D)
    assert (n1, n7, n30, cards) == (1, 7, 30, 1)


def test_late_insert_invalidates_the_cached_window():
    table = MerchantTable()
    t = T0 + 20 * D
    table.add("m", "c1", T0 + 10 * D)
    assert table.window("m", t) == (0, 1, 1, 1)
    table.add("m", "c2", T0 + 12 * D + 5 * H)  # arrives late, inside the already computed windows
    assert table.window("m", t) == (1, 2, 2, 2)


def test_a_merchant_with_more_cards_than_the_scratch_set_holds():
    table = MerchantTable()
    for c in range(5000):  # 5,000 card rows in the 7-day window: more than the hash scratch's 4,096
        table.add("busy", f"c{c}", T0 + (c % 100) * H)
    table.add("busy", "c0", T0 + H)  # a repeat within its hour adds no row
    # at t = T0 + 7 days + 101 h the windows end at hour 101: the last day holds hours 77-99 (50 cards each)
    assert table.window("busy", T0 + 7 * D + 101 * H) == (23 * 50, 5001, 5001, 5000)
