"""Simulator contract: SPEC section 1 record formats, determinism, scenarios, arrival order."""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import catalog
from generator.encode import amount_text, iso_ms
from generator.geo import haversine_km
from generator.simulate import SimConfig, build_stream, iter_feedback, iter_records, write_files

SMALL = SimConfig(cards=300, days=12, seed=11, late_share=0.05)


def _run(tmp_path, cfg: SimConfig, name: str = "a"):
    paths = [str(tmp_path / f"{name}.{k}.jsonl") for k in ("tx", "labels", "fb")]
    stats = write_files(cfg, *paths)
    return stats, [open(p, "rb").read() for p in paths]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    stats, (txb, lbb, fbb) = _run(tmp, SMALL)
    tx = [orjson.loads(x) for x in txb.splitlines()]
    labels = [orjson.loads(x) for x in lbb.splitlines()]
    fb = [orjson.loads(x) for x in fbb.splitlines()]
    return stats, (txb, lbb, fbb), tx, labels, fb


def _ts(s: str) -> float:
    assert s.endswith("Z")
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def test_same_config_same_bytes_other_seed_other_bytes(tmp_path, small):
    _, first, *_ = small
    _, again = _run(tmp_path, SMALL, "b")
    assert again == list(first)
    _, other = _run(tmp_path, SimConfig(cards=300, days=12, seed=12, late_share=0.05), "c")
    assert other[0] != first[0]


def test_every_scenario_present_and_labels_aligned(small):
    stats, _, tx, labels, _ = small
    assert [t["tx_id"] for t in tx] == [lb["tx_id"] for lb in labels]
    assert len({t["tx_id"] for t in tx}) == len(tx) == stats["n_tx"]
    seen = {lb["scenario"] for lb in labels if lb["is_fraud"]}
    assert seen == set(catalog.SCENARIOS)
    for lb in labels:
        assert lb["is_fraud"] in (0, 1)
        assert (lb["scenario"] is None) == (lb["is_fraud"] == 0)
    assert sum(stats["scenarios"].values()) == stats["n_fraud"] == sum(lb["is_fraud"] for lb in labels)


def test_fraud_rate_near_config(small):
    stats, *_ = small
    assert abs(stats["n_fraud"] / stats["n_tx"] - SMALL.fraud_rate) < 0.0025


def test_arrival_order_and_late_share(small):
    stats, _, tx, _, _ = small
    assert abs(stats["n_late"] / stats["n_tx"] - SMALL.late_share) < 0.015
    s = build_stream(SMALL)
    arrival = (s.tx.t_ms + s.delay_ms)[s.order]
    assert np.all(np.diff(arrival) >= 0)
    assert s.delay_ms.max() <= SMALL.max_delay_s * 1000
    times = np.array([_ts(t["event_time"]) for t in tx])
    behind = times < np.maximum.accumulate(times)
    assert 0 < behind.sum() <= stats["n_late"]  # only delayed events can be out of order


TX_ID = re.compile(r"^t\d{9}$")
CARD_ID = re.compile(r"^c_[0-9a-f]{16}$")
MERCHANT_ID = re.compile(r"^m_[0-9a-f]{8}$")


