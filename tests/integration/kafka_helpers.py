"""The Kafka integration tests' tools: topics, producing and reading them, a worker process, the
embedded run a Kafka run must equal, and the exactly-once check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraud.core.detector import Detector
from fraud.runners.embedded import run_file
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES
from fraud.state.feedback import FeedbackIndex
from fraud.state.merchant_table import MerchantTable
from fraud.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
FRAUD = str(Path(sys.executable).with_name("fraud"))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
sys.path.insert(0, str(ROOT / "tests"))
from conftest import with_retries  # noqa: E402, F401  (the streams in conftest.py use it)


def _topic(prefix: str, partitions: int = 4) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def produce_file(path: Path, topic: str, rate: float | None = None) -> int:
    """Each line keyed by its card (a malformed line keyed by nothing), in file order."""
    return produce_lines((line.rstrip(b"\n") for line in open(path, "rb")), topic, rate)


def produce_lines(lines: Iterable[bytes], topic: str, rate: float | None = None) -> int:
    """Each line a message value, keyed by its card (a malformed one keyed by nothing), in order."""
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 5})
    n = 0
    t0 = time.monotonic()
    for line in lines:
        try:
            key = orjson.loads(line).get("card_id")
            key = key.encode() if isinstance(key, str) else None
        except (orjson.JSONDecodeError, AttributeError):
            key = None
        while True:
            try:
                p.produce(topic, key=key, value=line)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if rate and n % 100 == 0:
            ahead = n / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    assert p.flush(60) == 0
    return n


def read_committed(topic: str) -> list:
    c = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"read-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    eof: set[int] = set()
    out = []
    while len(eof) < len(parts):
        for m in c.consume(1000, 2.0):
            if m.error():
                eof.add(m.partition())
            else:
                out.append(m)
    c.close()
    return out


def decisions(topic: str) -> list[dict]:
    return [orjson.loads(m.value()) for m in read_committed(topic)]


def embedded_reference(
    path: Path, tmp: Path, blind_to_merchants: bool = False, feedback: Path | None = None
) -> dict[str, tuple]:
    store = StateStore(None)
    try:
        det = Detector(
            store,
            rules=load_rules(DEFAULT_RULES),
            model=load_model(DEFAULT_MODEL),
            feedback=FeedbackIndex.from_file(feedback) if feedback else None,
        )
        if blind_to_merchants:  # an empty merchant table nobody feeds
            det.use_merchant_table(MerchantTable())
        run_file(det, str(path), str(tmp / "ref.jsonl"), str(tmp / "ref.bad.jsonl"))
    finally:
        store.close()
    return {key(d): (d["decision"], d["score"], d["rules"]) for d in map(orjson.loads, open(tmp / "ref.jsonl", "rb"))}


def key(d: dict) -> tuple[str, bool]:
    """A decision's identity: its tx_id, and whether it is a repeat's (an upstream retry's)."""
    return d["tx_id"], d["repeat"]


def assert_exactly_once_and_equal(got: list[dict], want: dict[str, tuple]) -> None:
    counts = Counter(map(key, got))
    assert not [t for t, n in counts.items() if n > 1], "duplicated decisions"
    assert set(counts) == set(want), f"missing {len(set(want) - set(counts))} decisions"
    diff = [key(d) for d in got if (d["decision"], d["score"], d["rules"]) != want[key(d)]]
    assert not diff, f"{len(diff)} decisions differ from the embedded run, e.g. {diff[:3]}"


def worker(
    tmp: Path,
    inp: str,
    out: str,
    group: str,
    instance: str,
    idle: float | None = 4.0,
    extra_env: dict | None = None,
    feedback_topic: str | None = None,
    config: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen:
    args = [
        FRAUD,
        "detect",
        "--kafka",
        BOOTSTRAP,
        "--group",
        group,
        "--input-topic",
        inp,
        "--feedback-topic",
        feedback_topic or f"no-feedback-{uuid.uuid4().hex[:8]}",
        "--output-topic",
        out,
        "--instance",
        instance,
        "--state",
        str(tmp / "state"),
    ]
    if idle is not None:
        args += ["--stop-when-idle", str(idle)]
    if config is not None:
        args += ["--config", str(config)]
    args += list(extra_args)
    log = open(tmp / f"{instance}.log", "ab")
    env = {**os.environ, **(extra_env or {})}
    return subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT, env=env)


def finish(w: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait for a worker to exit 0; on a hang, have it print its stacks (SIGUSR1) into the log."""
    try:
        rc = w.wait(timeout)
    except subprocess.TimeoutExpired:
        w.send_signal(signal.SIGUSR1)
        time.sleep(1)
        w.kill()
        w.wait()
        pytest.fail(f"worker hung; its log ends with:\n{log.read_text(errors='replace')[-4000:]}")
    assert rc == 0, log.read_text(errors="replace")[-4000:]


def java_console_read(topic: str, isolation: str) -> list[dict]:
    """Every record of `topic`, read by Kafka's Java ConsoleConsumer (scripts/kafka.sh
    console-consumer) with the given isolation level; it exits after 10 s without a record."""
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "kafka.sh"),
            "console-consumer",
            "--bootstrap-server",
            BOOTSTRAP,
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            isolation,
            "--timeout-ms",
            "10000",
            "--consumer-property",
            f"group.id=java-{uuid.uuid4().hex[:8]}",
        ],
        capture_output=True,
        timeout=600,
    )
    assert b"Processed a total of" in proc.stderr, proc.stderr[-2000:]
    return [orjson.loads(line) for line in proc.stdout.splitlines() if line.startswith(b"{")]


def committed_count(topic: str) -> int:
    return len(read_committed(topic))


def _with_malformed(lines: list[bytes], out: Path) -> Path:
    from foreign_sim import malformed_lines

    bad = [b.encode() if isinstance(b, str) else b for b in malformed_lines()]
    step = len(lines) // (len(bad) + 1)
    for k, b in enumerate(bad):
        lines.insert((k + 1) * step + k, b)
    out.write_bytes(b"\n".join(lines) + b"\n")
    return out
