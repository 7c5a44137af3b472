"""`fraud explain --decisions D --tx-id T`: why one payment was decided as it was."""

from __future__ import annotations

import typer

from fraud.cli.checks import _need_file
from fraud.cli.options import RulesFile
from fraud.errors import UserError
from fraud.settings.pipeline import DEFAULT_RULES


def explain(
    decisions: str = typer.Option(..., "--decisions", help="decisions JSON Lines (fraud detect's output)"),
    tx_id: str = typer.Option(..., "--tx-id", help="the transaction to explain"),
    rules: RulesFile = None,
) -> None:
    """Print a readable account of one decision: the rules that fired (described from the rules
    file) and the features that pushed the model's score up most, with their values."""
    from fraud.offline.explain import explain as account
    from fraud.offline.explain import find_decisions
    from fraud.scoring.rules import load_rules

    _need_file(decisions, "decisions file")
    ruleset = load_rules(rules or DEFAULT_RULES)
    found = list(find_decisions(decisions, tx_id))
    if not found:
        raise UserError(f"{decisions}: no decision for tx_id {tx_id!r}")
    print("\n\n".join(account(rec, ruleset) for rec in found))
