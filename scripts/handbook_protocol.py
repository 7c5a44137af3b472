"""Detection quality under the fraud-detection handbook's protocol, on the independent simulator
in tests/foreign_sim.py: weeks of unlabelled history, 7 days of labelled training transactions,
7 days of delay, 7 days of test; confirmed frauds known 7 days after they happen (feedback).

    .venv/bin/python scripts/handbook_protocol.py [--customers 1500] [--terminals 3000] [--seed 0]
        [--simulator handbook|fraudstream] [--fraud-rate 0.0075] [--workdir DIR]

With `--simulator fraudstream` the same protocol runs on our own simulator (`--customers` cards,
its five scenarios, late arrivals), for out-of-time figures on a second, different kind of stream.

Prints ROC AUC, average precision and card precision@100 on the test week, computed as the handbook's
code does (equal scores aside: we break card ties by card id, its pandas sort arbitrarily): on test day T, cards with a fraud between the start of training and day T - 8 (known
through the delay) are left out, and card precision@100 removes a defrauded card from the following
days' rankings once a day's top 100 has caught it (also printed without that removal). For
fraudstream and, on the same data and split, for the handbook's baseline: a random forest on its standard features (card count and
average amount over 1, 7, 30 days; terminal transaction count and fraud rate over 1, 7, 30 days
taken with the 7-day delay).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DAY = 86_400_000


def _windowed(group: np.ndarray, t: np.ndarray, values: np.ndarray, window: int, lag: int = 0):
    """Per row: count and sum of `values` over the same group's rows with time in (t-lag-window, t-lag]."""
    span = int(t.max() - t.min()) + 2 * (window + lag) + 1
    key = group.astype(np.int64) * span + (t - t.min() + window + lag)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    csum = np.concatenate([[0.0], np.cumsum(values[order])])
    hi = np.searchsorted(sk, key - lag, side="right")
    lo = np.searchsorted(sk, key - lag - window, side="right")
    return (hi - lo).astype(float), csum[hi] - csum[lo]


