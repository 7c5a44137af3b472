"""Fraud reports (feedback) take effect only from their reported_at, in event time (SPEC 1)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.core.detector import Detector
from fraud.core.records import validate
from fraud.state.feedback import FeedbackIndex
from fraud.state.store import StateStore

T0 = 1_767_225_600_000
H = 3_600_000
FEATS = ["card_frauds_known_30d", "merchant_frauds_known_7d", "merchant_frauds_known_30d"]
RECENCY = ["merchant_days_since_known_fraud", "card_days_since_known_fraud"]


def _tx(n, t, card="c1", merchant="m1"):
    return validate({"tx_id": f"t{n}", "card_id": card, "merchant_id": merchant, "amount": 10.0, "event_time": t})


def test_report_counts_only_from_reported_at_even_for_late_arrivals():
    fb = FeedbackIndex()
    fb.add({"tx_id": "f0", "card_id": "c1", "merchant_id": "m1", "event_time": T0, "reported_at": T0 + 10 * H})
    store = StateStore(None)
    det = Detector(store, extra_features=FEATS, feedback=fb)
    seen = {}
    # arrival order: after the report time, then a late one from before it, then exactly at it
    for n, t, card in [(1, T0 + 11 * H, "c1"), (2, T0 + 9 * H, "c1"), (3, T0 + 10 * H, "c2"), (4, T0 + H, "c2")]:
        det.update(_tx(n, t, card))
        seen[n] = [det.vector[det.plan.index[f]] for f in FEATS]
    assert seen[1] == [1, 1, 1]  # after reported_at: the card and the merchant are known
    assert seen[2] == [0, 0, 0]  # event time before reported_at: nothing, though it arrived later
    assert seen[3] == [0, 1, 1]  # at reported_at, another card at the same merchant
    assert seen[4] == [0, 0, 0]
    store.close()


def test_repeated_and_invalid_reports(tmp_path):
    path = tmp_path / "fb.jsonl"
    rec = {"tx_id": "f0", "card_id": "c1", "merchant_id": "m1", "event_time": T0, "reported_at": T0}
    path.write_bytes(
        b"\n".join(
            [
                orjson.dumps(rec),
                orjson.dumps(rec),
                b"not json",
                orjson.dumps({**rec, "tx_id": "f1", "reported_at": "soon"}),
            ]
        )
        + b"\n"
    )
    fb = FeedbackIndex.from_file(path)
    assert len(fb) == 1 and fb.rejected == 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20 * 24), st.integers(0, 3), st.integers(0, 2)), min_size=2, max_size=40),
    st.lists(
        st.tuples(st.integers(0, 20 * 24), st.integers(0, 10 * 24), st.integers(0, 3), st.integers(0, 2)),
        min_size=1,
        max_size=8,
    ),
)
def test_no_report_influences_an_earlier_decision(tmp_path_factory, txs, reports):
    """Whole runs with and without the feedback decide every transaction before the first
    reported_at identically (decision, score, rules, model inputs), in any arrival order."""
    tmp = tmp_path_factory.mktemp("fb")
    lines = [
        orjson.dumps(
            {
                "tx_id": f"t{k}",
                "card_id": f"c{card}",
                "merchant_id": f"m{m}",
                "amount": 5.0 + k,
                "event_time": T0 + h * H,
            }
        )
        for k, (h, card, m) in enumerate(txs)
    ]
    (tmp / "tx.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    fb = FeedbackIndex()
    first = None
    for k, (h, delay, card, m) in enumerate(reports):
        rep = T0 + (h + delay) * H
        fb.add(
            {
                "tx_id": f"f{k}",
                "card_id": f"c{card}",
                "merchant_id": f"m{m}",
                "event_time": T0 + h * H,
                "reported_at": rep,
            }
        )
        first = rep if first is None else min(first, rep)
    outs = []
    for _name, index in (("with", fb), ("without", None)):
        store = StateStore(None)
        det = Detector(store, extra_features=FEATS + RECENCY + ["count_24h"], feedback=index)
        rows = []
        for raw in open(tmp / "tx.jsonl", "rb"):
            tx = validate(orjson.loads(raw))
            det.update(tx)
            rows.append((tx.ts, list(det.vector)))
        store.close()
        outs.append(rows)
    for (t, with_fb), (_, without) in zip(*outs):
        if t < first:
            assert str(with_fb) == str(without)  # str: NaN == NaN
