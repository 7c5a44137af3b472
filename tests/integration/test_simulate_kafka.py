"""`fraud simulate --kafka`: the simulated stream on a real broker, byte for byte, keyed and paced.

    export KAFKA_BOOTSTRAP=$(scripts/kafka.sh start)
    .venv/bin/python -m pytest tests/integration/test_simulate_kafka.py -q

Without ``KAFKA_BOOTSTRAP`` the tests use 127.0.0.1:9092 and fail (not skip) when nothing answers.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from fraud.core.records import parse_time
from fraud.errors import UserError
from fraud.runners.kafka.admin import check_reachable, ensure_topics, topic_partitions
from fraud.settings.kafka import KafkaSettings
from generator.kafka_sink import interleave, produce_stream
from generator.simulate import SimConfig, iter_feedback, iter_records, write_files

pytestmark = pytest.mark.kafka

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@pytest.fixture(scope="module")
def bootstrap() -> str:
    addr = os.environ.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP
    try:
        check_reachable(KafkaSettings(bootstrap=addr), timeout=10)
    except UserError as exc:
        pytest.fail(f"{exc}; start one with `export KAFKA_BOOTSTRAP=$(scripts/kafka.sh start)`", pytrace=False)
    return addr


@pytest.fixture
def settings(bootstrap: str):
    """KafkaSettings with fresh, uniquely named topics; the topics are deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    s = KafkaSettings(bootstrap=bootstrap, partitions=4)
    s.topics = {role: f"it-sim-{role}-{suffix}" for role in s.topics}
    yield s
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    existing = set(admin.list_topics(timeout=10).topics)
    mine = [t for t in existing if t.endswith(suffix)]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            try:
                fut.result(timeout=30)
            except KafkaException:
                pass