def baseline_features(txs: list[dict], y: np.ndarray) -> np.ndarray:
    """The handbook's standard features, computed exactly on event time."""
    t = np.array([r["event_time"] for r in txs], dtype=np.int64)
    amount = np.array([r["amount"] for r in txs])
    card = np.unique([r["card_id"] for r in txs], return_inverse=True)[1]
    term = np.unique([r["merchant_id"] for r in txs], return_inverse=True)[1]
    secs = (t // 1000) % 86_400
    weekday = ((t // DAY) + 3) % 7  # 1970-01-01 was a Thursday
    cols = [amount, (weekday >= 5).astype(float), (secs <= 6 * 3600).astype(float)]
    for w in (1, 7, 30):
        n, total = _windowed(card, t, amount, w * DAY)
        cols += [n, total / np.maximum(n, 1)]
    for w in (1, 7, 30):
        n, frauds = _windowed(term, t, y.astype(float), w * DAY, lag=7 * DAY)
        cols += [n, frauds / np.maximum(n, 1)]
    return np.column_stack(cols)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1500)
    ap.add_argument("--terminals", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--history-days", type=int, default=35)
    ap.add_argument("--workdir", help="keep the generated data, model and decisions here")
    ap.add_argument(
        "--simulator",
        choices=["handbook", "fraudstream"],
        default="handbook",
        help="handbook: tests/foreign_sim.py; fraudstream: our own simulator (--customers cards)",
    )
    ap.add_argument("--fraud-rate", type=float, default=0.0075, help="fraudstream simulator only")
    args = ap.parse_args()
    import foreign_sim
    from sklearn.metrics import average_precision_score, roc_auc_score

    from fraud.core.records import parse_time
    from fraud.offline.evaluation import card_precision_at_k

    fraud = str(Path(sys.executable).with_name("fraud"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.workdir or tmp)
        d.mkdir(parents=True, exist_ok=True)
        days = args.history_days + 21
        if args.simulator == "handbook":
            foreign_sim.write(
                str(d / "tx.jsonl"),
                str(d / "labels_all.jsonl"),
                str(d / "feedback.jsonl"),
                n_customers=args.customers,
                n_terminals=args.terminals,
                days=days,
                seed=args.seed,
            )
        else:
            from generator.simulate import SimConfig, write_files

            write_files(
                SimConfig(cards=args.customers, days=days, seed=args.seed, fraud_rate=args.fraud_rate),
                str(d / "tx.jsonl"),
                str(d / "labels_all.jsonl"),
                str(d / "feedback.jsonl"),
            )
        txs = [orjson.loads(line) for line in open(d / "tx.jsonl", "rb")]
        for t in txs:  # ISO strings or epoch ms: epoch ms from here on
            t["event_time"] = parse_time(t["event_time"])
        t0 = min(t["event_time"] for t in txs) // DAY * DAY
        train_lo, train_hi = t0 + args.history_days * DAY, t0 + (args.history_days + 7) * DAY
        test_lo, test_hi = train_hi + 7 * DAY, train_hi + 14 * DAY
        labels = {r["tx_id"]: r for r in map(orjson.loads, open(d / "labels_all.jsonl", "rb"))}
        when = {t["tx_id"]: t["event_time"] for t in txs}
        with open(d / "labels_train.jsonl", "wb") as f:
            for tx_id, r in labels.items():
                if tx_id in when and train_lo <= when[tx_id] < train_hi:
                    f.write(orjson.dumps(r) + b"\n")
        # Training sees the stream up to the end of the training week only.
        with open(d / "tx_train.jsonl", "wb") as f:
            for t in txs:
                if t["event_time"] < train_hi:
                    f.write(orjson.dumps(t) + b"\n")
        subprocess.run(
            [
                fraud,
                "train",
                "--transactions",
                str(d / "tx_train.jsonl"),
                "--labels",
                str(d / "labels_train.jsonl"),
                "--model",
                str(d / "model"),
                "--warmup-days",
                "0",
                "--feedback",
                str(d / "feedback.jsonl"),
            ],
            check=True,
        )
        subprocess.run(
            [
                fraud,
                "detect",
                "--input",
                str(d / "tx.jsonl"),
                "--output",
                str(d / "dec.jsonl"),
                "--model",
                str(d / "model"),
                "--feedback",
                str(d / "feedback.jsonl"),
            ],
            check=True,
        )
        # The handbook's test set (its get_train_test_set): on test day T, cards with a fraud on a day
        # from the start of training to T - 8 (known through the 7-day feedback delay) are left out.
        fraud_days: dict[str, list[int]] = {}
        for t in txs:
            if labels[t["tx_id"]]["is_fraud"] and t["event_time"] >= train_lo:
                fraud_days.setdefault(t["card_id"], []).append(t["event_time"] // DAY)

        def known(card: str, day: int) -> bool:
            return any(d <= day - 8 for d in fraud_days.get(card, ()))

        def report(label: str, y, scores, days, cards, note: str = "") -> None:
            sc, y, days = np.asarray(scores), np.asarray(y), np.asarray(days)
            print(
                f"{label} ROC AUC {roc_auc_score(y, sc):.3f}  AP {average_precision_score(y, sc):.3f}  "
                f"CP@100 {card_precision_at_k(days, cards, sc, y, remove_detected=True):.3f} "
                f"(without removing detected cards {card_precision_at_k(days, cards, sc, y):.3f}){note}"
            )

        ys, ss, ms, days_, cards = [], [], [], [], []
        for dec in map(orjson.loads, open(d / "dec.jsonl", "rb")):
            t = when[dec["tx_id"]]
            if test_lo <= t < test_hi and not known(dec["card_id"], t // DAY):
                ys.append(labels[dec["tx_id"]]["is_fraud"])
                ss.append(dec["score"])
                ms.append(dec["model_score"])
                days_.append(t // DAY)
                cards.append(dec["card_id"])
        print(f"test week: {len(ys):,} transactions, {int(sum(ys))} frauds")
        report("fraudstream   ", ys, ss, days_, cards)
        report("  model alone ", ys, ms, days_, cards, "  (decision score without rule lifts)")

        # The baseline, same data, same split, same exclusions.
        from sklearn.ensemble import RandomForestClassifier

        y_all = np.array([labels[r["tx_id"]]["is_fraud"] for r in txs])
        X = baseline_features(txs, y_all)
        t_all = np.array([r["event_time"] for r in txs])
        tr = (t_all >= train_lo) & (t_all < train_hi)
        rf = RandomForestClassifier(n_estimators=100, max_depth=20, random_state=0, n_jobs=-1)
        rf.fit(X[tr], y_all[tr])
        keep = np.array([test_lo <= t < test_hi and not known(r["card_id"], t // DAY) for t, r in zip(t_all, txs)])
        p = rf.predict_proba(X[keep])[:, 1]
        report("baseline RF   ", y_all[keep], p, t_all[keep] // DAY, [r["card_id"] for r, k in zip(txs, keep) if k])


if __name__ == "__main__":
    main()
