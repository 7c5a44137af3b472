"""`fraud rules check FILE`: a rules file validated before it goes live, and what it asks for."""

from __future__ import annotations

import typer

from fraud.cli.checks import _need_file

rules_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Rules files: check one before it goes live.")


@rules_app.command("check")
def check(file: str = typer.Argument(..., help="rules YAML to check")) -> None:
    """Validate a rules file (an error names the file, the rule and the field) and list its rules,
    the features they read and the sliding windows the detector will keep for them."""
    from fraud.scoring.features import parse_window
    from fraud.scoring.rules import load_rules

    _need_file(file, "rules file")
    rules = load_rules(file)
    print(f"{file}: valid, {len(rules.rules)} rule(s)")
    for r in rules.rules:
        print(f"  {r.name:<28} {r.action:<7} reads {', '.join(r.features)}")
    if rules.thresholds:
        print("thresholds: " + ", ".join(f"{k} {v:g}" for k, v in sorted(rules.thresholds.items())))
    windows: dict[int, tuple[str, list[str]]] = {}  # by length: its name as written, its aggregates
    others = []
    for f in rules.features:
        w = parse_window(f)
        if w is None:
            others.append(f)
        else:
            windows.setdefault(w[1], (f.rsplit("_", 1)[1], []))[1].append(w[0])
    if windows:
        print(
            "sliding windows: "
            + "; ".join(f"{name} ({', '.join(aggs)})" for _, (name, aggs) in sorted(windows.items()))
        )
    if others:
        print(f"other features: {', '.join(others)}")