def test_records_match_spec(small):
    _, _, tx, _, _ = small
    start = _ts("2026-01-01T00:00:00.000Z")
    for t in tx:
        assert TX_ID.match(t["tx_id"]) and CARD_ID.match(t["card_id"]) and MERCHANT_ID.match(t["merchant_id"])
        assert isinstance(t["amount"], (int, float)) and math.isfinite(t["amount"]) and t["amount"] >= 0
        assert round(t["amount"], 2) == t["amount"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", t["event_time"])
        assert start <= _ts(t["event_time"]) < start + SMALL.days * 86400
        assert t["currency"] == "USD" and re.match(r"^\d{4}$", t["mcc"]) and re.match(r"^[A-Z]{2}$", t["country"])
        assert t["channel"] in ("pos", "ecom", "atm")
        if t["channel"] == "ecom":
            assert "lat" not in t and "lon" not in t
        else:
            assert -90 <= t["lat"] <= 90 and -180 <= t["lon"] <= 180
        if t["channel"] == "atm":
            assert t["mcc"] == "6011"


def test_channel_mix_is_realistic(small):
    _, _, tx, _, _ = small
    share = {c: sum(t["channel"] == c for t in tx) / len(tx) for c in ("pos", "ecom", "atm")}
    assert 0.15 < share["ecom"] < 0.35 and 0.02 < share["atm"] < 0.09


def test_legit_travel_is_never_impossible(small):
    """Consecutive card-present payments of legit traffic stay below airliner speed."""
    _, _, tx, labels, _ = small
    fraud = {lb["tx_id"] for lb in labels if lb["is_fraud"]}
    by_card: dict[str, list] = {}
    for t in sorted(tx, key=lambda r: r["event_time"]):
        if "lat" in t and t["tx_id"] not in fraud:
            by_card.setdefault(t["card_id"], []).append(t)
    far_moves = 0
    for rows in by_card.values():
        for a, b in zip(rows, rows[1:]):
            km = float(haversine_km(a["lat"], a["lon"], b["lat"], b["lon"]))
            hours = max(_ts(b["event_time"]) - _ts(a["event_time"]), 1) / 3600
            if km > 300:
                far_moves += 1
                assert km / hours < 900, (a, b)
    assert far_moves > 0  # legit trips exist


def test_feedback_valid_and_sorted(small):
    _, _, tx, labels, fb = small
    by_id = {t["tx_id"]: t for t in tx}
    fraud = {lb["tx_id"] for lb in labels if lb["is_fraud"]}
    assert fb and len(fb) <= len(fraud)
    rep = [_ts(f["reported_at"]) for f in fb]
    assert rep == sorted(rep)
    for f in fb:
        t = by_id[f["tx_id"]]
        assert f["tx_id"] in fraud
        assert (f["card_id"], f["merchant_id"], f["event_time"]) == (t["card_id"], t["merchant_id"], t["event_time"])
        assert _ts(f["reported_at"]) >= _ts(f["event_time"])
    assert [orjson.loads(x) for x in iter_feedback(SMALL)] == fb


def test_iter_records_equals_files_and_reports_progress(small):
    _, (txb, lbb, _), tx, _, _ = small
    calls = []
    recs = list(iter_records(SMALL, progress=lambda done, total: calls.append((done, total))))
    assert b"".join(r[1] + b"\n" for r in recs) == txb
    assert b"".join(r[2] + b"\n" for r in recs) == lbb
    assert [r[0] for r in recs] == [t["card_id"] for t in tx]
    assert calls and calls[-1] == (len(tx), len(tx))
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_scenario_subset_and_no_fraud(tmp_path):
    stats, _ = _run(tmp_path, SimConfig(cards=100, days=5, scenarios=("card_testing",)))
    assert stats["n_fraud"] == stats["scenarios"]["card_testing"] > 0
    stats, _ = _run(tmp_path, SimConfig(cards=100, days=5, fraud_rate=0.0, late_share=0.0))
    assert stats["n_fraud"] == 0 and stats["n_late"] == 0
    with pytest.raises(ValueError):
        SimConfig(scenarios=("nope",)).validate()
    with pytest.raises(ValueError):
        SimConfig(start="01/01/2026").validate()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=99_999_999_99))
def test_amount_text_round_trips(cents):
    text = amount_text(np.array([cents / 100])).tolist()[0]
    assert float(orjson.loads(text)) == pytest.approx(cents / 100, abs=1e-9)
    assert re.match(rb"^(0|[1-9]\d*)\.\d\d$", text)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=253402300799999))
def test_iso_ms_matches_numpy(ms):
    expected = np.datetime_as_string(np.array([ms], "datetime64[ms]"), unit="ms")[0] + "Z"
    assert iso_ms(np.array([ms])) == [expected]


def test_card_tokens_are_never_refused_as_card_numbers():
    """A hex token whose 16 digits happen to be all decimal and Luhn-valid would be dead-lettered by
    the detector: the simulator changes its first digit, and leaves every other token as drawn."""
    from fraud.core.redact import looks_like_pan
    from generator.population import _card_tokens

    drawn = np.array([int("4111111111111111", 16), int("9a32978791841116", 16), 7], dtype=np.uint64)
    assert _card_tokens(drawn) == ["c_f111111111111111", "c_9a32978791841116", "c_0000000000000007"]
    assert not any(looks_like_pan(t) for t in _card_tokens(drawn))
