"""`fraud backtest`: what each rule would have done on a labelled stream, for tuning rules.

Replays the transactions through the real detector (same features, same watermark) with the
candidate rules, and counts per rule: hits, precision, recall, the frauds only it catches; and for
the rule set, alone and with the model: block rates, the fraud money its blocks stop and the good
customers they turn away. Several rules files are shown side by side (`format_side_by_side`).
"""

from __future__ import annotations

from collections.abc import Callable

from fraud.core import window_kernel as K
from fraud.core.detector import DetectorSettings
from fraud.offline.decode_ahead import replaying
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
    money = {"rule_set": _Money(), "with_model": _Money()}
    rejected: list[int] = []
    detector = dict(rules=rules, model=model, settings=settings, feedback=feedback)
    with replaying(tx_path, progress, rejected, **detector) as (det, runs):
        for run in runs:
            res = det.run(run)
            sev = res.out_i[:, K.O_SEV].tolist()
            dec = res.out_i[:, K.O_DEC].tolist()
            repeat = res.out_i[:, K.O_REPEAT].tolist()
            for k, tx in enumerate(run):
                label = labels.get(tx.tx_id)
                if label is None or repeat[k]:  # a repeat is counted once, on its first decision
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
                if sev[k] == 2:
                    money["rule_set"].blocked(y, tx)
                if dec[k] == 2:
                    money["with_model"].blocked(y, tx)
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
            **money["rule_set"].figures(),
        },
        "with_model": {
            **money["with_model"].figures(),
            "block_rate": final_block / n if n else 0.0,
            "block_or_review_rate": final_alert / n if n else 0.0,
            "block_recall": caught_block / frauds if frauds else None,
            "block_or_review_recall": caught_alert / frauds if frauds else None,
        },
    }


class _Money:
    """What blocks are worth: fraud amounts stopped, genuine payments and customers turned away."""

    def __init__(self) -> None:
        self.fraud_amount = self.genuine_amount = 0.0
        self.genuine = 0
        self.genuine_cards: set[str] = set()

    def blocked(self, is_fraud: int, tx) -> None:
        if is_fraud:
            self.fraud_amount += tx.amount
        else:
            self.genuine += 1
            self.genuine_amount += tx.amount
            self.genuine_cards.add(tx.card_id)

    def figures(self) -> dict:
        return {
            "fraud_amount_blocked": round(self.fraud_amount, 2),
            "genuine_blocked": self.genuine,
            "genuine_amount_blocked": round(self.genuine_amount, 2),
            "genuine_cards_blocked": len(self.genuine_cards),
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
        f"rule set alone: block rate {pct(rs['block_rate'])}, block+review rate {pct(rs['block_or_review_rate'])}; "
        + _money(rs)
    )
    if b["model"]:
        lines.append(
            f"rules + model:  block rate {pct(wm['block_rate'])} (recall {pct(wm['block_recall'])}), "
            f"block+review rate {pct(wm['block_or_review_rate'])} (recall {pct(wm['block_or_review_recall'])}); "
            + _money(wm)
        )
    return "\n".join(lines)


def _money(m: dict) -> str:
    return (
        f"fraud stopped {m['fraud_amount_blocked']:,.2f}, good payments blocked {m['genuine_blocked']:,} "
        f"({m['genuine_amount_blocked']:,.2f}, {m['genuine_cards_blocked']:,} customers)"
    )


def format_side_by_side(results: dict[str, dict]) -> str:
    """Several rules files on the same stream, one column per file."""

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    files = list(results)
    width = max(18, *(len(f) for f in files))
    first = next(iter(results.values()))
    lines = [
        f"transactions {first['transactions']:,} (labelled)  frauds {first['frauds']:,}; per rule: hits, precision, recall",
        f"{'':<28} " + " ".join(f"{f:>{width}}" for f in files),
    ]
    names = list(dict.fromkeys(name for r in results.values() for name in r["rules"]))
    for name in names:
        cells = []
        for r in results.values():
            s = r["rules"].get(name)
            cells.append(
                "-" if s is None else f"{s['action'][0]} {s['hits']:,} {pct(s['precision'])} {pct(s['recall'])}"
            )
        lines.append(f"{name:<28} " + " ".join(f"{c:>{width}}" for c in cells))
    parts = [("rule set alone", "rule_set")] + ([("rules + model", "with_model")] if first["model"] else [])
    for title, key in parts:
        lines.append(title)
        for label, field, fmt in (
            ("  block rate", "block_rate", pct),
            ("  block+review rate", "block_or_review_rate", pct),
            ("  fraud stopped", "fraud_amount_blocked", lambda v: f"{v:,.2f}"),
            ("  good payments blocked", "genuine_blocked", lambda v: f"{v:,}"),
            ("  good customers blocked", "genuine_cards_blocked", lambda v: f"{v:,}"),
        ):
            lines.append(f"{label:<28} " + " ".join(f"{fmt(r[key][field]):>{width}}" for r in results.values()))
    return "\n".join(lines)
