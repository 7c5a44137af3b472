"""`fraud simulate` and `fraud train`: make a stream, fit a model on it."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fraud.cli.checks import (
    _check_outputs,
    _distinct_files,
    _need_file,
    _one_mode,
)
from fraud.cli.options import ConfigFile
from fraud.errors import UserError
from fraud.settings.pipeline import load_config


def simulate(
    out: str | None = typer.Option(None, "--out", help="transactions JSON Lines file to write"),
    labels: str | None = typer.Option(None, "--labels", help="labels JSON Lines file to write"),
    feedback: str | None = typer.Option(None, "--feedback", help="also write confirmed fraud reports here"),
    cards: int = typer.Option(2000, "--cards", min=1, help="number of cardholders"),
    days: int = typer.Option(30, "--days", min=1, help="days of activity"),
    seed: int = typer.Option(7, "--seed", help="random seed: same seed, same bytes"),
    start: str = typer.Option("2026-01-01", "--start", help="first day (UTC), YYYY-MM-DD"),
    fraud_rate: float = typer.Option(
        0.0075,
        "--fraud-rate",
        min=0.0,
        max=0.5,
        help="target share of frauds (every scenario at least once, so tiny streams run over it)",
    ),
    late_share: float = typer.Option(
        0.02, "--late-share", min=0.0, max=1.0, help="share of events that arrive late / out of order"
    ),
    kafka: str | None = typer.Option(
        None,
        "--kafka",
        help="produce to Kafka at this bootstrap instead of files "
        "('config': kafka.bootstrap of the pipeline config, or FRAUD_KAFKA_BOOTSTRAP)",
    ),
    topic: str | None = typer.Option(None, "--topic", help="Kafka transactions topic (default from config)"),
    labels_topic: str | None = typer.Option(None, "--labels-topic", help="Kafka labels topic (default from config)"),
    feedback_topic: str | None = typer.Option(
        None, "--feedback-topic", help="Kafka fraud reports topic (default from config)"
    ),
    rate: float = typer.Option(0.0, "--rate", min=0.0, help="Kafka: transactions per second (0 = as fast as possible)"),
    partitions: int | None = typer.Option(
        None, "--partitions", min=1, help="Kafka: partitions of topics it creates (default 4)"
    ),
    config: str | None = typer.Option(None, "--config", help="pipeline settings YAML (Kafka section)"),
) -> None:
    """Write a seeded, labelled synthetic transaction stream (in arrival order), to files or Kafka."""
    from fraud.cli.progress import progress_bar
    from generator.simulate import SimConfig, write_files

    _one_mode(
        kafka,
        dict(
            topic=topic,
            labels_topic=labels_topic,
            feedback_topic=feedback_topic,
            rate=rate or None,
            partitions=partitions,
        ),
        dict(out=out, labels=labels, feedback=feedback),
    )
    cfg = SimConfig(cards=cards, days=days, seed=seed, start=start, fraud_rate=fraud_rate, late_share=late_share)
    try:
        cfg.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if kafka:
        from fraud.settings.kafka import kafka_settings
        from generator.kafka_sink import produce_stream

        settings = kafka_settings(load_config(config).kafka, "kafka settings", bootstrap=kafka)
        if partitions:
            settings.partitions = partitions
        for role, name in (("labels", labels_topic), ("feedback", feedback_topic)):
            if name:
                settings.topics[role] = name
        with progress_bar("produce", None) as update:
            stats = produce_stream(cfg, settings, rate=rate or None, topic=topic, progress=lambda d, t: update(d))
        print(
            f"produced {stats['n_tx']:,} transactions ({stats['rate_achieved']:,.0f}/s), "
            f"{stats['n_labels']:,} labels, {stats['n_feedback']:,} fraud reports to {settings.bootstrap}; "
            f"delivery errors {stats['delivery_errors']}",
            file=sys.stderr,
        )
        if stats["delivery_errors"]:
            raise UserError(f"{stats['delivery_errors']} messages were not delivered: {stats['error']}")
        return
    if not out or not labels:
        raise UserError("--out and --labels are required (or --kafka)")
    _distinct_files(out=out, labels=labels, feedback=feedback)
    _check_outputs(out=out, labels=labels, feedback=feedback)
    for path in (out, labels, feedback):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    with progress_bar("simulate", None) as update:
        stats = write_files(cfg, out, labels, feedback, progress=lambda d, t: update(d))
    print(
        f"wrote {stats['n_tx']:,} transactions ({stats['n_fraud']:,} fraud, "
        f"{stats['n_late']:,} delayed in arrival) to {out}; labels to {labels}"
        + (f"; {stats['n_feedback']:,} fraud reports to {feedback}" if feedback else ""),
        file=sys.stderr,
    )


def train(
    transactions: str = typer.Option(..., "--transactions", help="transactions JSON Lines (arrival order)"),
    labels: str = typer.Option(..., "--labels", help="labels JSON Lines"),
    model: str = typer.Option(..., "--model", help="directory to save the model and its card in"),
    feedback: str | None = typer.Option(
        None, "--feedback", help="confirmed fraud reports, effective from their reported_at"
    ),
    warmup_days: float = typer.Option(
        3.0, "--warmup-days", min=0.0, help="first days only build history, no training rows"
    ),
    config: ConfigFile = None,
) -> None:
    """Replay transactions through the detector, fit a model on the labelled ones, save it."""
    from fraud.cli.progress import progress_bar
    from fraud.offline.training import train as fit

    _need_file(transactions, "transactions file")
    _need_file(labels, "labels file")
    if feedback:
        _need_file(feedback, "feedback file")
    cfg = load_config(config)
    with progress_bar("train", None) as update:
        try:
            card = fit(
                transactions,
                labels,
                model,
                warmup_days=warmup_days,
                settings=cfg.detector,
                progress=lambda stage, n: update(n),
                feedback_path=feedback,
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
    data = card["training_data"]
    for n, what, path in (
        (data["invalid_records_skipped"], "invalid record(s)", transactions),
        (data["feedback_reports_skipped"], "invalid report(s)", feedback),
    ):
        if n:
            print(f"fraud: warning: {path}: {n:,} {what} skipped", file=sys.stderr)
    v = card["validation"]
    print(
        f"model saved to {model}: validation AUC {v.get('roc_auc')}, AP {v.get('average_precision')}, "
        f"thresholds {card['thresholds']}",
        file=sys.stderr,
    )
