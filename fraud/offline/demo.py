"""`fraud demo`: simulate, train, detect and evaluate on one machine, then print a report.

Leaves behind, in the demo directory, everything `notebooks/results.ipynb` reads:
transactions.jsonl, labels.jsonl, feedback.jsonl, model/ (with model_card.json), decisions.jsonl,
metrics.json.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import orjson

from fraud.settings.pipeline import DEFAULT_RULES, load_config


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_demo(directory: str, cards: int = 2000, days: int = 30, seed: int = 7) -> dict:
    from fraud.cli.progress import progress_bar
    from fraud.core.detector import open_detector
    from fraud.offline.evaluation import evaluate, format_report
    from fraud.offline.training import train
    from fraud.runners.embedded import run_file
    from fraud.scoring.model import load_model
    from fraud.scoring.rules import load_rules
    from fraud.state.feedback import FeedbackIndex
    from generator.simulate import SimConfig, write_files

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tx, labels, fb = out / "transactions.jsonl", out / "labels.jsonl", out / "feedback.jsonl"
    model_dir, decisions = out / "model", out / "decisions.jsonl"
    cfg = load_config()
    timings = {}

    t0 = time.perf_counter()
    _say(f"[1/4] simulate {cards:,} cards x {days} days (seed {seed}) -> {tx}")
    with progress_bar("simulate", None) as update:
        sim = write_files(
            SimConfig(cards=cards, days=days, seed=seed), str(tx), str(labels), str(fb), progress=lambda d, t: update(d)
        )
    timings["simulate_s"] = time.perf_counter() - t0
    _say(
        f"      {sim['n_tx']:,} transactions, {sim['n_fraud']:,} frauds, {sim['n_late']:,} arriving "
        f"delayed, out of order ({timings['simulate_s']:.1f}s)"
    )

    t0 = time.perf_counter()
    _say(f"[2/4] train: replay through the detector, fit the tree ensemble -> {model_dir}")
    with progress_bar("train", None) as update:
        card = train(
            str(tx),
            str(labels),
            str(model_dir),
            settings=cfg.detector,
            progress=lambda stage, n: update(n),
            feedback_path=str(fb),
        )
    timings["train_s"] = time.perf_counter() - t0
    v = card["validation"]
    _say(
        f"      validation (last 20% in time): AUC {v.get('roc_auc')}, AP {v.get('average_precision')}, "
        f"thresholds {card['thresholds']} ({timings['train_s']:.1f}s)"
    )

    t0 = time.perf_counter()
    _say(f"[3/4] detect with {DEFAULT_RULES.name}, the new model and the fraud reports -> {decisions}")
    rules = load_rules(DEFAULT_RULES)
    model = load_model(model_dir)
    parts = dict(rules=rules, model=model, settings=cfg.detector, feedback=FeedbackIndex.from_file(fb))
    with open_detector(None, cfg.cache_cards, **parts) as det:
        with progress_bar("detect", tx.stat().st_size) as update:
            stats = run_file(
                det,
                str(tx),
                str(decisions),
                str(out / "decisions.rejected.jsonl"),
                checkpoint_every=cfg.checkpoint_every,
                checkpoint_interval_ms=cfg.checkpoint_interval_ms,
                progress=update,
                run_max=cfg.run_max,
            )
    timings["detect_s"] = time.perf_counter() - t0
    _say(f"      {stats.records:,} decisions at {stats.throughput:,.0f} tx/s ({timings['detect_s']:.1f}s)")

    t0 = time.perf_counter()
    _say("[4/4] evaluate")
    has_plots = importlib.util.find_spec("matplotlib") is not None  # the `plots` extra
    metrics = evaluate(str(decisions), str(labels), str(out / "plots") if has_plots else None)
    timings["evaluate_s"] = time.perf_counter() - t0
    metrics["throughput_tx_per_s"] = stats.throughput
    metrics["timings"] = timings
    (out / "metrics.json").write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))

    print()
    print("fraudstream demo report")
    print("=======================")
    print(format_report(metrics))
    print(f"throughput {stats.throughput:,.0f} tx/s (embedded, one process, RocksDB state)")
    print(f"files in {out}/ (`bin/fraud notebook` opens the notebooks on them)")
    if metrics["plots"]:
        print(f"figures in {out / 'plots'}/: {', '.join(Path(p).name for p in metrics['plots'])}")
    return metrics
