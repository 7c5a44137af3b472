"""Window features against a brute-force reference, with random out-of-order arrivals (SPEC 3 & 4).

The reference applies the definition literally: a transaction's past is every transaction of the
same card that arrived before it with event time <= its own; a window feature covers the past with
event time in (t - window, t], the transaction itself included.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.core.detector import Detector, DetectorSettings
from fraud.core.records import validate
from fraud.scoring.features import haversine_km
from fraud.state.store import StateStore

WINDOWS = [
    "count_10m",
    "sum_10m",
    "avg_1h",
    "min_1h",
    "max_1h",
    "count_1h",
    "sum_24h",
    "distinct_merchants_1h",
    "count_2d",
    "distinct_merchants_30d",
    "max_90s",
]
EXTRAS = [
    "secs_since_prev",
    "new_merchant",
    "amount_z_30d",
    "amount_to_avg_30d",
    "amount_to_max_30d",
    "dist_prev_km",
    "speed_kmh",
    "hour_of_day",
    "card_present",
]
UNIT = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
T0 = 1_767_225_600_000  # 2026-01-01


def _ms(name: str) -> int:
    spec = name.rsplit("_", 1)[1]
    return int(spec[:-1]) * UNIT[spec[-1]]


def reference(events: list[dict], k: int) -> dict[str, float]:
    """Features of arrival k computed from scratch by the SPEC definition."""
    me = events[k]
    t = me["ts"]
    past = [e for e in events[:k] if e["card_id"] == me["card_id"] and e["ts"] <= t]
    out: dict[str, float] = {}
    for name in WINDOWS:
        agg = name.rsplit("_", 1)[0]
        w = [e for e in past + [me] if e["ts"] > t - _ms(name)]
        amts = [e["amount"] for e in w]
        out[name] = {
            "count": len(w),
            "sum": sum(amts),
            "avg": sum(amts) / len(w),
            "min": min(amts),
            "max": max(amts),
            "distinct_merchants": len({e["merchant_id"] for e in w}),
        }[agg]
    prior30 = [e for e in past if e["ts"] > t - 30 * UNIT["d"]]
    a = [e["amount"] for e in prior30]
    out["secs_since_prev"] = (t - max(e["ts"] for e in past)) / 1000 if past else math.nan
    out["new_merchant"] = 0.0 if any(e["merchant_id"] == me["merchant_id"] for e in prior30) else 1.0
    if a:
        mean = sum(a) / len(a)
        out["amount_to_avg_30d"] = me["amount"] / (1 + mean)
        out["amount_to_max_30d"] = me["amount"] / (1 + max(a))
        if len(a) >= 3:
            std = math.sqrt(max(sum(x * x for x in a) / len(a) - mean * mean, 0.0))
            out["amount_z_30d"] = (me["amount"] - mean) / max(std, 1.0)
        else:
            out["amount_z_30d"] = math.nan
    else:
        out["amount_to_avg_30d"] = out["amount_to_max_30d"] = out["amount_z_30d"] = math.nan
    out["dist_prev_km"] = out["speed_kmh"] = math.nan
    if me["channel"] == "pos":
        cps = [(e["ts"], j, e) for j, e in enumerate(events[:k]) if e in past and e["channel"] == "pos"]
        if cps:
            _, _, prev = max(cps, key=lambda c: (c[0], c[1]))
            d = haversine_km(prev["lat"], prev["lon"], me["lat"], me["lon"])
            out["dist_prev_km"] = d
            out["speed_kmh"] = d / (max(t - prev["ts"], 60_000) / 3_600_000)
    out["hour_of_day"] = (t % UNIT["d"]) / UNIT["h"]
    out["card_present"] = 1.0 if me["channel"] == "pos" else 0.0
    return out


event = st.tuples(
    st.sampled_from(["c1", "c2", "c3"]),
    st.integers(0, 3 * UNIT["h"]),  # gap since the previous event (event time)
    st.sampled_from([0, 0, 0, 0, 1_000, 30_000, 600_000, 2 * UNIT["h"], 20 * UNIT["h"]]),  # arrival delay
    st.floats(0, 500, allow_nan=False).map(lambda x: round(x, 2)),
    st.sampled_from(["m1", "m2", "m3", "m4"]),
    st.sampled_from(["pos", "ecom"]),
    st.floats(-60, 60),
    st.floats(-170, 170),
)


def _stream(raw: list[tuple]) -> list[dict]:
    t = T0
    evs = []
    for n, (card, gap, delay, amount, merchant, channel, lat, lon) in enumerate(raw):
        t += gap
        rec = {
            "tx_id": f"t{n}",
            "card_id": card,
            "merchant_id": merchant,
            "amount": amount,
            "event_time": t,
            "channel": channel,
        }
        if channel == "pos":
            rec["lat"], rec["lon"] = round(lat, 4), round(lon, 4)
        evs.append((t + delay, n, rec))
    evs.sort(key=lambda e: (e[0], e[1]))  # arrival order
    return [dict(rec, ts=rec["event_time"]) for _, _, rec in evs]


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=150, deadline=None)
@given(st.lists(event, min_size=1, max_size=60))
def test_features_match_bruteforce_with_out_of_order_arrivals(raw):
    events = _stream(raw)
    store = StateStore(None, cache_size=2)  # tiny cache: exercise eviction to pending + reload
    det = Detector(
        store,
        settings=DetectorSettings(watermark_bound_ms=5_000, allowed_lateness_ms=2 * UNIT["d"]),
        extra_features=WINDOWS + EXTRAS,
    )
    try:
        for k, ev in enumerate(events):
            tx = validate({f: v for f, v in ev.items() if f != "ts"})
            det.update(tx)
            want = reference(events, k)
            for name, value in want.items():
                got = det.vector[det.plan.index[name]]
                assert _close(got, value), (k, name, got, value)
            if k % 7 == 3:
                store.checkpoint(det.checkpoint_meta())  # flush dirty + pending mid-stream
    finally:
        store.close()


def test_later_event_that_arrived_first_is_not_in_the_past():
    early, late = T0 + 60_000, T0 + 120_000
    store = StateStore(None)
    det = Detector(store, extra_features=["count_10m", "sum_10m"])
    det.update(validate({"tx_id": "b", "card_id": "c", "merchant_id": "m", "amount": 5.0, "event_time": late}))
    det.update(validate({"tx_id": "a", "card_id": "c", "merchant_id": "m", "amount": 7.0, "event_time": early}))
    assert det.vector[det.plan.index["count_10m"]] == 1
    assert det.vector[det.plan.index["sum_10m"]] == 7.0
    store.close()


def test_window_boundary_is_open_on_the_left():
    store = StateStore(None)
    det = Detector(store, extra_features=["count_10m"])
    for n, t in enumerate((T0, T0 + 600_000)):  # exactly 10 minutes apart: the first is out
        det.update(validate({"tx_id": str(n), "card_id": "c", "merchant_id": "m", "amount": 1, "event_time": t}))
    assert det.vector[det.plan.index["count_10m"]] == 1
    store.close()