def _drain(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[int, int, str, bytes, int, int]]:
    """Every message of `topic` up to its current end: (partition, offset, key, value, ts_type, ts)."""
    n = topic_partitions(KafkaSettings(bootstrap=bootstrap), topic)
    assert n > 0, f"topic {topic} does not exist"
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-drain-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "log_level": 0,
        }
    )
    try:
        parts = [TopicPartition(topic, p, 0) for p in range(n)]
        ends = {p.partition: c.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        c.assign(parts)
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pos = {tp.partition: tp.offset for tp in c.position(parts)}
            if all(ends[p] == 0 or pos[p] >= ends[p] for p in ends):
                return out
            for msg in c.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                ts_type, ts = msg.timestamp()
                out.append((msg.partition(), msg.offset(), msg.key().decode(), msg.value(), ts_type, ts))
        raise AssertionError(f"did not reach the end offsets {ends} of {topic} within {timeout}s")
    finally:
        c.close()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_stream_lands_on_kafka_byte_for_byte(settings: KafkaSettings, tmp_path: Path) -> None:
    # Short feedback delay: most reports fall inside the 3 simulated days and get interleaved.
    cfg = SimConfig(cards=200, days=3, seed=5, feedback_delay_days=0.5)
    files = {k: tmp_path / f"{k}.jsonl" for k in ("tx", "labels", "feedback")}
    write_files(cfg, str(files["tx"]), str(files["labels"]), str(files["feedback"]))
    tx_lines, label_lines, fb_lines = (_lines(files[k]) for k in ("tx", "labels", "feedback"))
    assert len(tx_lines) > 1000 and fb_lines

    calls: list[tuple[int, int]] = []
    wall0 = time.time()
    stats = produce_stream(cfg, settings, progress=lambda done, total: calls.append((done, total)))
    wall1 = time.time()
    assert stats["n_tx"] == stats["n_labels"] == len(tx_lines)
    assert stats["n_feedback"] == len(fb_lines)
    assert stats["delivery_errors"] == 0 and stats["error"] is None
    assert stats["seconds"] > 0 and stats["rate_achieved"] > 0
    assert calls and calls[-1] == (len(tx_lines), len(tx_lines))

    b = settings.bootstrap
    for role in ("transactions", "labels", "feedback"):
        assert topic_partitions(settings, settings.topics[role]) == settings.partitions

    # Transactions: exactly the file's records, keyed by card, one partition per card, file order per card.
    txs = _drain(b, settings.topics["transactions"])
    assert Counter(v for *_, v, _tt, _ts in txs) == Counter(tx_lines)
    partition_of: dict[str, set[int]] = defaultdict(set)
    got_per_card: dict[str, list[bytes]] = defaultdict(list)
    for part, _off, key, value, ts_type, ts in sorted(txs, key=lambda m: (m[0], m[1])):
        assert key == orjson.loads(value)["card_id"]
        partition_of[key].add(part)
        got_per_card[key].append(value)
        assert ts_type == TIMESTAMP_CREATE_TIME and wall0 * 1000 - 1000 <= ts <= wall1 * 1000 + 1000
    assert all(len(p) == 1 for p in partition_of.values()), "a card's transactions span partitions"
    assert len({next(iter(p)) for p in partition_of.values()}) > 1, "all cards on one partition"
    want_per_card: dict[str, list[bytes]] = defaultdict(list)
    for line in tx_lines:
        want_per_card[orjson.loads(line)["card_id"]].append(line)
    assert got_per_card == want_per_card

    # Labels: one per transaction, keyed by tx_id.
    labels = _drain(b, settings.topics["labels"])
    assert Counter(v for *_, v, _tt, _ts in labels) == Counter(label_lines)
    assert all(key == orjson.loads(v)["tx_id"] for _p, _o, key, v, _tt, _ts in labels)

    # Feedback: every report, keyed by card.
    fb = _drain(b, settings.topics["feedback"])
    assert Counter(v for *_, v, _tt, _ts in fb) == Counter(fb_lines)
    assert all(key == orjson.loads(v)["card_id"] for _p, _o, key, v, _tt, _ts in fb)


def test_feedback_follows_the_stream_clock() -> None:
    """A report is produced right after the first transaction whose event time reaches its reported_at."""
    cfg = SimConfig(cards=200, days=3, seed=5, feedback_delay_days=0.5)
    records, feedback = list(iter_records(cfg)), list(iter_feedback(cfg))
    merged = list(interleave(records, feedback))
    assert [m[2] for m in merged if m[0] == "tx"] == [r[1] for r in records]
    assert [m[2] for m in merged if m[0] == "fb"] == feedback  # reported_at order kept
    high = prev_high = None  # event-time high mark after / before the latest transaction
    n_tx = inside = 0
    for kind, key, value, _label in merged:
        rec = orjson.loads(value)
        if kind == "tx":
            t = parse_time(rec["event_time"])
            prev_high, high = high, t if high is None else max(high, t)
            n_tx += 1
            continue
        assert key == rec["card_id"]
        rep = parse_time(rec["reported_at"], "reported_at")
        if high is not None and high >= rep:
            inside += 1  # the stream has reached reported_at: the latest transaction got it there
            assert prev_high is None or prev_high < rep
        else:  # no transaction reaches reported_at: after the whole stream
            assert n_tx == len(records)
    assert inside > 0, "no report fell inside the stream: the test does not exercise interleaving"


def test_rate_limiter_paces_the_stream(settings: KafkaSettings) -> None:
    cfg = SimConfig(cards=250, days=6, seed=3)  # ~3000 transactions
    start = time.monotonic()
    stats = produce_stream(cfg, settings, rate=2000)
    elapsed = time.monotonic() - start
    assert stats["n_tx"] > 2500 and stats["delivery_errors"] == 0
    floor = 0.8 * stats["n_tx"] / 2000  # ~1.2 s: a loose lower bound only (slow machines are fine)
    assert stats["seconds"] >= floor and elapsed >= floor
    assert stats["rate_achieved"] <= 2000 * 1.05


def test_ensure_topics_is_idempotent(settings: KafkaSettings) -> None:
    a, b = settings.topics["decisions"], settings.topics["dead_letters"]
    ensure_topics(settings, {a: 3, b: 2})
    ensure_topics(settings, [a, b])  # existing: left as they are, no error
    ensure_topics(settings, [a], partitions=6)
    assert (topic_partitions(settings, a), topic_partitions(settings, b)) == (3, 2)
    assert topic_partitions(settings, f"it-missing-{uuid.uuid4().hex[:10]}") == 0


def test_unreachable_broker_is_a_one_line_user_error() -> None:
    start = time.monotonic()
    with pytest.raises(UserError) as info:
        check_reachable(KafkaSettings(bootstrap="127.0.0.1:1"), timeout=2.0)
    assert time.monotonic() - start < 2.0 + 3.0
    msg = str(info.value)
    assert "127.0.0.1:1" in msg and "unreachable" in msg and "\n" not in msg


def test_cli_names_every_topic(settings: KafkaSettings, tmp_path: Path) -> None:
    """`fraud simulate --kafka` with its own transactions, labels and feedback topics: a second stream
    never mixes its labels or fraud reports into another stream's topics."""
    import subprocess
    import sys

    fraud = str(Path(sys.executable).with_name("fraud"))
    common = ["--cards", "60", "--days", "9", "--seed", "3"]
    files = [str(tmp_path / n) for n in ("tx.jsonl", "labels.jsonl", "fb.jsonl")]
    subprocess.run(
        [fraud, "simulate", "--out", files[0], "--labels", files[1], "--feedback", files[2], *common],
        check=True,
        capture_output=True,
    )
    t = settings.topics
    r = subprocess.run(
        [
            fraud,
            "simulate",
            "--kafka",
            settings.bootstrap,
            "--topic",
            t["transactions"],
            "--labels-topic",
            t["labels"],
            "--feedback-topic",
            t["feedback"],
            "--partitions",
            "2",
            *common,
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    for role, path in zip(("transactions", "labels", "feedback"), files):
        assert topic_partitions(settings, t[role]) == 2
        want = _lines(Path(path))
        assert want, path
        assert Counter(v for *_, v, _tt, _ts in _drain(settings.bootstrap, t[role])) == Counter(want)
