"""`fraud backtest` decides with the same code as `fraud detect` (its model scores rows in chunks):
its rates equal those of the detector's own decisions over the same stream."""

import orjson
import pytest

from fraud.core.detector import Detector
from fraud.offline.backtest import backtest
from fraud.runners.embedded import run_file
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES
from fraud.state.store import StateStore


def test_backtest_rates_equal_the_detectors_decisions(small_stream, tmp_path):
    rules, model = load_rules(DEFAULT_RULES), load_model(DEFAULT_MODEL)
    result = backtest(rules, str(small_stream["tx"]), str(small_stream["labels"]), model)
    store = StateStore(None)
    try:
        run_file(
            Detector(store, rules=rules, model=load_model(DEFAULT_MODEL)),
            str(small_stream["tx"]),
            str(tmp_path / "d.jsonl"),
            str(tmp_path / "bad.jsonl"),
        )
    finally:
        store.close()
    labels = {r["tx_id"]: r["is_fraud"] for r in map(orjson.loads, open(small_stream["labels"], "rb"))}
    decisions = [d for d in map(orjson.loads, open(tmp_path / "d.jsonl", "rb")) if d["tx_id"] in labels]
    n = len(decisions)
    frauds = sum(labels[d["tx_id"]] for d in decisions)
    assert result["transactions"] == n and result["frauds"] == frauds
    block = [d for d in decisions if d["decision"] == "block"]
    alert = [d for d in decisions if d["decision"] != "allow"]
    wm = result["with_model"]
    assert wm["block_rate"] == pytest.approx(len(block) / n, abs=0)
    assert wm["block_or_review_rate"] == pytest.approx(len(alert) / n, abs=0)
    assert wm["block_recall"] == pytest.approx(sum(labels[d["tx_id"]] for d in block) / frauds, abs=0)
    hits = {name: sum(name in d["rules"] for d in decisions) for name in result["rules"]}
    assert {name: s["hits"] for name, s in result["rules"].items()} == hits
    assert len(block) > 0 and len(alert) > len(block)
    # the money: amounts of the frauds blocked, genuine payments and customers blocked
    amount = {r["tx_id"]: r["amount"] for r in map(orjson.loads, open(small_stream["tx"], "rb"))}
    assert wm["fraud_amount_blocked"] == round(sum(amount[d["tx_id"]] for d in block if labels[d["tx_id"]]), 2)
    good = [d for d in block if not labels[d["tx_id"]]]
    assert wm["genuine_blocked"] == len(good) and wm["genuine_cards_blocked"] == len({d["card_id"] for d in good})


def test_two_rules_files_side_by_side(small_stream, tmp_path):
    from fraud.offline.backtest import format_side_by_side

    stricter = tmp_path / "stricter.yaml"
    text = open(DEFAULT_RULES).read()
    assert '{feature: count_10m, op: ">=", value: 3}' in text
    stricter.write_text(
        text.replace('{feature: count_10m, op: ">=", value: 3}', '{feature: count_10m, op: ">=", value: 2}')
    )
    a = backtest(load_rules(DEFAULT_RULES), str(small_stream["tx"]), str(small_stream["labels"]))
    b = backtest(load_rules(stricter), str(small_stream["tx"]), str(small_stream["labels"]))
    assert b["rules"]["card_testing_burst"]["hits"] > a["rules"]["card_testing_burst"]["hits"]
    table = format_side_by_side({"shipped": a, "stricter": b})
    row = next(line for line in table.splitlines() if line.startswith("card_testing_burst"))
    assert (
        f"b {a['rules']['card_testing_burst']['hits']:,} " in row
        and f"b {b['rules']['card_testing_burst']['hits']:,} " in row
    )
    assert "good customers blocked" in table and "rules + model" not in table  # no model given
