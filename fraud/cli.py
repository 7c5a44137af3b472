"""The `fraud` command line (SPEC.md section 2). User errors print one line and exit non-zero."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import orjson
import typer

from .config import DEFAULT_MODEL, DEFAULT_RULES, DEMO_DIR, load_config
from .errors import UserError
from .redact import mask_text

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="fraudstream: real-time card-fraud detection (demo, simulate, train, detect, evaluate, backtest, bench).")


def _need_file(path: str, what: str) -> None:
    if path != "-" and not Path(path).is_file():
        raise UserError(f"{path}: {what} {'is a directory' if Path(path).is_dir() else 'not found'}")


def _file_key(path: str) -> object:
    """What makes two paths one file: device and inode for an existing regular file (so through a
    symlink or a hard link), the real path for one still to be written, None for a device or folder."""
    if not os.path.exists(path):
        return os.path.realpath(path)
    if not os.path.isfile(path):
        return None
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _distinct_files(**paths: Optional[str]) -> None:
    """Refuse to write over an input, or two outputs into one file (devices such as /dev/null and
    stdout '-' may repeat). Keyword names are the options (`dead_letter` for `--dead-letter`)."""
    seen: dict[object, str] = {}
    for name, path in paths.items():
        if not path or path == "-" or (key := _file_key(path)) is None:
            continue
        option = "--" + name.replace("_", "-")
        if key in seen:
            raise UserError(f"{option} and {seen[key]} are the same file: {path}")
        seen[key] = option


def _check_outputs(**paths: Optional[str]) -> None:
    """Before any work: an output is not a directory, and never one of the shipped files that
    commands read by default (config/, models/default/), even when the command does not read it now."""
    from .config import DEFAULT_CONFIG

    shipped = {_file_key(str(p)): p for p in [DEFAULT_CONFIG, DEFAULT_RULES, *DEFAULT_MODEL.glob("*")] if p.is_file()}
    for name, path in paths.items():
        if not path or path == "-":
            continue
        option = "--" + name.replace("_", "-")
        if os.path.isdir(path):
            raise UserError(f"{option} {path} is a directory, not a file")
        if os.path.isfile(path) and (hit := shipped.get(_file_key(path))):
            raise UserError(f"{option} {path} would overwrite the shipped {hit}")


def _one_mode(kafka: Optional[str], kafka_only: dict[str, object], file_only: dict[str, object]) -> None:
    """An option of the other mode is refused, never silently ignored (a forgotten --input next to
    --kafka would otherwise join a production consumer group)."""
    given = [name for name, value in (file_only if kafka else kafka_only).items()
             if value is not None and value is not False]
    if given:
        option = "--" + given[0].replace("_", "-")
        raise UserError(f"{option} is for files, not --kafka" if kafka else f"{option} needs --kafka")


class _Terminated(Exception):
    """SIGTERM, raised where the process is so that `finally` blocks run (the default kills it)."""


def _terminated(signum, frame) -> None:
    raise _Terminated


def _run_id(model_json: Optional[str], rules: str, settings: object, feedback: Optional[str]) -> str:
    """Fingerprint of what decides: a checkpoint taken under another one is not resumed."""
    import hashlib

    from .training import file_digest

    parts = [file_digest(p) if p and Path(p).is_file() else "" for p in (model_json, rules, feedback)]
    parts.append(repr(settings))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _load_feedback(path: Optional[str]):
    if not path:
        return None
    from .feedback import FeedbackIndex

    reports = FeedbackIndex.from_file(path)
    if reports.rejected:
        print(f"fraud: warning: {path}: {reports.rejected} invalid report(s) skipped", file=sys.stderr)
    return reports


def _warn_without_feedback(fast, model: Optional[str], source: str) -> None:
    """A model trained with fraud reports, served without them, sees no known fraud anywhere: its
    merchant fraud rates are empty and its scores are weaker than its model card says."""
    from .features import FEEDBACK_FEATURES

    if fast is None or not set(fast.features) & FEEDBACK_FEATURES:
        return
    model_dir = Path(model or DEFAULT_MODEL)
    try:
        trained_with = orjson.loads((model_dir / "model_card.json").read_bytes())["training_data"]["feedback"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return  # no readable card: nothing to say
    if trained_with:
        print(f"fraud: warning: the model in {model_dir} was trained with fraud reports ({trained_with}); "
              f"without {source} its merchant fraud rates and known-fraud features stay empty", file=sys.stderr)


def _detector_parts(model: Optional[str], rules: Optional[str], no_model: bool):
    from .model import load_model
    from .rules import load_rules

    if no_model and model:
        raise UserError("--model and --no-model exclude each other")
    rule_set = load_rules(rules or DEFAULT_RULES)
    fast = None
    if not no_model:
        model_dir = model or str(DEFAULT_MODEL)
        if model is None and not (Path(model_dir) / "model.json").exists():
            print(f"fraud: warning: no default model at {model_dir}; deciding with rules only",
                  file=sys.stderr)
        else:
            fast = load_model(model_dir)
    return rule_set, fast


@app.command()
def simulate(
    out: Optional[str] = typer.Option(None, "--out", help="transactions JSON Lines file to write"),
    labels: Optional[str] = typer.Option(None, "--labels", help="labels JSON Lines file to write"),
    feedback: Optional[str] = typer.Option(None, "--feedback", help="also write confirmed fraud reports here"),
    cards: int = typer.Option(2000, "--cards", min=1, help="number of cardholders"),
    days: int = typer.Option(30, "--days", min=1, help="days of activity"),
    seed: int = typer.Option(7, "--seed", help="random seed: same seed, same bytes"),
    start: str = typer.Option("2026-01-01", "--start", help="first day (UTC), YYYY-MM-DD"),
    fraud_rate: float = typer.Option(0.0075, "--fraud-rate", min=0.0, max=0.5,
                                    help="target share of frauds (every scenario at least once, so tiny streams run over it)"),
    late_share: float = typer.Option(0.02, "--late-share", min=0.0, max=1.0,
                                     help="share of events that arrive late / out of order"),
    kafka: Optional[str] = typer.Option(None, "--kafka", help="produce to Kafka at this bootstrap instead of files "
                                        "('config': kafka.bootstrap of the pipeline config, or FRAUD_KAFKA_BOOTSTRAP)"),
    topic: Optional[str] = typer.Option(None, "--topic", help="Kafka transactions topic (default from config)"),
    labels_topic: Optional[str] = typer.Option(None, "--labels-topic", help="Kafka labels topic (default from config)"),
    feedback_topic: Optional[str] = typer.Option(None, "--feedback-topic",
                                                 help="Kafka fraud reports topic (default from config)"),
    rate: float = typer.Option(0.0, "--rate", min=0.0, help="Kafka: transactions per second (0 = as fast as possible)"),
    partitions: Optional[int] = typer.Option(None, "--partitions", min=1,
                                             help="Kafka: partitions of topics it creates (default 4)"),
    config: Optional[str] = typer.Option(None, "--config", help="pipeline settings YAML (Kafka section)"),
) -> None:
    """Write a seeded, labelled synthetic transaction stream (in arrival order), to files or Kafka."""
    from generator.simulate import SimConfig, write_files

    from .progress import progress_bar

    _one_mode(kafka, dict(topic=topic, labels_topic=labels_topic, feedback_topic=feedback_topic,
                          rate=rate or None, partitions=partitions),
              dict(out=out, labels=labels, feedback=feedback))
    cfg = SimConfig(cards=cards, days=days, seed=seed, start=start, fraud_rate=fraud_rate,
                    late_share=late_share)
    try:
        cfg.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if kafka:
        from generator.kafka_sink import produce_stream

        from .kafka_config import kafka_settings

        settings = kafka_settings(load_config(config).kafka, "kafka settings", bootstrap=kafka)
        if partitions:
            settings.partitions = partitions
        for role, name in (("labels", labels_topic), ("feedback", feedback_topic)):
            if name:
                settings.topics[role] = name
        with progress_bar("produce", None) as update:
            stats = produce_stream(cfg, settings, rate=rate or None, topic=topic,
                                   progress=lambda d, t: update(d))
        print(f"produced {stats['n_tx']:,} transactions ({stats['rate_achieved']:,.0f}/s), "
              f"{stats['n_labels']:,} labels, {stats['n_feedback']:,} fraud reports to {settings.bootstrap}; "
              f"delivery errors {stats['delivery_errors']}", file=sys.stderr)
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
    print(f"wrote {stats['n_tx']:,} transactions ({stats['n_fraud']:,} fraud, "
          f"{stats['n_late']:,} delayed in arrival) to {out}; labels to {labels}"
          + (f"; {stats['n_feedback']:,} fraud reports to {feedback}" if feedback else ""), file=sys.stderr)


@app.command()
def train(
    transactions: str = typer.Option(..., "--transactions", help="transactions JSON Lines (arrival order)"),
    labels: str = typer.Option(..., "--labels", help="labels JSON Lines"),
    model: str = typer.Option(..., "--model", help="directory to save the model and its card in"),
    feedback: Optional[str] = typer.Option(None, "--feedback",
                                           help="confirmed fraud reports, effective from their reported_at"),
    warmup_days: float = typer.Option(3.0, "--warmup-days", min=0.0,
                                      help="first days only build history, no training rows"),
    config: Optional[str] = typer.Option(None, "--config", help="pipeline settings YAML"),
) -> None:
    """Replay transactions through the detector, fit a model on the labelled ones, save it."""
    from .progress import progress_bar
    from .training import train as fit

    _need_file(transactions, "transactions file")
    _need_file(labels, "labels file")
    if feedback:
        _need_file(feedback, "feedback file")
    cfg = load_config(config)
    with progress_bar("train", None) as update:
        try:
            card = fit(transactions, labels, model, warmup_days=warmup_days, settings=cfg.detector,
                       progress=lambda stage, n: update(n), feedback_path=feedback)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    data = card["training_data"]
    for n, what, path in ((data["invalid_records_skipped"], "invalid record(s)", transactions),
                          (data["feedback_reports_skipped"], "invalid report(s)", feedback)):
        if n:
            print(f"fraud: warning: {path}: {n:,} {what} skipped", file=sys.stderr)
    v = card["validation"]
    print(f"model saved to {model}: validation AUC {v.get('roc_auc')}, AP {v.get('average_precision')}, "
          f"thresholds {card['thresholds']}", file=sys.stderr)


@app.command()
def detect(
    input: Optional[str] = typer.Option(None, "--input", help="transactions JSON Lines, '-' for stdin"),
    output: Optional[str] = typer.Option(None, "--output", help="decisions JSON Lines, '-' for stdout"),
    model: Optional[str] = typer.Option(None, "--model", help="model directory (default models/default)"),
    rules: Optional[str] = typer.Option(None, "--rules", help="rules YAML (default config/rules.yaml)"),
    feedback: Optional[str] = typer.Option(None, "--feedback",
                                           help="confirmed fraud reports, effective from their reported_at"),
    dead_letter: Optional[str] = typer.Option(None, "--dead-letter",
                                              help="bad records (default: next to the output, *.rejected.jsonl; "
                                                   "./rejected.jsonl when the output is stdout or a device)"),
    state: Optional[str] = typer.Option(None, "--state",
                                        help="RocksDB state directory: checkpoints, and resume after a stop"),
    config: Optional[str] = typer.Option(None, "--config", help="pipeline settings YAML"),
    no_model: bool = typer.Option(False, "--no-model", help="rules only"),
    kafka: Optional[str] = typer.Option(None, "--kafka", help="Kafka bootstrap servers: consumer-group mode "
                                        "('config': kafka.bootstrap of the pipeline config, or FRAUD_KAFKA_BOOTSTRAP)"),
    group: Optional[str] = typer.Option(None, "--group", help="Kafka consumer group"),
    input_topic: Optional[str] = typer.Option(None, "--input-topic", help="Kafka input topic"),
    output_topic: Optional[str] = typer.Option(None, "--output-topic", help="Kafka output topic"),
    feedback_topic: Optional[str] = typer.Option(None, "--feedback-topic",
                                                 help="Kafka: fraud reports topic (default from config; skipped if absent)"),
    instance: Optional[str] = typer.Option(None, "--instance",
                                           help="Kafka: this worker's name, unique in the group (default: host name)"),
    stop_when_idle: Optional[float] = typer.Option(None, "--stop-when-idle", min=0.0,
                                                   help="Kafka: exit after this many seconds with no input and no lag"),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", min=0, max=65535,
                                               help="Kafka: serve Prometheus metrics on http://HOST:PORT/metrics"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host",
                                     help="Kafka: address the metrics server listens on (0.0.0.0: all)"),
) -> None:
    """Decide every transaction: block, review or allow (embedded, or on Kafka with --kafka)."""
    from .detector import Detector
    from .embedded import default_dead_letter_path, run_file
    from .progress import progress_bar
    from .state_store import StateStore

    _one_mode(kafka, dict(group=group, input_topic=input_topic, output_topic=output_topic,
                          feedback_topic=feedback_topic, instance=instance, stop_when_idle=stop_when_idle,
                          metrics_port=metrics_port),
              dict(input=input, output=output, feedback=feedback, dead_letter=dead_letter))
    if kafka:
        _detect_kafka(kafka, group, input_topic, output_topic, instance, stop_when_idle, model, rules,
                      no_model, state, config, feedback_topic, metrics_port, metrics_host)
        return
    if input is None or output is None:
        raise UserError("--input and --output are required (or --kafka)")
    _need_file(input, "input file")
    if feedback:
        _need_file(feedback, "feedback file")
    defaulted = dead_letter is None
    dead_letter = dead_letter or default_dead_letter_path(output)
    litter = defaulted and dead_letter == "rejected.jsonl" and not state
    _distinct_files(input=input, feedback=feedback, rules=rules, config=config,
                    model=str(Path(model) / "model.json") if model else None, output=output,
                    dead_letter=dead_letter)
    _check_outputs(output=output, dead_letter=dead_letter)
    cfg = load_config(config)
    rule_set, fast = _detector_parts(model, rules, no_model)
    reports = _load_feedback(feedback)
    if reports is None:
        _warn_without_feedback(fast, model, "--feedback")
    run_id = _run_id(str(Path(model or DEFAULT_MODEL) / "model.json") if fast else None,
                     str(rules or DEFAULT_RULES), cfg.detector, feedback)
    signal.signal(signal.SIGTERM, _terminated)  # like Ctrl-C: outputs flushed, temporary state removed
    store = StateStore(state, cache_size=cfg.cache_cards)
    try:
        det = Detector(store, rules=rule_set, model=fast, settings=cfg.detector, feedback=reports)
        total = Path(input).stat().st_size if input != "-" else None
        with progress_bar("detect", total) as update:
            stats = run_file(det, input, output, dead_letter, checkpoint_every=cfg.checkpoint_every,
                             progress=update, run_id=run_id, run_max=cfg.run_max)
    finally:
        store.close()
    if state and input == "-":
        print("fraud: warning: --state with stdin: nothing was checkpointed, a rerun cannot resume (a pipe "
              "cannot be rewound)", file=sys.stderr)
    if litter and not stats.dead_letters and os.path.getsize(dead_letter) == 0:
        os.unlink(dead_letter)  # output to stdout or a device: no empty file left in the working directory
    if stats.resumed_from_line:
        if stats.records or stats.dead_letters:
            print(f"resumed from the checkpoint in {state} at line {stats.resumed_from_line:,}", file=sys.stderr)
        else:
            print(f"nothing left to decide: the checkpoint in {state} is at the end of {input} (line "
                  f"{stats.resumed_from_line:,}); use an empty --state directory to decide it again",
                  file=sys.stderr)
            return
    lat = sorted(stats.latencies_ms)
    p50 = lat[len(lat) // 2] if lat else 0.0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
    d = stats.decisions
    print(f"decided {stats.records:,} transactions in {stats.seconds:.1f}s ({stats.throughput:,.0f}/s): "
          f"block {d['block']:,}, review {d['review']:,}, allow {d['allow']:,}; late {stats.late:,}; "
          f"dead letters {stats.dead_letters:,}{f' (in {dead_letter})' if stats.dead_letters else ''}; latency p50 {p50:.3f} ms, p99 {p99:.3f} ms",
          file=sys.stderr)


def _detect_kafka(bootstrap, group, input_topic, output_topic, instance, stop_when_idle, model, rules,
                  no_model, state, config, feedback_topic, metrics_port, metrics_host) -> None:
    from .config import KAFKA_STATE_DIR
    from .kafka_admin import check_reachable, ensure_topics, topic_partitions
    from .kafka_config import kafka_settings
    from .kafka_runner import KafkaRunner

    cfg = load_config(config)
    settings = kafka_settings(cfg.kafka, cfg.source, bootstrap=bootstrap)
    if group:
        settings.group = group
    check_reachable(settings)
    source = input_topic or settings.topics["transactions"]
    partitions = topic_partitions(settings, source)
    if not partitions:
        raise UserError(f"Kafka topic {source!r} does not exist at {settings.bootstrap} "
                        "(produce to it first, e.g. fraud simulate --kafka)")
    ensure_topics(settings, {output_topic or settings.topics["decisions"]: partitions,
                             settings.topics["dead_letters"]: partitions})
    rule_set, fast = _detector_parts(model, rules, no_model)
    fb_topic = feedback_topic or settings.topics["feedback"]
    if not topic_partitions(settings, fb_topic):
        _warn_without_feedback(fast, model, f"the feedback topic ({fb_topic!r} does not exist)")
        fb_topic = None
    runner = KafkaRunner(settings, cfg, rule_set, fast, state or KAFKA_STATE_DIR, instance=instance,
                         input_topic=input_topic, output_topic=output_topic, stop_when_idle=stop_when_idle,
                         feedback_topic=fb_topic)
    if metrics_port is not None:
        from .metrics import WorkerMetrics

        runner.metrics = WorkerMetrics(metrics_port, metrics_host, instance=runner.instance)
        print(f"metrics on http://{metrics_host}:{runner.metrics.port}/metrics", file=sys.stderr)
    try:
        counts = runner.run()
    finally:
        if runner.metrics is not None:
            runner.metrics.close()
    print(f"stopped: block {counts['block']:,}, review {counts['review']:,}, allow {counts['allow']:,}, "
          f"dead letters {counts['dead_letters']:,}, replayed {counts['replayed']:,}", file=sys.stderr)


@app.command()
def evaluate(
    decisions: str = typer.Option(..., "--decisions", help="decisions JSON Lines"),
    labels: str = typer.Option(..., "--labels", help="labels JSON Lines"),
    json_out: Optional[str] = typer.Option(None, "--json", help="also write the metrics as JSON here"),
) -> None:
    """Ranking and decision metrics: ROC AUC, AP, card precision@100, block precision/recall, latency."""
    from .evaluation import evaluate as run, format_report

    _need_file(decisions, "decisions file")
    _need_file(labels, "labels file")
    _distinct_files(decisions=decisions, labels=labels, json=json_out)
    _check_outputs(json=json_out)
    metrics = run(decisions, labels)
    print(format_report(metrics))
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))


@app.command()
def backtest(
    rules: str = typer.Option(..., "--rules", help="rules YAML to try"),
    transactions: str = typer.Option(..., "--transactions", help="transactions JSON Lines"),
    labels: str = typer.Option(..., "--labels", help="labels JSON Lines"),
    model: Optional[str] = typer.Option(None, "--model", help="model directory (default models/default)"),
    no_model: bool = typer.Option(False, "--no-model", help="rules only"),
    feedback: Optional[str] = typer.Option(None, "--feedback", help="confirmed fraud reports, as for detect"),
    config: Optional[str] = typer.Option(None, "--config", help="pipeline settings YAML"),
    json_out: Optional[str] = typer.Option(None, "--json", help="also write the results as JSON here"),
) -> None:
    """Per rule: hits, precision, recall, and the block rate the rule set would cause."""
    from .backtest import backtest as run, format_backtest
    from .progress import progress_bar

    _need_file(transactions, "transactions file")
    _need_file(labels, "labels file")
    _distinct_files(transactions=transactions, labels=labels, rules=rules, feedback=feedback, config=config,
                    model=str(Path(model) / "model.json") if model else None, json=json_out)
    _check_outputs(json=json_out)
    cfg = load_config(config)
    rule_set, fast = _detector_parts(model, rules, no_model)
    with progress_bar("backtest", None) as update:
        result = run(rule_set, transactions, labels, fast, cfg.detector, progress=update,
                     feedback=_load_feedback(feedback))
    print(format_backtest(result))
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


@app.command()
def bench(
    input: Optional[str] = typer.Option(None, "--input", help="transactions to replay (default: simulate)"),
    cards: int = typer.Option(3000, "--cards", min=10, help="cards to simulate when no --input"),
    days: int = typer.Option(30, "--days", min=1, help="days to simulate when no --input"),
    model: Optional[str] = typer.Option(None, "--model", help="model directory (default models/default)"),
    rules: Optional[str] = typer.Option(None, "--rules", help="rules YAML (default config/rules.yaml)"),
    config: Optional[str] = typer.Option(None, "--config", help="pipeline settings YAML"),
    json_out: Optional[str] = typer.Option(None, "--json", help="also write the figures as JSON here"),
    kafka: Optional[str] = typer.Option(None, "--kafka", help="measure end-to-end latency through this Kafka "
                                        "broker instead ('config': kafka.bootstrap of the pipeline config, "
                                        "or FRAUD_KAFKA_BOOTSTRAP)"),
    rate: float = typer.Option(2000.0, "--rate", min=1.0, help="Kafka: transactions per second to produce"),
    feedback: Optional[str] = typer.Option(None, "--feedback", help="fraud reports for the full detector "
                                           "(default: the simulated ones; none with --input)"),
) -> None:
    """Throughput and latency percentiles, with a passthrough baseline measured in the same run."""
    import tempfile

    from .bench import format_bench, run_bench, startup_times

    cfg = load_config(config)
    _check_outputs(json=json_out)
    if kafka:
        if input is None:
            raise UserError("--kafka needs --input (the transactions to produce)")
        _need_file(input, "input file")
        from .kafka_admin import check_reachable
        from .kafka_bench import run_kafka_bench
        from .kafka_config import kafka_settings

        settings = kafka_settings(cfg.kafka, cfg.source, bootstrap=kafka)
        check_reachable(settings)
        result = run_kafka_bench(settings, input, rate)
        e2e = result["e2e_ms"]
        print(f"{result['decided']:,}/{result['transactions']:,} decided; produced at "
              f"{result['achieved_rate']:,.0f} tx/s (target {rate:,.0f}); end-to-end latency, produce to "
              f"committed decision, after the first {result['warmup_s']:g} s: "
              + ", ".join(f"{k} {v:.1f} ms" for k, v in e2e.items())
              + (f"; first {result['warmup_s']:g} s: max {result['warmup_max_ms']:.1f} ms"
                 if result["warmup_max_ms"] is not None else ""))
        if json_out:
            Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        return
    rule_set, fast = _detector_parts(model, rules, False)
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
        rows = run_bench(input, rule_set, fast, cfg.detector, cfg.checkpoint_every, feedback, cfg.run_max)
    startup = startup_times()
    print(format_bench(rows, n, startup, cfg.run_max))
    if json_out:
        Path(json_out).write_bytes(orjson.dumps({"rows": rows, "startup_s": startup}, option=orjson.OPT_INDENT_2))


@app.command()
def demo(
    directory: str = typer.Option(str(DEMO_DIR), "--dir", help="where the demo writes its files"),
    cards: int = typer.Option(2000, "--cards", min=50, help="number of cardholders"),
    days: int = typer.Option(30, "--days", min=10, help="days of activity"),
    seed: int = typer.Option(7, "--seed", help="random seed"),
) -> None:
    """The whole story on one machine: simulate, train, detect, evaluate, and print a report."""
    from .demo import run_demo

    try:
        run_demo(directory, cards=cards, days=days, seed=seed)
    except ValueError as exc:  # a stream too small to train on
        raise UserError(f"{exc} (try more --cards or --days)") from None


def main() -> None:
    """Console entry point: usage errors and user errors become one line on stderr, exit status 2."""
    command = typer.main.get_command(app)
    sub = next((a for a in sys.argv[1:] if a in getattr(command, "commands", {})), None)
    prog = f"fraud {sub}" if sub else "fraud"  # the same prefix as click's usage errors
    try:
        rv = command.main(prog_name="fraud", standalone_mode=False)
    except UserError as exc:
        print(f"{prog}: error: {mask_text(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("fraud: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("fraud: interrupted", file=sys.stderr)
        sys.exit(130)
    except _Terminated:
        print("fraud: terminated", file=sys.stderr)
        sys.exit(143)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:  # unwritable output, a file where a directory should be, disk full...
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            reason = "a file is in the way of a directory on this path"
        print(f"{prog}: error: {mask_text(where + reason)}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        # click's ClickException (typer ships its own copy of click): usage errors, bad values.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            where = f"fraud {ctx.info_name}" if ctx is not None and ctx.parent is not None else "fraud"
            if type(exc).__name__.startswith("NoArgsIsHelp"):
                print(exc.format_message())
                sys.exit(0)
            print(f"{where}: error: {exc.format_message()} (see --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
