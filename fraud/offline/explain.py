"""`fraud explain`: one decision told in words, from its record's `reasons` (SPEC 1)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from fraud.errors import UserError
from fraud.scoring.rules import RuleSet


def find_decisions(path: str, tx_id: str) -> Iterator[dict]:
    """Every decision of `tx_id` in a decisions file (a retried payment has more than one)."""
    needle = orjson.dumps(tx_id)
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if needle not in line:  # cheap: most lines are other payments
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UserError(f"{path}: line {line_no} is not a JSON decision record") from None
            if isinstance(rec, dict) and rec.get("tx_id") == tx_id:
                yield rec


def _number(x: object) -> str:
    if x is None:
        return "missing"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.4g}" if isinstance(x, float) else str(x)


def explain(rec: dict, rules: RuleSet | None = None) -> str:
    """A readable account of one decision record."""
    lines = [
        f"transaction {rec.get('tx_id')}  card {rec.get('card_id')}  at {rec.get('event_time')}",
        f"decision: {str(rec.get('decision', '?')).upper()}  score {rec.get('score')}"
        + (f"  (model {rec['model_score']})" if rec.get("model_score") is not None else "  (rules only)")
        + (f"  rules version {rec['rules_version']}" if rec.get("rules_version") else ""),
    ]
    if rec.get("repeat"):
        lines.append("a repeat: decided as the first transaction with this id, merchant and amount")
    if rec.get("late"):
        lines.append("late: it arrived behind the watermark")
    reasons = rec.get("reasons")
    if reasons is None:
        lines.append(
            "no reasons recorded: they are written for review and block decisions"
            if rec.get("decision") == "allow"
            else "no reasons recorded: the decisions were written before reasons existed"
        )
        return "\n".join(lines)
    if not isinstance(reasons, dict):
        raise UserError(f"decision {rec.get('tx_id')!r}: 'reasons' is not an object")
    described = {r.name: r for r in rules.rules} if rules is not None else {}
    if rules is not None and rec.get("rules_version") and rec["rules_version"] != rules.version:
        lines.append(
            f"(decided by rules version {rec['rules_version']}; the descriptions below are from {rules.source}, "
            f"version {rules.version}: pass the rules file of that version with --rules)"
        )
    fired = reasons.get("rules") or []
    if fired:
        lines.append("rules fired:")
        for name in fired:
            r = described.get(name)
            lines.append(f"  {name}" + (f" ({r.action}): {r.description}" if r is not None else ""))
    else:
        lines.append("rules fired: none")
    feats = reasons.get("features") or []
    if reasons.get("model_base") is None:
        lines.append("model: none (rules only)")
    else:
        lines.append(
            f"model: {rec.get('model_score')} = base {reasons['model_base']} (its score before reading any "
            "feature) + each feature's push; the largest pushes up:"
        )
        for f in feats:
            try:
                lines.append(f"  +{float(f['contribution']):.4f}  {f['feature']} = {_number(f.get('value'))}")
            except (KeyError, TypeError, ValueError):
                raise UserError(f"decision {rec.get('tx_id')!r}: a reason lacks feature or contribution") from None
        if not feats:
            lines.append("  none: no feature pushed the score above the base")
    return "\n".join(lines)
