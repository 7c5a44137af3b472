"""Produce the simulated stream to Kafka: transactions, labels and feedback, optionally rate limited.

The records are the simulator's bytes (exactly the lines `write_files` writes, without the newline),
produced in arrival order:

- transactions to the transactions topic, key = card_id (one card -> one partition -> file order),
- labels to the labels topic, key = tx_id, right after their transaction,
- feedback (fraud reports) to the feedback topic, key = card_id, interleaved by time: a report is
  produced as soon as the transaction stream has reached its `reported_at`, i.e. right after the
  first transaction whose event time is at or after it (the stream's event-time high mark; arrival
  order is event order plus delays, so that high mark is how far the simulated clock has gone).
  Reports dated after the last transaction are produced at the end.

Message timestamps are the wall clock at produce time (this is a live feed), not the event time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from fraud.core.records import parse_time
from fraud.errors import UserError
from fraud.runners.kafka.admin import check_reachable, ensure_topics
from fraud.settings.kafka import KafkaSettings

from .simulate import SimConfig, _encoded, _feedback, build_stream

Progress = Callable[[int, int], None]
LOG = logging.getLogger("fraud.kafka")
LOG.addHandler(logging.NullHandler())  # librdkafka's logs stay silent unless the application configures logging

PRODUCER_DEFAULTS = {"compression.type": "lz4", "linger.ms": 5}  # pass-through client props may override
PRODUCER_FORCED = {"enable.idempotence": True, "acks": "all", "delivery.report.only.error": True}
POLL_EVERY = 1000  # serve delivery callbacks (errors only) at least every N transactions
PROGRESS_INTERVAL_S = 0.25
MAX_LAG_S = 1.0  # rate limiter: a stall longer than this is not caught up with a burst
LEAD_S = 0.002  # rate limiter: may run this far ahead of the schedule (fewer, 2 ms-spaced wake-ups)
SLEEP_STEP_S = 0.05  # longest single sleep of the limiter (keeps callbacks and Ctrl-C responsive)


def interleave(
    records: Iterable[tuple[str, bytes, bytes]], feedback: Iterable[bytes]
) -> Iterator[tuple[str, str, bytes, bytes | None]]:
    """Merge arrival-ordered records with reported_at-ordered feedback into one produce order.

    Yields ("tx", card_id, tx_bytes, label_bytes) and ("fb", card_id, feedback_bytes, None). A report
    follows the first transaction whose event time is >= its reported_at; the rest come last.
    """
    fb = []
    for raw in feedback:
        rec = orjson.loads(raw)
        fb.append((parse_time(rec["reported_at"], "reported_at"), rec["card_id"], raw))
    fb.sort(key=lambda f: f[0])  # already sorted by the simulator; stable, so a no-op then
    i, n_fb = 0, len(fb)
    clock = None  # event-time high mark of the transactions produced so far
    for card_id, tx, label in records:
        yield "tx", card_id, tx, label
        if i < n_fb:
            t = parse_time(orjson.loads(tx)["event_time"])
            if clock is None or t > clock:
                clock = t
            while i < n_fb and fb[i][0] <= clock:
                yield "fb", fb[i][1], fb[i][2], None
                i += 1
    for _t, card_id, raw in fb[i:]:
        yield "fb", card_id, raw, None


class _Deliveries:
    """Delivery callback: counts failed deliveries (only errors are reported) and fatal errors."""

    def __init__(self) -> None:
        self.errors = 0
        self.first: str | None = None
        self.fatal: str | None = None

    def on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.errors += 1
            if self.first is None:
                self.first = err.str()

    def on_error(self, err: KafkaError) -> None:
        if err.fatal() and self.fatal is None:
            self.fatal = err.str()


def produce_stream(
    cfg: SimConfig,
    settings: KafkaSettings,
    rate: float | None = None,
    progress: Progress | None = None,
    topic: str | None = None,
    flush_timeout: float = 60.0,
) -> dict:
    """Produce the simulated stream of `cfg`; `rate` = transactions per second (None/0: as fast as possible).

    Creates the transactions (`topic` overrides its name), labels and feedback topics if missing.
    Returns {n_tx, n_labels, n_feedback, seconds, rate_achieved, delivery_errors, ...}; delivery
    errors are counted (and the first one reported in "error"), not raised. An unreachable broker or a
    fatal producer error raises UserError.
    """
    if rate is not None and (rate < 0 or rate != rate):
        raise UserError(f"--rate must be >= 0 transactions per second, got {rate}")
    rate = rate or None
    cfg.validate()
    topics = {
        "transactions": topic or settings.topics["transactions"],
        "labels": settings.topics["labels"],
        "feedback": settings.topics["feedback"],
    }
    check_reachable(settings)
    ensure_topics(settings, list(dict.fromkeys(topics.values())))

    stream = build_stream(cfg)
    total = len(stream.tx)
    merged = interleave(_encoded(stream, None), _feedback(stream, cfg))

    dl = _Deliveries()
    conf = settings.client_config()
    for k, v in PRODUCER_DEFAULTS.items():
        conf.setdefault(k, v)
    conf.update(PRODUCER_FORCED)
    conf.update({"on_delivery": dl.on_delivery, "error_cb": dl.on_error, "logger": LOG})
    try:
        producer = Producer(conf)
    except (KafkaException, ValueError) as exc:
        raise UserError(f"Kafka producer configuration is invalid: {exc}") from None
    produce, poll = producer.produce, producer.poll
    tx_topic, lb_topic, fb_topic = topics["transactions"], topics["labels"], topics["feedback"]
    clock, monotonic, sleep = time.time, time.monotonic, time.sleep

    def send(tp: str, value: bytes, key: str | bytes, ts: int) -> None:
        while True:
            try:
                produce(tp, value, key, timestamp=ts)
                return
            except BufferError:  # local queue full: let deliveries drain it
                poll(0.05)
                if dl.fatal:
                    raise UserError(f"Kafka producer failed: {dl.fatal}") from None

    n_tx = n_lb = n_fb = 0
    t0 = monotonic()
    base = t0  # limiter schedule: transaction k goes out at base + k / rate
    next_progress = t0 + PROGRESS_INTERVAL_S
    try:
        for kind, key, value, label in merged:
            if kind == "fb":
                send(fb_topic, value, key, int(clock() * 1000))
                n_fb += 1
                continue
            if rate is not None:
                due = base + n_tx / rate
                now = monotonic()
                if now - due > MAX_LAG_S:  # fell far behind (stall): resume the pace, no burst
                    base = now - n_tx / rate
                elif due - now > LEAD_S:  # ahead of schedule: sleep until this one is due
                    while (wait := due - now) > 0:
                        if wait >= 0.002:
                            poll(min(wait, SLEEP_STEP_S))  # sleeps (ms granularity) while serving callbacks
                        else:
                            sleep(wait)
                        now = monotonic()
            if n_tx % POLL_EVERY == 0:
                poll(0)
            ts = int(clock() * 1000)
            send(tx_topic, value, key, ts)
            n_tx += 1
            send(lb_topic, label, orjson.loads(label)["tx_id"], ts)
            n_lb += 1
            if dl.fatal:
                raise UserError(f"Kafka producer failed: {dl.fatal}")
            if progress is not None and monotonic() >= next_progress:
                progress(n_tx, total)
                next_progress = monotonic() + PROGRESS_INTERVAL_S
        undelivered = producer.flush(flush_timeout)
    except KafkaException as exc:
        producer.flush(min(5.0, flush_timeout))
        raise UserError(f"Kafka producer failed: {exc.args[0].str() if exc.args else exc}") from None
    except BaseException:
        producer.flush(min(5.0, flush_timeout))
        raise
    seconds = monotonic() - t0
    if progress is not None:
        progress(n_tx, total)
    if dl.fatal:
        raise UserError(f"Kafka producer failed: {dl.fatal}")
    errors = dl.errors + undelivered
    error = dl.first or (f"{undelivered} messages not delivered within {flush_timeout:g}s" if undelivered else None)
    return {
        "n_tx": n_tx,
        "n_labels": n_lb,
        "n_feedback": n_fb,
        "seconds": round(seconds, 3),
        "rate_achieved": round(n_tx / seconds, 1) if seconds > 0 else 0.0,
        "delivery_errors": errors,
        "error": error,
        "topics": topics,
    }
