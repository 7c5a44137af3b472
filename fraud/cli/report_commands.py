"""`fraud evaluate`, `fraud backtest`, `fraud bench` and `fraud demo`: figures about a stream."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from fraud.cli.checks import (
    _check_outputs,
    _detector_parts,
    _distinct_files,
    _load_feedback,
    _need_file,
)
from fraud.cli.options import ConfigFile, JsonOut, ModelDir, NoModel, RulesFile
from fraud.errors import UserError
from fraud.settings.pipeline import DEMO_DIR, load_config


def evaluate(
    decisions: str = typer.Option(..., "--decisions", help="decisions JSON Lines"),
    labels: str = typer.Option(..., "--labels", help="labels JSON Lines"),
    json_out: JsonOut = None,
    plots: str | None = typer.Option(
        None, "--plots", help="also write PNG figures here (PR and ROC curves, scores, block rate, latency)"
    ),
) -> None:
    """Ranking and decision metrics: ROC AUC, AP, card precision@100, block precision/recall, latency."""
    from fraud.offline.evaluation import evaluate as run
    from fraud.offline.evaluation import format_report

    _need_file(decisions, "decisions file")
    _need_file(labels, "labels file")
    _distinct_files(decisions=decisions, labels=labels, json=json_out)
    _check_outputs(json=json_out)
    metrics = run(decisions, labels, plots)
    print(format_report(metrics))
    if metrics["plots"]:
        print(f"plots: {', '.join(metrics['plots'])}")
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))


def backtest(
    rules: list[str] = typer.Option(..., "--rules", help="rules YAML to try; repeat it to compare files side by side"),
    transactions: str = typer.Option(..., "--transactions", help="transactions JSON Lines"),
    labels: str = typer.Option(..., "--labels", help="labels JSON Lines"),
    model: ModelDir = None,
    no_model: NoModel = False,
    feedback: str | None = typer.Option(None, "--feedback", help="confirmed fraud reports, as for detect"),
    config: ConfigFile = None,
    json_out: JsonOut = None,
) -> None:
    """Per rule: hits, precision, recall; the block rate, fraud stopped and good customers blocked."""
    from fraud.cli.progress import progress_bar
    from fraud.offline.backtest import backtest as run
    from fraud.offline.backtest import format_backtest, format_side_by_side

    _need_file(transactions, "transactions file")
    _need_file(labels, "labels file")
    _distinct_files(
        transactions=transactions,
        labels=labels,
        **{f"rules{'' if k == 0 else k + 1}": r for k, r in enumerate(rules)},
        feedback=feedback,
        config=config,
        model=str(Path(model) / "model.json") if model else None,
        json=json_out,
    )
    _check_outputs(json=json_out)
    cfg = load_config(config)
    parts = [_detector_parts(model, r, no_model) for r in rules]  # every file checked before any replay
    reports = _load_feedback(feedback)
    results = {}
    for path, (rule_set, fast) in zip(rules, parts, strict=True):
        with progress_bar("backtest", None) as update:
            results[path] = run(rule_set, transactions, labels, fast, cfg.detector, progress=update, feedback=reports)
    result = results[rules[0]] if len(rules) == 1 else {"files": results}
    print(format_backtest(result) if len(rules) == 1 else format_side_by_side(results))
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


def bench(
    input: str | None = typer.Option(None, "--input", help="transactions to replay (default: simulate)"),
    cards: int = typer.Option(3000, "--cards", min=10, help="cards to simulate when no --input"),
    days: int = typer.Option(30, "--days", min=1, help="days to simulate when no --input"),
    model: ModelDir = None,
    rules: RulesFile = None,
    config: ConfigFile = None,
    json_out: JsonOut = None,
    kafka: str | None = typer.Option(
        None,
        "--kafka",
        help="measure drain throughput and end-to-end latency through this Kafka "
        "broker instead ('config': kafka.bootstrap of the pipeline config, "
        "or FRAUD_KAFKA_BOOTSTRAP)",
    ),
    rate: float = typer.Option(5000.0, "--rate", min=1.0, help="Kafka: transactions per second to produce"),
    quix: bool = typer.Option(
        True, "--quix/--no-quix", help="Kafka: also drain with a Quix Streams peer (installed for the bench once)"
    ),
    feedback: str | None = typer.Option(
        None, "--feedback", help="fraud reports for the full detector (default: the simulated ones; none with --input)"
    ),
    soak: int | None = typer.Option(
        None, "--soak", min=1_000_000, help="instead: a soak over this many synthetic transactions (memory, p99, disk)"
    ),
    soak_cards: int = typer.Option(1_000_000, "--soak-cards", min=1000, help="soak: cards"),
    soak_days: int = typer.Option(120, "--soak-days", min=1, help="soak: days of event time"),
    flood: int | None = typer.Option(
        None, "--flood", min=1000, help="instead: one card sending this many payments within a minute"
    ),
) -> None:
    """Throughput and latency percentiles, with a passthrough baseline measured in the same run."""
    import tempfile

    from fraud.offline.bench import format_bench, run_bench, startup_times

    cfg = load_config(config)
    _check_outputs(json=json_out)
    if kafka:
        if input is None:
            raise UserError("--kafka needs --input (the transactions to produce)")
        _need_file(input, "input file")
        from fraud.offline.kafka_bench import format_kafka_bench, run_kafka_bench
        from fraud.runners.kafka.admin import check_reachable
        from fraud.settings.kafka import kafka_settings

        settings = kafka_settings(cfg.kafka, cfg.source, bootstrap=kafka)
        check_reachable(settings)
        result = run_kafka_bench(settings, input, rate, quix=quix)
        print(format_kafka_bench(result, rate))
        if json_out:
            Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        return
    rule_set, fast = _detector_parts(model, rules, False)
    if soak or flood:
        from fraud.offline import stress_bench

        if soak:
            result = stress_bench.run_soak(
                soak,
                soak_cards,
                soak_days,
                rule_set,
                fast,
                cfg.detector,
                cfg.cache_cards,
                cfg.checkpoint_every,
                cfg.checkpoint_interval_ms,
                cfg.run_max,
            )
            print(stress_bench.format_soak(result))
        else:
            result = stress_bench.run_flood(flood, rule_set, fast, cfg.detector, cfg.run_max)
            print(stress_bench.format_flood(result))
        if json_out:
            Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        return
    with tempfile.TemporaryDirectory(prefix="fraud-bench-in-") as tmp:
        if input is None:
            from generator.simulate import SimConfig, write_files

            input = str(Path(tmp) / "tx.jsonl")
            feedback = feedback or str(Path(tmp) / "feedback.jsonl")
            write_files(SimConfig(cards=cards, days=days, seed=1), input, str(Path(tmp) / "labels.jsonl"), feedback)
        _need_file(input, "input file")
        if feedback:
            _need_file(feedback, "feedback file")
        n = sum(1 for _ in open(input, "rb"))
        rows = run_bench(
            input, rule_set, fast, cfg.detector, cfg.checkpoint_every, feedback, cfg.run_max, cfg.checkpoint_interval_ms
        )
    startup = startup_times()
    print(format_bench(rows, n, startup, cfg.run_max))
    if json_out:
        Path(json_out).write_bytes(orjson.dumps({"rows": rows, "startup_s": startup}, option=orjson.OPT_INDENT_2))


def demo(
    directory: str = typer.Option(str(DEMO_DIR), "--dir", help="where the demo writes its files"),
    cards: int = typer.Option(2000, "--cards", min=50, help="number of cardholders"),
    days: int = typer.Option(30, "--days", min=10, help="days of activity"),
    seed: int = typer.Option(7, "--seed", help="random seed"),
) -> None:
    """The whole story on one machine: simulate, train, detect, evaluate, and print a report."""
    from fraud.offline.demo import run_demo

    try:
        run_demo(directory, cards=cards, days=days, seed=seed)
    except ValueError as exc:  # a stream too small to train on
        raise UserError(f"{exc} (try more --cards or --days)") from None
