"""`fraud detect`: embedded (files, stdin) or as a Kafka consumer-group worker."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer

from fraud.cli.checks import (
    _check_outputs,
    _detector_parts,
    _distinct_files,
    _load_feedback,
    _need_file,
    _one_mode,
    _run_id,
    _terminated,
    _warn_without_feedback,
)
from fraud.cli.options import ConfigFile, ModelDir, NoModel, RulesFile
from fraud.errors import UserError
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES, load_config


def detect(
    input: str | None = typer.Option(None, "--input", help="transactions JSON Lines, '-' for stdin"),
    output: str | None = typer.Option(None, "--output", help="decisions JSON Lines, '-' for stdout"),
    model: ModelDir = None,
    rules: RulesFile = None,
    feedback: str | None = typer.Option(
        None, "--feedback", help="confirmed fraud reports, effective from their reported_at"
    ),
    dead_letter: str | None = typer.Option(
        None,
        "--dead-letter",
        help="bad records (default: next to the output, *.rejected.jsonl; "
        "./rejected.jsonl when the output is stdout or a device)",
    ),
    state: str | None = typer.Option(
        None, "--state", help="RocksDB state directory: checkpoints, and resume after a stop"
    ),
    config: ConfigFile = None,
    no_model: NoModel = False,
    shadow_model: str | None = typer.Option(
        None,
        "--shadow-model",
        help="a challenger model directory: scores every transaction too (shadow_score), never decides",
    ),
    kafka: str | None = typer.Option(
        None,
        "--kafka",
        help="Kafka bootstrap servers: consumer-group mode "
        "('config': kafka.bootstrap of the pipeline config, or FRAUD_KAFKA_BOOTSTRAP)",
    ),
    group: str | None = typer.Option(None, "--group", help="Kafka consumer group"),
    input_topic: str | None = typer.Option(None, "--input-topic", help="Kafka input topic"),
    output_topic: str | None = typer.Option(None, "--output-topic", help="Kafka output topic"),
    feedback_topic: str | None = typer.Option(
        None, "--feedback-topic", help="Kafka: fraud reports topic (default from config; skipped if absent)"
    ),
    instance: str | None = typer.Option(
        None, "--instance", help="Kafka: this worker's name, unique in the group (default: host name)"
    ),
    stop_when_idle: float | None = typer.Option(
        None,
        "--stop-when-idle",
        min=0.0,
        help="Kafka: exit once drained: this worker has partitions, no input came for this many seconds, and the "
        "group has committed every partition of the input topic to its end",
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port)",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="address the metrics server listens on (0.0.0.0: all)"
    ),
) -> None:
    """Decide every transaction: block, review or allow (embedded, or on Kafka with --kafka)."""
    from fraud.core.detector import cannot_apply_live, open_detector
    from fraud.runners.embedded import default_dead_letter_path, run_file
    from fraud.runners.live_view import RunView, StatusLine
    from fraud.scoring.rules_watch import RulesWatch

    _one_mode(
        kafka,
        dict(
            group=group,
            input_topic=input_topic,
            output_topic=output_topic,
            feedback_topic=feedback_topic,
            instance=instance,
            stop_when_idle=stop_when_idle,
        ),
        dict(input=input, output=output, feedback=feedback, dead_letter=dead_letter),
    )
    if kafka:
        _detect_kafka(
            kafka,
            group,
            input_topic,
            output_topic,
            instance,
            stop_when_idle,
            model,
            rules,
            no_model,
            state,
            config,
            feedback_topic,
            metrics_port,
            metrics_host,
            shadow_model,
        )
        return
    if input is None or output is None:
        raise UserError("--input and --output are required (or --kafka)")
    _need_file(input, "input file")
    if feedback:
        _need_file(feedback, "feedback file")
    defaulted = dead_letter is None
    dead_letter = dead_letter or default_dead_letter_path(output)
    litter = defaulted and dead_letter == "rejected.jsonl" and not state
    _distinct_files(
        input=input,
        feedback=feedback,
        rules=rules,
        config=config,
        model=str(Path(model) / "model.json") if model else None,
        output=output,
        dead_letter=dead_letter,
    )
    _check_outputs(output=output, dead_letter=dead_letter)
    cfg = load_config(config)
    rule_set, fast = _detector_parts(model, rules, no_model)
    shadow = _shadow(shadow_model)
    reports = _load_feedback(feedback)
    if reports is None:
        _warn_without_feedback(fast, model, "--feedback")
    run_id = _run_id(
        str(Path(model or DEFAULT_MODEL) / "model.json") if fast else None,
        str(rules or DEFAULT_RULES),
        cfg.detector,
        feedback,
        str(Path(shadow_model) / "model.json") if shadow_model else None,
    )
    signal.signal(signal.SIGTERM, _terminated)  # like Ctrl-C: outputs flushed, temporary state removed
    with open_detector(
        state, cfg.cache_cards, rules=rule_set, model=fast, settings=cfg.detector, feedback=reports, shadow=shadow
    ) as det:
        total = Path(input).stat().st_size if input != "-" else None
        watch = (
            RulesWatch(rules or DEFAULT_RULES, rule_set, _say, lambda new: cannot_apply_live(det, new))
            if rule_set is not None
            else None
        )
        metrics = _metrics(metrics_port, metrics_host, "embedded", kafka=False)
        terminal = sys.stderr.isatty()  # the live status line there, in place of a progress bar
        view = RunView(StatusLine(terminal), metrics, total)
        try:
            stats = run_file(
                det,
                input,
                output,
                dead_letter,
                checkpoint_every=cfg.checkpoint_every,
                checkpoint_interval_ms=cfg.checkpoint_interval_ms,
                run_id=run_id,
                run_max=cfg.run_max,
                rules_watch=watch,
                view=view if view.enabled else None,
            )
        finally:
            if metrics is not None:
                metrics.close()
    if state and input == "-":
        print(
            "fraud: warning: --state with stdin: nothing was checkpointed, a rerun cannot resume (a pipe "
            "cannot be rewound)",
            file=sys.stderr,
        )
    if litter and not stats.dead_letters and os.path.getsize(dead_letter) == 0:
        os.unlink(dead_letter)  # output to stdout or a device: no empty file left in the working directory
    if stats.resumed_from_line:
        if stats.records or stats.dead_letters:
            print(f"resumed from the checkpoint in {state} at line {stats.resumed_from_line:,}", file=sys.stderr)
        else:
            print(
                f"nothing left to decide: the checkpoint in {state} is at the end of {input} (line "
                f"{stats.resumed_from_line:,}); use an empty --state directory to decide it again",
                file=sys.stderr,
            )
            return
    pct = stats.latencies_ms.percentiles((50, 99)) or {"p50": 0.0, "p99": 0.0}
    d = stats.decisions
    print(
        f"decided {stats.records:,} transactions in {stats.seconds:.1f}s ({stats.throughput:,.0f}/s): "
        f"block {d['block']:,}, review {d['review']:,}, allow {d['allow']:,}; late {stats.late:,}; "
        f"dead letters {stats.dead_letters:,}{f' (in {dead_letter})' if stats.dead_letters else ''}; latency p50 {pct['p50']:.3f} ms, p99 {pct['p99']:.3f} ms",
        file=sys.stderr,
    )


def _metrics(port: int | None, host: str, instance: str, kafka: bool):
    """The Prometheus endpoint of --metrics-port, or None."""
    if port is None:
        return None
    from fraud.runners.metrics import WorkerMetrics

    metrics = WorkerMetrics(port, host, instance=instance, kafka=kafka)
    print(f"metrics on http://{host}:{metrics.port}/metrics", file=sys.stderr, flush=True)
    return metrics


def _shadow(directory: str | None):
    """The challenger model of --shadow-model, or None."""
    if directory is None:
        return None
    from fraud.scoring.model import load_model

    try:
        return load_model(directory)
    except UserError as exc:
        raise UserError(f"--shadow-model: {exc}") from None


def _say(msg: str) -> None:
    """A log line; on a terminal it first clears the live status line, which has no newline."""
    clear = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{clear}fraud detect: {msg}", file=sys.stderr, flush=True)


def _detect_kafka(
    bootstrap,
    group,
    input_topic,
    output_topic,
    instance,
    stop_when_idle,
    model,
    rules,
    no_model,
    state,
    config,
    feedback_topic,
    metrics_port,
    metrics_host,
    shadow_model,
) -> None:
    from fraud.runners.kafka.admin import ensure_topics, topic_partitions, wait_reachable
    from fraud.runners.kafka.worker import KafkaRunner
    from fraud.settings.kafka import kafka_settings
    from fraud.settings.pipeline import KAFKA_STATE_DIR

    cfg = load_config(config)
    settings = kafka_settings(cfg.kafka, cfg.source, bootstrap=bootstrap)
    if group:
        settings.group = group
    stop = {"now": False}

    def stopping(signum=None, frame=None) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        reachable = wait_reachable(
            settings, lambda: stop["now"], lambda msg: print(f"fraud detect: {msg}", file=sys.stderr)
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not reachable:
        print("fraud detect: stopped before Kafka answered; nothing was decided", file=sys.stderr)
        return
    source = input_topic or settings.topics["transactions"]
    partitions = topic_partitions(settings, source)
    if not partitions:
        raise UserError(
            f"Kafka topic {source!r} does not exist at {settings.bootstrap} "
            "(produce to it first, e.g. fraud simulate --kafka)"
        )
    ensure_topics(
        settings,
        {output_topic or settings.topics["decisions"]: partitions, settings.topics["dead_letters"]: partitions},
    )
    rule_set, fast = _detector_parts(model, rules, no_model)
    shadow = _shadow(shadow_model)
    fb_topic = feedback_topic or settings.topics["feedback"]
    if not topic_partitions(settings, fb_topic):
        _warn_without_feedback(fast, model, f"the feedback topic ({fb_topic!r} does not exist)")
        fb_topic = None
    runner = KafkaRunner(
        settings,
        cfg,
        rule_set,
        fast,
        state or KAFKA_STATE_DIR,
        instance=instance,
        input_topic=input_topic,
        output_topic=output_topic,
        stop_when_idle=stop_when_idle,
        feedback_topic=fb_topic,
    )
    runner.shadow = shadow
    if rule_set is not None:
        from fraud.scoring.rules_watch import RulesWatch

        runner.rules_watch = RulesWatch(
            rules or DEFAULT_RULES, rule_set, _say, lambda new: runner.tables.cannot_serve(new.features)
        )
    runner.metrics = _metrics(metrics_port, metrics_host, runner.instance, kafka=True)
    try:
        counts = runner.run()
    finally:
        if runner.metrics is not None:
            runner.metrics.close()
    print(
        f"stopped: block {counts['block']:,}, review {counts['review']:,}, allow {counts['allow']:,}, "
        f"dead letters {counts['dead_letters']:,}, replayed {counts['replayed']:,}",
        file=sys.stderr,
    )
