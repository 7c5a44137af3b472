"""`fraud bench --kafka`: the detector through a real broker, against a Kafka passthrough and a Quix
Streams peer measured in the same run.

Two measurements (each process runs on its own, as in production, on its own topics and group):

* maximum drain throughput (`kafka_drain.py`): a topic filled with the whole input, then drained by
  the passthrough (`kafka_passthrough.py`: consume, decode, produce), the detector under each
  delivery guarantee, and the Quix Streams peer (`scripts/bench/quix_peer.py`: a per-card sliding
  one-hour count and sum, exactly-once, in its own virtual environment);
* end-to-end latency at a fixed offered rate, under each guarantee: from the moment a transaction is
  produced to the moment its decision is readable by a `read_committed` consumer.
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
from fraud.offline.kafka_drain import fill, measure_drain
from fraud.runners.kafka.admin import delete_topics, ensure_topics, wait_group_assigned
from fraud.settings.kafka import GUARANTEES, KafkaSettings

WARMUP_S = 5.0
_READER = {"isolation.level": "read_committed", "fetch.wait.max.ms": 10, "auto.offset.reset": "earliest"}
ROOT = Path(__file__).resolve().parents[2]
QUIX_PEER = ROOT / "scripts" / "bench" / "quix_peer.py"
QUIX_VENV = ROOT / ".cache" / "bench" / "quix-venv"
QUIX_VERSION = "3.28.1"
QUIX_ROW = "Quix Streams peer, exactly-once (per-card sliding 1 h count + sum)"


def _read(input_path: str) -> tuple[list[bytes], list[str], list[bytes]]:
    lines, ids, keys = [], [], []
    for line in open(input_path, "rb"):  # decoded before any clock starts; only valid ones are used
        try:
            tx = decode(line)
        except BadRecord:
            continue
        lines.append(line.rstrip(b"\r\n"))
        ids.append(tx.tx_id)
        keys.append(tx.card_id.encode())
    if not lines:
        raise UserError(f"{input_path}: no valid transaction to produce")
    return lines, ids, keys


def _detector(settings: KafkaSettings, group: str, inp: str, out: str, state: str, args: list[str]) -> list[str]:
    return [
        str(Path(sys.executable).with_name("fraud")),
        "detect",
        "--kafka",
        settings.bootstrap,
        "--group",
        group,
        "--input-topic",
        inp,
        "--output-topic",
        out,
        "--instance",
        group,
        "--state",
        state,
        *args,
    ]


def quix_python() -> Path | None:
    """The benchmark's own environment with Quix Streams (made on first use); None when this is not
    a checkout (the peer script is not installed with the package)."""
    if not QUIX_PEER.exists():
        return None
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        print(f"fraud bench: installing quixstreams=={QUIX_VERSION} into {QUIX_VENV} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise UserError(f"cannot install quixstreams into {QUIX_VENV}: {proc.stderr.strip()[-300:]}")
    return python


def run_drains(
    settings: KafkaSettings, lines: list[bytes], keys: list[bytes], partitions: int, args: list[str], quix: bool
) -> list[dict]:
    """Maximum drain throughput of each pipeline over the same filled topic."""
    run = uuid.uuid4().hex[:8]
    inp = f"bench-drain-{run}"
    topics = [inp]
    ensure_topics(settings, {inp: partitions})
    rows = []
    try:
        fill(settings, inp, lines, keys)
        with tempfile.TemporaryDirectory(prefix="fraud-kdrain-") as tmp:
            # (name, command from (group, output topic, state directory), environment)
            passthrough = [sys.executable, "-m", "fraud.offline.kafka_passthrough", settings.bootstrap]
            pipelines = [("passthrough (consume, decode, produce)", lambda g, o, s: [*passthrough, g, inp, o], None)]
            for guarantee in GUARANTEES:
                pipelines.append(
                    (
                        f"detector, {guarantee.replace('_', '-')}",
                        lambda g, o, s: _detector(settings, g, inp, o, s, args),
                        {**os.environ, "FRAUD_KAFKA_GUARANTEE": guarantee},
                    )
                )
            python = quix_python() if quix else None
            if python is not None:
                peer = [str(python), str(QUIX_PEER), settings.bootstrap]
                pipelines.append((QUIX_ROW, lambda g, o, s: [*peer, g, inp, o, s], None))
            for k, (name, command, env) in enumerate(pipelines):
                group, out = f"bench-drain-{run}-{k}", f"bench-drain-{run}-out{k}"
                topics.append(out)
                cmd = command(group, out, os.path.join(tmp, str(k)))
                rows.append(measure_drain(settings, name, cmd, group, inp, out, len(lines), env))
    finally:
        delete_topics(settings, topics)
    base = rows[0]["tx_per_s"]
    for r in rows:
        r["vs_passthrough"] = r["tx_per_s"] / base
    return rows


def run_kafka_bench(
    settings: KafkaSettings,
    input_path: str,
    rate: float,
    partitions: int = 4,
    detector_args: list[str] | None = None,
    quix: bool = True,
) -> dict:
    lines, ids, keys = _read(input_path)
    drains = run_drains(settings, lines, keys, partitions, detector_args or [], quix)
    latency = {}
    for guarantee in GUARANTEES:  # each on its own topics, with its own worker
        run = uuid.uuid4().hex[:8]
        inp, out = f"bench-tx-{run}", f"bench-decisions-{run}"
        ensure_topics(settings, {inp: partitions, out: partitions})
        try:
            env = {**os.environ, "FRAUD_KAFKA_GUARANTEE": guarantee}
            latency[guarantee] = _measure(
                settings, inp, out, run, lines, ids, keys, rate, partitions, detector_args, env
            )
        finally:
            delete_topics(settings, [inp, out])
    # The floor: the same producer and reader, the reader on the input topic itself, no worker between
    run = uuid.uuid4().hex[:8]
    inp = f"bench-floor-{run}"
    ensure_topics(settings, {inp: partitions})
    try:
        floor = _measure(settings, inp, inp, run, lines, ids, keys, rate, partitions, None, None)
    finally:
        delete_topics(settings, [inp])
    return {"drain": drains, "latency": latency, "floor": floor}


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
    env: dict[str, str] | None,  # None: no worker, the reader reads the input (the floor)
) -> dict:
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fraud-kbench-") as state:
        worker = (
            None
            if env is None
            else subprocess.Popen(
                _detector(settings, f"bench-{run}", inp, out, state, detector_args or []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
        # One reader, on the outputs only: a second one (it read the input topic beside the worker,
        # "one hop") cost the 2-core machine enough CPU and broker fetches to move the worker's own
        # p99; the floor below measures the harness alone instead.
        consumer = Consumer(settings.client_config(**{"group.id": f"bench-reader-{run}", **_READER}))
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
        if worker is not None:
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
        if worker is not None:
            worker.terminate()
            worker.wait(60)
    # Percentiles over the steady state; the first WARMUP_S seconds of production (the worker's first
    # fetches and transactions, Python warming up) are reported on their own, not hidden.
    warm = [t for t in sent if t in received and sent[t] - t0 < WARMUP_S]
    steady = [t for t in sent if sent[t] - t0 >= WARMUP_S]
    lat = np.array([(received[t] - sent[t]) * 1000 for t in steady if t in received])
    return {
        "transactions": len(sent),
        "decided": sum(t in received for t in sent),
        "target_rate": rate,
        "achieved_rate": len(sent) / produced_s,
        "e2e_ms": percentiles(lat, (50, 90, 99, 99.9)),
        "warmup_s": WARMUP_S,
        "warmup_max_ms": max(((received[t] - sent[t]) * 1000 for t in warm), default=None),
    }


def format_kafka_bench(result: dict, rate: float, partitions: int = 4) -> str:
    """The drain table (ratios to the passthrough and to the Quix Streams peer), then the latencies."""
    drains = result["drain"]
    n = drains[0]["records"]
    quix = next((r["tx_per_s"] for r in drains if r["pipeline"] == QUIX_ROW), None)
    lines = [
        f"Kafka drain: {n:,} transactions in a {partitions}-partition topic, one consumer process each;"
        " rate over first to last output append",
        f"{'pipeline':<68} {'tx/s':>9} {'x base':>7} {'x Quix':>7} {'wall s':>7}",
    ]
    for r in drains:
        vs_quix = f"{r['tx_per_s'] / quix:>7.2f}" if quix else f"{'-':>7}"
        lines.append(
            f"{r['pipeline']:<68} {r['tx_per_s']:>9,.0f} {r['vs_passthrough']:>7.2f} {vs_quix} {r['wall_s']:>7.1f}"
        )
    lines.append("wall s: process start to the whole input committed (start-up and global tables included)")
    for guarantee, r in result["latency"].items():
        warm = f"; first {r['warmup_s']:g} s: max {r['warmup_max_ms']:.1f} ms" if r["warmup_max_ms"] is not None else ""
        lines.append(
            f"{guarantee}: {r['decided']:,}/{r['transactions']:,} decided; produced at {r['achieved_rate']:,.0f} "
            f"tx/s (target {rate:,.0f}); end-to-end latency, produce to committed decision, after the first "
            f"{r['warmup_s']:g} s: " + ", ".join(f"{k} {v:.1f} ms" for k, v in r["e2e_ms"].items()) + warm
        )
    f = result["floor"]
    lines.append(
        "floor, no worker (this benchmark's producer and reader alone, on the input topic): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in f["e2e_ms"].items())
    )
    return "\n".join(lines)
