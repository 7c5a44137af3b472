"""Detection quality under the fraud-detection handbook's protocol, on the independent simulator
in tests/foreign_sim.py: weeks of unlabelled history, 7 days of labelled training transactions,
7 days of delay, 7 days of test; confirmed frauds known 7 days after they happen (feedback).

    .venv/bin/python scripts/handbook_protocol.py [--customers 1500] [--terminals 3000] [--seed 0]

Prints ROC AUC, average precision and card precision@100 on the test week (cards already reported
as compromised before a day are excluded from that day's CP@100, as in the handbook).
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1500)
    ap.add_argument("--terminals", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--history-days", type=int, default=35)
    args = ap.parse_args()
    import foreign_sim
    from sklearn.metrics import average_precision_score, roc_auc_score

    from fraud.evaluation import card_precision_at_k

    fraud = str(Path(sys.executable).with_name("fraud"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        days = args.history_days + 21
        foreign_sim.write(str(d / "tx.jsonl"), str(d / "labels_all.jsonl"), str(d / "feedback.jsonl"),
                          n_customers=args.customers, n_terminals=args.terminals, days=days, seed=args.seed)
        txs = [orjson.loads(line) for line in open(d / "tx.jsonl", "rb")]
        t0 = min(t["event_time"] for t in txs) // DAY * DAY
        train_lo, train_hi = t0 + args.history_days * DAY, t0 + (args.history_days + 7) * DAY
        test_lo, test_hi = train_hi + 7 * DAY, train_hi + 14 * DAY
        labels = {r["tx_id"]: r for r in map(orjson.loads, open(d / "labels_all.jsonl", "rb"))}
        when = {t["tx_id"]: t["event_time"] for t in txs}
        with open(d / "labels_train.jsonl", "wb") as f:
            for tx_id, r in labels.items():
                if train_lo <= when[tx_id] < train_hi:
                    f.write(orjson.dumps(r) + b"\n")
        # Training sees the stream up to the end of the training week only.
        with open(d / "tx_train.jsonl", "wb") as f:
            for t in txs:
                if t["event_time"] < train_hi:
                    f.write(orjson.dumps(t) + b"\n")
        subprocess.run([fraud, "train", "--transactions", str(d / "tx_train.jsonl"), "--labels",
                        str(d / "labels_train.jsonl"), "--model", str(d / "model"), "--warmup-days", "0",
                        "--feedback", str(d / "feedback.jsonl")], check=True)
        subprocess.run([fraud, "detect", "--input", str(d / "tx.jsonl"), "--output", str(d / "dec.jsonl"),
                        "--model", str(d / "model"), "--feedback", str(d / "feedback.jsonl")], check=True)
        reported: dict[str, int] = {}
        for r in map(orjson.loads, open(d / "feedback.jsonl", "rb")):
            reported[r["card_id"]] = min(reported.get(r["card_id"], 1 << 62), r["reported_at"])
        ys, ss, days_, cards = [], [], [], []
        for dec in map(orjson.loads, open(d / "dec.jsonl", "rb")):
            t = when[dec["tx_id"]]
            if test_lo <= t < test_hi:
                day = t // DAY
                if reported.get(dec["card_id"], 1 << 62) <= day * DAY:
                    continue  # a known compromised card: excluded, as in the handbook
                ys.append(labels[dec["tx_id"]]["is_fraud"])
                ss.append(dec["score"])
                days_.append(day)
                cards.append(dec["card_id"])
        y, s = np.array(ys), np.array(ss)
        print(f"test week: {len(y):,} transactions, {int(y.sum())} frauds")
        print(f"ROC AUC {roc_auc_score(y, s):.3f}  AP {average_precision_score(y, s):.3f}  "
              f"CP@100 {card_precision_at_k(np.array(days_), cards, s, y):.3f}")


if __name__ == "__main__":
    main()
