"""`fraud backtest`: what each rule would have done on a labelled stream, for tuning rules.

Replays the transactions through the real detector (same features, same watermark) with the
candidate rules, and counts per rule: hits, precision, recall, the frauds only it catches.
"""

from __future__ import annotations

from collections.abc import Callable

from fraud.core import window_kernel as K
from fraud.core.detector import DetectorSettings, open_detector, runs_of
from fraud.core.records import iter_transactions
from fraud.offline.evaluation import load_labels_full
from fraud.scoring.model import FastModel
from fraud.scoring.rules import RuleSet
from fraud.state.feedback import FeedbackIndex


def backtest(
    rules: RuleSet,
    tx_path: str,
    labels_path: str,
    model: FastModel | None = None,
    settings: DetectorSettings = DetectorSettings(),
    progress: Callable[[int], None] | None = None,
    feedback: FeedbackIndex | None = None,
) -> dict:
    labels = load_labels_full(labels_path)
    stats = {r.name: {"action": r.action, "hits": 0, "true_positives": 0, "only_catch": 0} for r in rules.rules}
    n = frauds = rules_block = rules_alert = final_block = final_alert = 0
    caught_block = caught_alert = 0
    rejected: list[int] = []
    with open_detector(rules=rules, model=model, settings=settings, feedback=feedback) as det:
        for run in runs_of(iter_transactions(tx_path, progress, rejected=rejected)):
            res = det.run(run)
            sev = res.out_i[:, K.O_SEV].tolist()
            dec = res.out_i[:, K.O_DEC].tolist()
            for k, tx in enumerate(run):
                label = labels.get(tx.tx_id)
                if label is None:
                    continue
                y = label[0]
                n += 1
                frauds += y
                rules_block += sev[k] == 2
                rules_alert += sev[k] >= 1
                final_block += dec[k] == 2
                final_alert += dec[k] != 0
                caught_block += y and dec[k] == 2
                caught_alert += y and dec[k] != 0
                fired = det.fired(res, k)
                for r in fired:
                    s = stats[r]
                    s["hits"] += 1
                    s["true_positives"] += y
                    if y and len(fired) == 1:
                        s["only_catch"] += 1
    for s in stats.values():
        s["precision"] = s["true_positives"] / s["hits"] if s["hits"] else None
        s["recall"] = s["true_positives"] / frauds if frauds else None
        s["hit_rate"] = s["hits"] / n if n else 0.0
    return {
        "transactions": n,
        "frauds": frauds,
        "model": model is not None,
        "invalid_records_skipped": len(rejected),
        "rules": stats,
        "rule_set": {
            "block_rate": rules_block / n if n else 0.0,
            "block_or_review_rate": rules_alert / n if n else 0.0,
        },
        "with_model": {
            "block_rate": final_block / n if n else 0.0,
            "block_or_review_rate": final_alert / n if n else 0.0,
            "block_recall": caught_block / frauds if frauds else None,
            "block_or_review_recall": caught_alert / frauds if frauds else None,
        },
    }


def format_backtest(b: dict) -> str:
    def pct(x):
        return "   n/a" if x is None else f"{100 * x:5.1f}%"

    skipped = b.get("invalid_records_skipped")
    lines = [
        f"transactions {b['transactions']:,} (labelled)  frauds {b['frauds']:,}"
        + (f"  ({skipped:,} invalid records skipped)" if skipped else ""),
        f"{'rule':<28} {'action':<7} {'hits':>7} {'hit rate':>8} {'precision':>9} {'recall':>7} {'only it':>7}",
    ]
    for name, s in b["rules"].items():
        lines.append(
            f"{name:<28} {s['action']:<7} {s['hits']:>7} {pct(s['hit_rate']):>8} "
            f"{pct(s['precision']):>9} {pct(s['recall']):>7} {s['only_catch']:>7}"
        )
    rs, wm = b["rule_set"], b["with_model"]
    lines.append(
        f"rule set alone: block rate {pct(rs['block_rate'])}, block+review rate {pct(rs['block_or_review_rate'])}"
    )
    if b["model"]:
        lines.append(
            f"rules + model:  block rate {pct(wm['block_rate'])} (recall {pct(wm['block_recall'])}), "
            f"block+review rate {pct(wm['block_or_review_rate'])} (recall {pct(wm['block_or_review_recall'])})"
        )
    return "\n".join(lines)
