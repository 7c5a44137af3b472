"""`fraud evaluate`: ranking and decision metrics of a decisions file against labels.

Card precision@100 follows the fraud-detection handbook: per day, the share of truly defrauded cards
among the 100 cards with the highest score that day, averaged over days.

Per scenario (see `scenario_rates`), precision is one-vs-legitimate: the precision the detector would
have if that scenario were the only fraud.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import orjson

from fraud.core.latency import percentiles
from fraud.core.lines import iter_lines
from fraud.core.records import BadRecord, parse_time
from fraud.core.redact import mask_text
from fraud.core.units import DAY_MS
from fraud.errors import UserError


def _read_jsonl(path: str, what: str):
    for n, line in iter_lines(path, what):
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UserError(f"{path}: line {n} is not valid JSON") from None


def load_labels_full(path: str) -> dict[str, tuple[int, str | None]]:
    out = {}
    for rec in _read_jsonl(path, "labels"):
        try:
            is_fraud = int(rec["is_fraud"])
            if is_fraud not in (0, 1):
                raise ValueError
            out[rec["tx_id"]] = (is_fraud, rec.get("scenario"))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: label needs tx_id and is_fraud 0|1: {mask_text(str(rec)[:80])}") from None
    return out


def card_precision_at_k(
    days: np.ndarray, cards: list[str], scores: np.ndarray, y: np.ndarray, k: int = 100, remove_detected: bool = False
) -> float:
    """Mean over days of: share of defrauded cards among the k top-scored cards of the day.

    `remove_detected`: the handbook's `card_precision_top_k` as its notebooks call it: a defrauded card
    found in a day's top k counts as detected (an investigator confirms it and the card is blocked), so
    it leaves the ranking of the following days.
    """
    per_day: dict[int, dict[str, list]] = defaultdict(dict)
    for d, c, s, f in zip(days.tolist(), cards, scores.tolist(), y.tolist()):
        entry = per_day[d].get(c)
        if entry is None:
            per_day[d][c] = [s, f]
        else:
            if s > entry[0]:
                entry[0] = s
            if f:
                entry[1] = 1
    values = []
    detected: set[str] = set()
    for d in sorted(per_day):
        candidates = ((c, v) for c, v in per_day[d].items() if c not in detected)
        ranked = sorted(candidates, key=lambda kv: (-kv[1][0], kv[0]))[:k]
        hits = [c for c, v in ranked if v[1]]
        values.append(len(hits) / k)
        if remove_detected:
            detected.update(hits)
    return float(np.mean(values)) if values else float("nan")


def _rates(flag: np.ndarray, y: np.ndarray) -> dict:
    hits = int(flag.sum())
    tp = int((flag & (y == 1)).sum())
    frauds = int(y.sum())
    return {
        "rate": hits / len(y) if len(y) else 0.0,
        "precision": tp / hits if hits else None,
        "recall": tp / frauds if frauds else None,
        "alerts": hits,
        "true_positives": tp,
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def scenario_rates(flag: np.ndarray, in_scenario: np.ndarray, y: np.ndarray) -> dict:
    """How one fraud scenario fares under one flag (block, or block + review).

    n                 fraud transactions of the scenario
    flagged           of those, how many were flagged
    recall            flagged / n
    share_of_flagged  flagged / all flagged transactions: the part of the alerts this scenario explains
    precision         flagged / (flagged + flagged legitimate transactions): one-vs-legitimate precision,
                      the precision the detector would have if this scenario were the only fraud (frauds
                      of other scenarios are left out of the denominator)
    A ratio whose denominator is zero is None.
    """
    n = int(in_scenario.sum())
    hit = int((flag & in_scenario).sum())
    false_alarms = int((flag & (y == 0)).sum())
    return {
        "n": n,
        "flagged": hit,
        "recall": _ratio(hit, n),
        "share_of_flagged": _ratio(hit, int(flag.sum())),
        "precision": _ratio(hit, hit + false_alarms),
    }


def evaluate(decisions_path: str, labels_path: str, plots_dir: str | None = None) -> dict:
    """The metrics of SPEC's `fraud evaluate`; with `plots_dir`, its figures as PNGs there too
    (`plots.write_plots`; their paths under "plots")."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = load_labels_full(labels_path)
    scores, ys, days, cards, kinds, scen, lat = [], [], [], [], [], [], []
    champion, challenger = [], []  # model_score and shadow_score, when every labelled decision has both
    rule_hits: Counter[str] = Counter()
    rule_tp: Counter[str] = Counter()
    unlabelled = late = repeats = 0
    for d in _read_jsonl(decisions_path, "decisions"):
        lat.append(d.get("latency_ms", float("nan")))
        late += bool(d.get("late"))
        if d.get("repeat"):  # an upstream retry: its transaction is scored once, on its first decision
            repeats += 1
            continue
        label = labels.get(d.get("tx_id"))
        if label is None:
            unlabelled += 1
            continue
        try:
            day = parse_time(d["event_time"]) // DAY_MS
        except (BadRecord, KeyError):
            raise UserError(f"{decisions_path}: decision {d.get('tx_id')!r} has no valid event_time") from None
        try:
            scores.append(float(d["score"]))
            cards.append(str(d["card_id"]))
            kinds.append(str(d["decision"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"{decisions_path}: decision {d.get('tx_id')!r} lacks a valid score/card_id/decision"
            ) from None
        try:
            champion.append(float(d["score"] if d.get("model_score") is None else d["model_score"]))  # rules only
            challenger.append(None if d.get("shadow_score") is None else float(d["shadow_score"]))
        except (TypeError, ValueError):
            raise UserError(
                f"{decisions_path}: decision {d.get('tx_id')!r} has a non-numeric model or shadow score"
            ) from None
        ys.append(label[0])
        scen.append(label[1] if label[0] else None)
        days.append(day)
        for r in d.get("rules", ()):
            rule_hits[r] += 1
            rule_tp[r] += label[0]
    if not ys:
        raise UserError(f"{decisions_path}: no decision matches a label in {labels_path}")
    s = np.array(scores)
    y = np.array(ys, dtype=np.int64)
    kinds_a = np.array(kinds)
    both = 0 < y.sum() < len(y)
    block = kinds_a == "block"
    alert = block | (kinds_a == "review")
    per_scenario = {}
    for name in sorted({x for x in scen if x}):
        m = np.array([x == name for x in scen])
        per_scenario[name] = {
            "frauds": int(m.sum()),
            "recall_block": float(block[m].mean()),
            "recall_block_or_review": float(alert[m].mean()),
            "share_of_blocks": float((block & m).sum() / max(block.sum(), 1)),
            "block": scenario_rates(block, m, y),
            "block_or_review": scenario_rates(alert, m, y),
        }
    lat_a = np.array(lat, dtype=float)
    lat_a = lat_a[np.isfinite(lat_a)]
    pct = percentiles(lat_a, (50, 90, 99, 99.9))
    if len(lat_a):
        pct["max"] = float(lat_a.max())
    plots = []
    if plots_dir is not None:
        from fraud.offline.plots import write_plots

        plots = write_plots(plots_dir, y, s, lat_a)
    return {
        "plots": plots,
        "decisions": len(lat),
        "labelled": int(len(y)),
        "unlabelled": unlabelled,
        "frauds": int(y.sum()),
        "fraud_rate": float(y.mean()),
        "late": late,
        "repeats": repeats,
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "average_precision": float(average_precision_score(y, s)) if both else None,
        "card_precision_at_100": card_precision_at_k(np.array(days), cards, s, y),
        "card_precision_at_100_removing_detected": card_precision_at_k(
            np.array(days), cards, s, y, remove_detected=True
        ),
        "block": _rates(block, y),
        "block_or_review": _rates(alert, y),
        "decision_counts": {k: int((kinds_a == k).sum()) for k in ("allow", "review", "block")},
        "per_scenario": per_scenario,
        "rules": {r: {"hits": n, "precision": rule_tp[r] / n} for r, n in rule_hits.most_common()},
        "latency_ms": pct,
        "shadow": compare_models(y, champion, challenger, float(block.mean())),
    }


def compare_models(y: np.ndarray, champion: list, challenger: list, block_rate: float) -> dict | None:
    """Champion (`model_score`; `score` when deciding by rules only) against challenger (`shadow_score`, `fraud detect --shadow-model`) on
    the same labelled payments: ROC AUC, average precision, and the recall each would have blocking
    the same share of payments as the run did (its top scores). None without shadow scores."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if not challenger or any(c is None for c in challenger) or any(c is None for c in champion):
        return None
    both = 0 < y.sum() < len(y)
    top = round(block_rate * len(y))  # none blocked: no recall to compare
    out = {"block_rate": block_rate}
    for name, scores in (("champion", champion), ("challenger", challenger)):
        s = np.array(scores, dtype=float)
        caught = y[np.argsort(-s, kind="stable")[:top]].sum()
        out[name] = {
            "roc_auc": float(roc_auc_score(y, s)) if both else None,
            "average_precision": float(average_precision_score(y, s)) if both else None,
            "recall_at_block_rate": float(caught / y.sum()) if y.sum() and top else None,
        }
    return out


def format_report(m: dict) -> str:
    """Readable text report of `evaluate`'s result."""

    def pct(x):
        return "  n/a" if x is None else f"{100 * x:5.1f}%"

    def num(x, fmt=".4f"):
        return "n/a" if x is None else format(x, fmt)

    lines = [
        f"decisions {m['decisions']:,}  labelled {m['labelled']:,}  frauds {m['frauds']:,} "
        f"({100 * m['fraud_rate']:.2f}%)  late (behind the watermark) {m['late']:,}"
        + (f"  repeats (retries, not scored again) {m['repeats']:,}" if m.get("repeats") else ""),
        f"ROC AUC {num(m['roc_auc'])}   average precision {num(m['average_precision'])}   "
        f"card precision@100 {num(m['card_precision_at_100'])} "
        f"({num(m.get('card_precision_at_100_removing_detected'))} removing detected cards, as the handbook's code)",
    ]
    for name in ("block", "block_or_review"):
        r = m[name]
        lines.append(
            f"{name:<16} rate {pct(r['rate'])}  precision {pct(r['precision'])}  "
            f"recall {pct(r['recall'])}  ({r['alerts']:,} alerts)"
        )
    if m["per_scenario"]:
        lines.extend(_scenario_table(m["per_scenario"]))
    if m["rules"]:
        lines.append("top rules                      hits  precision")
        for name, r in list(m["rules"].items())[:8]:
            lines.append(f"  {name:<28} {r['hits']:>6}  {pct(r['precision'])}")
    if m.get("shadow"):
        sh = m["shadow"]
        lines.append(f"champion vs challenger (--shadow-model), recall when blocking the top {pct(sh['block_rate'])}:")
        for name in ("champion", "challenger"):
            r = sh[name]
            lines.append(
                f"  {name:<11} ROC AUC {num(r['roc_auc'])}  average precision {num(r['average_precision'])}  "
                f"recall {pct(r['recall_at_block_rate'])}"
            )
    if m["latency_ms"]:
        lat = m["latency_ms"]
        lines.append("latency ms  " + "  ".join(f"{k} {v:.3f}" for k, v in lat.items()))
    return "\n".join(lines)


def _scenario_table(per_scenario: dict) -> list[str]:
    """Per-scenario lines of the report: n, then recall, precision and share of alerts per flag."""

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    w = max(26, *(len(name) for name in per_scenario))
    keys = ("recall", "precision", "share_of_flagged")
    group = " ".join(f"{c:>9}" for c in ("recall", "precision", "share"))
    gw = len(group)
    lines = [
        "per scenario  (precision: flagged / (flagged + flagged legit), as if the only fraud; share: of all flagged)",
        f"  {'':<{w}} {'':>6}   {'-- block ':-<{gw}}   {'-- block+review ':-<{gw}}",
        f"  {'scenario':<{w}} {'n':>6}   {group}   {group}",
    ]
    for name, r in per_scenario.items():
        cells = ("   " + " ".join(f"{pct(r[flag][k]):>9}" for k in keys) for flag in ("block", "block_or_review"))
        lines.append(f"  {name:<{w}} {r['frauds']:>6}" + "".join(cells))
    return lines
