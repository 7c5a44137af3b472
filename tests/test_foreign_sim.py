"""Small, fast checks of the independent handbook-style simulator (tests/foreign_sim.py)."""

import datetime as dt
import json
import math
import os
import subprocess
import sys
from collections import Counter

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import foreign_sim  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRED = ("tx_id", "card_id", "merchant_id", "amount", "event_time")
OPTIONAL = ("currency", "mcc", "channel", "lat", "lon", "country")
SCENARIOS = {"amount_over_220", "compromised_terminal", "compromised_customer"}
SMALL = dict(n_customers=60, n_terminals=150, days=10, seed=3)


def spec_error(line):
    """Independent reading of SPEC.md section 1 (transaction table): None if valid, else a reason."""
    try:
        rec = json.loads(line)
    except ValueError:
        return "not json"
    if not isinstance(rec, dict):
        return "not an object"
    for f in REQUIRED:
        if f not in rec:
            return f"missing {f}"
    for f in ("tx_id", "card_id", "merchant_id"):
        if not isinstance(rec[f], str):
            return f"{f} not a string"
    a = rec["amount"]
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return "amount not a number"
    if not math.isfinite(a):
        return "amount not finite"
    if a < 0:
        return "amount negative"
    t = rec["event_time"]
    if isinstance(t, str):
        try:
            parsed = dt.datetime.fromisoformat(t)
        except ValueError:
            return "event_time unparseable"
        if parsed.tzinfo is None:
            return "event_time without offset"
    elif isinstance(t, bool) or not isinstance(t, int):
        return "event_time wrong type"
    for f in ("currency", "mcc", "channel", "country"):
        if f in rec and not isinstance(rec[f], str):
            return f"{f} not a string"
    for f in ("lat", "lon"):
        if f in rec and (isinstance(rec[f], bool) or not isinstance(rec[f], (int, float))):
            return f"{f} not a number"
    return None


@pytest.fixture(scope="module")
def small():
    return foreign_sim.generate(**SMALL)


def test_deterministic(small, tmp_path):
    assert foreign_sim.generate(**SMALL) == small
    assert foreign_sim.generate(**{**SMALL, "seed": 4})[0] != small[0]
    outs = []
    for k in range(2):
        p = [tmp_path / f"{name}{k}.jsonl" for name in ("tx", "lab", "fb")]
        foreign_sim.write(*p, **SMALL)
        outs.append([x.read_bytes() for x in p])
    assert outs[0] == outs[1]
    assert all(outs[0])


def test_format(small):
    txs, labels = small
    assert len(txs) > 100 and len(txs) == len(labels)
    times = [t["event_time"] for t in txs]
    assert times == sorted(times)
    assert len({t["tx_id"] for t in txs}) == len(txs)
    for tx, lab in zip(txs, labels):
        assert spec_error(json.dumps(tx)) is None
        assert type(tx["event_time"]) is int
        assert not any(f in tx for f in OPTIONAL)
        assert tx["source"] == "handbook" and "TX_TIME_DAYS" in tx  # unknown extras present
        assert tx["card_id"].startswith("customer_") and tx["merchant_id"].startswith("terminal_")
        assert tx["tx_id"].isdigit()
        assert set(lab) == {"tx_id", "is_fraud", "scenario"} and lab["tx_id"] == tx["tx_id"]
        assert lab["is_fraud"] in (0, 1)
        assert (lab["scenario"] is None) == (lab["is_fraud"] == 0)
        assert lab["scenario"] is None or lab["scenario"] in SCENARIOS
    start = dt.datetime(2018, 4, 1, tzinfo=dt.UTC).timestamp() * 1000
    assert start <= times[0] and times[-1] < start + SMALL["days"] * 86400000


def test_written_files_match_generate(small, tmp_path):
    p = [tmp_path / name for name in ("tx.jsonl", "lab.jsonl", "fb.jsonl")]
    n = foreign_sim.write(*p, **SMALL)
    txs, labels = small
    assert n == len(txs)
    assert [json.loads(line) for line in p[0].read_text().splitlines()] == txs
    assert [json.loads(line) for line in p[1].read_text().splitlines()] == labels
    fb = [json.loads(line) for line in p[2].read_text().splitlines()]
    assert fb == foreign_sim.feedback_records(txs, labels)
    assert len(fb) == sum(lab["is_fraud"] for lab in labels)
    assert [r["reported_at"] for r in fb] == sorted(r["reported_at"] for r in fb)
    for r in fb:
        assert set(r) == {"tx_id", "card_id", "merchant_id", "event_time", "reported_at"}
        assert r["reported_at"] == r["event_time"] + 7 * 86400000
    # byte-level: the fast writer produces exactly what json.dumps would
    assert p[0].read_text() == "".join(foreign_sim._dump(t) for t in txs)


def test_malformed_lines_are_malformed():
    lines = foreign_sim.malformed_lines()
    assert len(lines) == 10 and len(set(lines)) == 10
    reasons = [spec_error(line) for line in lines]
    assert None not in reasons
    assert reasons == [
        "not json",
        "not json",
        "not an object",
        "missing tx_id",
        "missing card_id",
        "amount not a number",
        "amount negative",
        "amount not finite",
        "event_time unparseable",
        "event_time wrong type",
    ]
    # the truncated line really is a prefix-style truncation of an object
    assert lines[1].startswith("{") and not lines[1].rstrip().endswith("}")


def test_mid_size_fraud_rate():
    cols = foreign_sim.simulate(n_customers=600, n_terminals=1200, days=60, seed=0)
    n = len(cols["tx_id"])
    assert 40_000 < n < 100_000
    rate = cols["is_fraud"].mean()
    assert 0.002 < rate < 0.015, rate
    sc = Counter(cols["scenario"].tolist())
    assert sc[1] and sc[2] and sc[3]
    # every amount > 220 is fraud (scenario 3 may have pushed amounts above 220 too)
    assert cols["is_fraud"][cols["amount"] > 220].all()
    assert (cols["amount"] >= 0).all()


def test_cli(tmp_path):
    tx, lab, fb = (tmp_path / n for n in ("tx.jsonl", "lab.jsonl", "fb.jsonl"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.foreign_sim",
            "--out",
            str(tx),
            "--labels",
            str(lab),
            "--feedback",
            str(fb),
            "--customers",
            "60",
            "--terminals",
            "150",
            "--days",
            "10",
            "--seed",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    txs, labels = foreign_sim.generate(**SMALL)
    assert tx.read_text() == "".join(foreign_sim._dump(t) for t in txs)
    assert lab.read_text() == "".join(foreign_sim._dump(lab_) for lab_ in labels)
    assert fb.exists()
