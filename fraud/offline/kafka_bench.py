"""`fraud bench --kafka`: end-to-end latency through a real broker, from the moment a transaction is
produced to the moment its decision is readable by a `read_committed` consumer, under each delivery
guarantee (`kafka.guarantee`).

The detector runs as its own process (`fraud detect --kafka`), as in production; this process
produces at a fixed rate and reads the decisions back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer

from fraud.core.latency import percentiles
from fraud.core.records import BadRecord, decode
from fraud.errors import UserError
from fraud.runners.kafka.admin import delete_topics, ensure_topics, wait_group_assigned
from fraud.settings.kafka import GUARANTEES, KafkaSettings

WARMUP_S = 5.0


def run_kafka_bench(
    settings: KafkaSettings, input_path: str, rate: float, partitions: int = 4, detector_args: list[str] | None = None
) -> dict:
    lines, ids, keys = [], [], []
    for line in open(input_path, "rb"):  # decoded before the clock starts; only valid ones are timed
        try:
            tx = decode(line)
        except BadRecord:
            continue
        lines.append(line.rstrip(b"\r\n"))
        ids.append(tx.tx_id)
        keys.append(tx.card_id.encode())
    if not lines:
        raise UserError(f"{input_path}: no valid transaction to produce")
    results = {}
    for guarantee in GUARANTEES:  # each on its own topics, with its own worker
        run = uuid.uuid4().hex[:8]
        inp, out = f"bench-tx-{run}", f"bench-decisions-{run}"
        ensure_topics(settings, {inp: partitions, out: partitions})
        try:
            env = {**os.environ, "FRAUD_KAFKA_GUARANTEE": guarantee}
            results[guarantee] = _measure(
                settings, inp, out, run, lines, ids, keys, rate, partitions, detector_args, env
            )
        finally:
            delete_topics(settings, [inp, out])
    return results


def _measure(
    settings: KafkaSettings,
    inp: str,
    out: str,
    run: str,
    lines: list[bytes],
    ids: list[str],
    keys: list[bytes],
    rate: float,
    partitions: int,
    detector_args: list[str] | None,
    env: dict[str, str],
) -> dict:
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fraud-kbench-") as state:
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("fraud")),
                "detect",
                "--kafka",
                settings.bootstrap,
                "--group",
                f"bench-{run}",
                "--input-topic",
                inp,
                "--output-topic",
                out,
                "--instance",
                f"bench-{run}",
                "--state",
                state,
                *(detector_args or []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        consumer = Consumer(
            settings.client_config(
                **{
                    "group.id": f"bench-reader-{run}",
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        consumer.subscribe([out])
        done = threading.Event()

        def read() -> None:
            while not done.is_set() or len(received) < len(sent):
                m = consumer.poll(0.2)  # one at a time: the receipt time is the record's own
                if m is not None and m.error() is None:
                    received[orjson.loads(m.value())["tx_id"]] = time.time()
                if done.is_set() and time.time() > deadline:
                    return

        deadline = float("inf")
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # Start producing once the worker owns every partition (it has read the global tables by then),
        # so its start-up is not counted as latency; then a second for it to restore its empty stores.
        wait_group_assigned(settings, f"bench-{run}", inp, partitions)
        time.sleep(1)
        producer = Producer(settings.client_config(**{"enable.idempotence": True, "linger.ms": 1}))
        t0 = time.time()
        for n, line in enumerate(lines):
            due = t0 + n / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            sent[ids[n]] = time.time()
            producer.produce(inp, key=keys[n], value=line)
            producer.poll(0)
        producer.flush(30)
        produced_s = time.time() - t0
        deadline = time.time() + 60
        done.set()
        reader.join()
        consumer.close()
        worker.terminate()
        worker.wait(60)
    # Percentiles over the steady state; the first WARMUP_S seconds of production (the worker's first
    # fetches and transactions, Python warming up) are reported on their own, not hidden.
    warm = [t for t in sent if t in received and sent[t] - t0 < WARMUP_S]
    lat = np.array([(received[t] - sent[t]) * 1000 for t in sent if t in received and sent[t] - t0 >= WARMUP_S])
    return {
        "transactions": len(sent),
        "decided": sum(t in received for t in sent),
        "target_rate": rate,
        "achieved_rate": len(sent) / produced_s,
        "e2e_ms": percentiles(lat, (50, 90, 99, 99.9)),
        "warmup_s": WARMUP_S,
        "warmup_max_ms": max(((received[t] - sent[t]) * 1000 for t in warm), default=None),
    }
