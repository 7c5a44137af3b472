"""A transaction sent again (an upstream retry) is decided as a repeat and counted once.

The behaviour (docs/semantics.md, "Repeats"): a transaction whose tx_id, merchant and amount equal
those of one still in its card's history is not added again; its decision is marked `repeat: true`
and is made from the card's history as the first one saw it. Card histories are as if the repeat
had never arrived; the merchant table counts it as traffic (the same embedded and on Kafka).
"""

from __future__ import annotations

import orjson
import pytest
from conftest import with_retries

from fraud.core.detector import Detector
from fraud.core.records import Transaction
from fraud.runners.embedded import run_file
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules, parse_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES
from fraud.state.store import StateStore

T0 = 1_767_614_400_000


def _tx(i: int, amount: float = 3.0, ts: int | None = None, tx_id: str | None = None, merchant: str = "m1"):
    t = T0 + i * 60_000 if ts is None else ts
    return Transaction(tx_id or f"t{i}", "card_a", merchant, amount, t, t)


def _detector() -> Detector:
    rules = parse_rules(
        {"rules": [{"name": "burst", "when": {"feature": "count_10m", "op": ">=", "value": 3}, "action": "review"}]}
    )
    return Detector(StateStore.in_memory(), rules=rules, extra_features=["sum_1h", "distinct_merchants_1h"])


def _decide(det: Detector, txs: list[Transaction]) -> list[dict]:
    res = det.run(txs)
    return det.records(txs, res, [0] * len(txs), lambda: 0)


def test_a_retry_is_a_repeat_decided_as_the_first_and_counted_once():
    det = _detector()
    first = _decide(det, [_tx(0), _tx(1), _tx(2)])
    assert [d["repeat"] for d in first] == [False] * 3
    assert first[2]["rules"] == ["burst"]
    again = _decide(det, [_tx(1)])[0]  # t1 sent again
    assert again["repeat"] is True
    assert [again[k] for k in ("decision", "score", "rules")] == [first[1][k] for k in ("decision", "score", "rules")]
    assert len(det.store.arena.history("card_a")[0]) == 3
    nxt = _decide(det, [_tx(3)])[0]
    idx = det.plan.index
    assert det.store.arena.history("card_a")[0].shape[0] == 4
    res = det.run([_tx(4)])
    assert res.X[0, idx["count_10m"]] == 5  # t0..t4, t1 once
    assert res.X[0, idx["sum_1h"]] == 15.0
    assert nxt["repeat"] is False


def test_same_tx_id_with_another_amount_or_merchant_is_a_new_transaction():
    det = _detector()
    _decide(det, [_tx(0)])
    other = _decide(det, [_tx(1, amount=4.0, tx_id="t0"), _tx(2, tx_id="t0", merchant="m2")])
    assert [d["repeat"] for d in other] == [False, False]
    assert len(det.store.arena.history("card_a")[0]) == 3


def test_a_retry_within_the_same_run_and_with_a_new_event_time():
    det = _detector()
    got = _decide(det, [_tx(0), _tx(1), _tx(0), _tx(1, ts=T0 + 5 * 60_000)])  # a retry re-stamped later
    assert [d["repeat"] for d in got] == [False, False, True, True]
    assert got[3]["score"] == got[1]["score"]
    assert len(det.store.arena.history("card_a")[0]) == 2


def test_a_retry_after_the_card_has_moved_on_sees_the_history_as_the_first_did():
    """Later events of the card are not in the repeat's windows: it sits at the first one's place."""
    det = _detector()
    first = _decide(det, [_tx(0), _tx(1)])
    _decide(det, [_tx(2), _tx(3), _tx(4)])
    again = _decide(det, [_tx(1)])[0]
    assert again["repeat"] and again["rules"] == first[1]["rules"] == []


def _embedded(tx, out, state, stop_after=None, model=True):
    store = StateStore(state, cache_size=50)
    try:
        det = Detector(store, rules=load_rules(DEFAULT_RULES), model=load_model(DEFAULT_MODEL) if model else None)
        return run_file(det, str(tx), str(out), str(out) + ".bad", checkpoint_every=500, stop_after=stop_after)
    finally:
        store.close()


def _read(path) -> list[dict]:
    out = []
    for line in open(path, "rb"):
        d = orjson.loads(line)
        d.pop("latency_ms")
        out.append(d)
    return out


@pytest.fixture(scope="module")
def retried_stream(small_stream, tmp_path_factory):
    lines = open(small_stream["tx"], "rb").read().splitlines()
    with_copies, retried = with_retries(lines)
    d = tmp_path_factory.mktemp("retries")
    (d / "tx.jsonl").write_bytes(b"\n".join(with_copies) + b"\n")
    return d / "tx.jsonl", retried


def test_retries_change_no_card_history(small_stream, retried_stream, tmp_path):
    """With the default rules (card features only), every other decision is as if no retry came.
    (The merchant table counts repeats as traffic, the same embedded and on Kafka, where it is a
    global table fed by the whole topic: docs/semantics.md.)"""
    path, retried = retried_stream
    _embedded(small_stream["tx"], tmp_path / "plain.jsonl", tmp_path / "s0", model=False)
    _embedded(path, tmp_path / "retried.jsonl", tmp_path / "s1", model=False)
    plain, got = _read(tmp_path / "plain.jsonl"), _read(tmp_path / "retried.jsonl")
    repeats = [d for d in got if d["repeat"]]
    assert len(retried) > 20 and sorted(d["tx_id"] for d in repeats) == sorted(retried)
    assert [d for d in got if not d["repeat"]] == plain
    first = {d["tx_id"]: d for d in plain}
    same = sum(
        1 for d in repeats if (d["decision"], d["score"]) == (first[d["tx_id"]]["decision"], first[d["tx_id"]]["score"])
    )
    assert same >= len(repeats) * 0.9  # the rest: late arrivals of the card came in between
    assert any(d["rules"] for d in got)  # the rules do fire on this stream


def test_retries_after_a_crash_and_restart_are_still_repeats(retried_stream, tmp_path):
    path, retried = retried_stream
    _embedded(path, tmp_path / "whole.jsonl", tmp_path / "s1")
    want = _read(tmp_path / "whole.jsonl")
    out, state = tmp_path / "crashy.jsonl", tmp_path / "s2"
    for stop in (1_234, 5_000, 9_999):  # each run dies between checkpoints
        _embedded(path, out, state, stop_after=stop)
    assert _embedded(path, out, state).resumed_from_line > 0
    assert _read(out) == want
    assert sum(d["repeat"] for d in want) == len(retried)


def test_training_and_backtests_count_a_retried_transaction_once(small_stream, retried_stream):
    from fraud.offline.backtest import backtest
    from fraud.offline.training import MODEL_FEATURES, replay

    path, retried = retried_stream
    rows = replay(str(path), MODEL_FEATURES)
    plain = replay(str(small_stream["tx"]), MODEL_FEATURES)
    assert rows.tx_ids == plain.tx_ids and len(set(rows.tx_ids)) == len(rows.tx_ids)
    rules = load_rules(DEFAULT_RULES)
    a = backtest(rules, str(path), str(small_stream["labels"]))
    b = backtest(rules, str(small_stream["tx"]), str(small_stream["labels"]))
    assert a["transactions"] == b["transactions"] and a["rules"] == b["rules"]
