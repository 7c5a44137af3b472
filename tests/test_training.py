"""Training helpers: imbalance handling without sample weights, thresholds from validation scores."""

from __future__ import annotations

import numpy as np

from fraud.offline.training import _sample, pick_thresholds


def test_sample_repeats_frauds_and_keeps_every_legit_row_under_the_cap():
    y = np.array([0, 1, 0, 0, 1, 0])
    rows = _sample(y, seed=0, fraud_weight=3)
    assert sorted(rows.tolist()) == [0, 1, 1, 1, 2, 3, 4, 4, 4, 5]


def test_sample_caps_legit_rows_deterministically():
    y = np.zeros(1000, dtype=int)
    y[::100] = 1
    a = _sample(y, seed=5, fraud_weight=1, max_negatives=200)
    b = _sample(y, seed=5, fraud_weight=1, max_negatives=200)
    assert a.tolist() == b.tolist()
    assert int((y[a] == 0).sum()) == 200 and int((y[a] == 1).sum()) == 10
    assert len(set(a.tolist())) == len(a)


def test_block_threshold_reaches_the_precision_asked():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.02).astype(int)
    p = np.clip(0.7 * y + rng.random(5000) * 0.5, 0, 1)
    t = pick_thresholds(y, p, block_precision=0.9)
    flagged = p >= t["block"]
    assert y[flagged].mean() >= 0.9
    assert t["review"] <= t["block"]


def test_a_short_stream_with_reports_trains(tmp_path):
    """On 10 days, no fraud report is out yet in the training part (reports come a week later):
    the report-fed columns are dropped for it instead of failing the fit."""
    import json

    from fraud.offline.training import train
    from generator.simulate import SimConfig, write_files

    tx, labels, fb = (str(tmp_path / n) for n in ("tx.jsonl", "labels.jsonl", "fb.jsonl"))
    write_files(SimConfig(cards=500, days=10, seed=7), tx, labels, fb)
    card = train(tx, labels, str(tmp_path / "model"), feedback_path=fb)
    assert "merchant_days_since_known_fraud" in card["features_dropped_as_absent"]
    assert json.loads((tmp_path / "model" / "model_card.json").read_text())["training_data"]["feedback"]
