"""A batch of Kafka records: decoded, decided partition by partition, produced.

The worker (`worker.py`) owns the loop and the transaction around a batch; here is what happens
inside one: each record decoded once, each partition's valid transactions decided as one run, the
decisions and the dead letters produced.
"""

from __future__ import annotations

import time

import orjson
from confluent_kafka import KafkaException

from fraud.core.records import BadRecord, dead_letter_text
from fraud.core.redact import mask_pans, mask_text
from fraud.runners.kafka.restore import PartitionTask
from fraud.runners.kafka.shared_decodes import SharedDecodes, decode_or_reason


def decode_batch(msgs: list, shared: SharedDecodes | None = None) -> list:
    """[(message, Transaction or BadRecord, arrival clock)] of a batch; transient client errors
    (a broker away) are skipped, librdkafka retries them; a fatal one is raised. With `shared`, a
    record the merchant table's reader has decoded already is not decoded again (and vice versa)."""
    clock = time.perf_counter_ns
    items = []
    for m in msgs:
        arrived = clock()
        err = m.error()
        if err is not None:
            if err.fatal():
                raise KafkaException(err)
            continue
        if shared is not None:
            items.append((m, shared.for_worker(m.partition(), m.offset(), m.value()), arrived))
        else:
            items.append((m, decode_or_reason(m.value()), arrived))
    return items


def dead_letter(m, error: BadRecord) -> dict:
    """The dead-letter message of a bad record (SPEC 1): where it was, why, and the record with
    anything that looks like a card number masked, in the value, the key and the `error` header."""
    reason = mask_text(str(error))
    key = m.key()
    value = {
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "error": reason,
    }
    value["record"], size = dead_letter_text(m.value() or b"")
    if size is not None:
        value["record_bytes"] = size  # the record is cut at limits.record_bytes
    return {
        "key": mask_pans(key) if key else key,
        "headers": [("error", reason.encode())],
        "value": orjson.dumps(value),
    }


def produce_batch(
    tasks: dict[int, PartitionTask],
    out_topic: str,
    dlq_topic: str,
    exactly_once: bool,
    producer,
    items: list,
    touched: dict,
) -> tuple[dict[str, int], list[float]]:
    """Decide the batch and produce its outputs (into the open transaction when exactly-once); returns its decision
    counts (by kind, dead letters, and `rule:<name>` per rule fired) and latencies, which count once the
    transaction is committed.

    Each partition's valid transactions go through its detector as one run (one kernel call,
    in arrival order, exactly as one by one); the decisions are then produced in that order.
    """
    clock = time.perf_counter_ns
    counts = {"allow": 0, "review": 0, "block": 0, "dead_letters": 0}
    lat: list[float] = []
    runs: dict[int, tuple[list, list]] = {}
    for m, tx, arrived in items:
        task = tasks.get(m.partition())
        if task is None:  # revoked in between: another worker owns it now
            continue
        if isinstance(tx, BadRecord):
            producer.produce(dlq_topic, **dead_letter(m, tx))
            counts["dead_letters"] += 1
        else:
            txs, times = runs.setdefault(m.partition(), ([], []))
            txs.append(tx)
            times.append(arrived)
        task.after_record(m.offset())
        touched[m.partition()] = task
    for partition, (txs, times) in runs.items():
        det = tasks[partition].detector
        for d in det.records(txs, det.run(txs), times, clock):
            if exactly_once:
                producer.produce(out_topic, key=d["card_id"].encode(), value=orjson.dumps(d))
            else:  # a repeat after a crash must be byte-identical: the latency goes to a header
                latency = d.pop("latency_ms")
                producer.produce(
                    out_topic,
                    key=d["card_id"].encode(),
                    value=orjson.dumps(d),
                    headers=[("latency_ms", repr(latency).encode())],
                )
                d["latency_ms"] = latency
            counts[d["decision"]] += 1
            lat.append(d["latency_ms"])
            for r in d["rules"]:  # "rule:<name>" counts, for the status line and the metrics
                counts[f"rule:{r}"] = counts.get(f"rule:{r}", 0) + 1
    return counts, lat
