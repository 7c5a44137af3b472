"""The real local Kafka broker supports what fraudstream relies on: explicit topic creation,
transactional produce (commit and abort), read_committed consumption, and
consume-transform-produce with ``send_offsets_to_transaction``.

Run against the broker from ``scripts/kafka.sh``::

    export KAFKA_BOOTSTRAP=$(scripts/kafka.sh start)
    .venv/bin/python -m pytest tests/integration/test_broker.py -q

Without ``KAFKA_BOOTSTRAP`` the tests use 127.0.0.1:9092 and fail (not skip) when nothing answers.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.kafka

PARTITIONS = 4
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@pytest.fixture(scope="module")
def bootstrap() -> str:
    addr = os.environ.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP
    admin = AdminClient({"bootstrap.servers": addr, "log_level": 0})
    error = None
    try:
        md = admin.list_topics(timeout=10)
    except KafkaException as exc:
        error = exc
    if error is not None:
        pytest.fail(
            f"no Kafka broker answers on {addr} ({error}); start one with "
            "`export KAFKA_BOOTSTRAP=$(scripts/kafka.sh start)`",
            pytrace=False,
        )
    assert md.brokers, f"broker on {addr} returned no brokers in its metadata"
    return addr


@pytest.fixture(scope="module")
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def make_topic(admin: AdminClient):
    """Create uniquely named topics with PARTITIONS partitions; delete them afterwards."""
    created: list[str] = []

    def _make(prefix: str) -> str:
        name = f"it-{prefix}-{uuid.uuid4().hex[:10]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)],
            operation_timeout=30,
        )
        futures[name].result(timeout=30)
        created.append(name)
        _wait_for_leaders(admin, name)
        return name

    yield _make
    if created:
        for fut in admin.delete_topics(created, operation_timeout=30).values():
            try:
                fut.result(timeout=30)
            except KafkaException:
                pass


def _wait_for_leaders(admin: AdminClient, topic: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if (
            md is not None
            and md.error is None
            and len(md.partitions) == PARTITIONS
            and all(p.leader >= 0 for p in md.partitions.values())
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"topic {topic} has no leaders for all {PARTITIONS} partitions after {timeout}s")


def _txn_producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "enable.idempotence": True,
            "transaction.timeout.ms": 60000,
            "linger.ms": 5,
        }
    )
    p.init_transactions(30)
    return p


def _consumer(bootstrap: str, group: str, isolation: str = "read_committed", **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    conf.update(extra)
    return Consumer(conf)


def _drain(bootstrap: str, topic: str, isolation: str, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Read every partition of `topic` from the start up to its current end; (key, value) pairs."""
    c = _consumer(bootstrap, f"it-drain-{uuid.uuid4().hex[:8]}", isolation)
    try:
        parts = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
        # For read_committed the high watermark equals the last stable offset once every
        # transaction on the topic is committed or aborted, as it is here.
        ends = {p.partition: c.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        c.assign(parts)
        out: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pos = {tp.partition: tp.offset for tp in c.position(parts)}
            if all(ends[p] == 0 or pos[p] >= ends[p] for p in ends):
                return out
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.key().decode(), msg.value().decode()))
        raise AssertionError(f"did not reach the end offsets {ends} of {topic} within {timeout}s")
    finally:
        c.close()


def test_transactions_commit_abort_and_read_committed(bootstrap: str, make_topic) -> None:
    topic = make_topic("txn")
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10)
    assert len(md.topics[topic].partitions) == PARTITIONS

    p = _txn_producer(bootstrap, f"it-txn-{uuid.uuid4().hex[:8]}")
    committed = [(f"k{i}", f"committed-1-{i}") for i in range(20)]
    aborted = [(f"k{i}", f"aborted-{i}") for i in range(20)]
    committed2 = [(f"k{i}", f"committed-2-{i}") for i in range(20)]

    for batch, commit in ((committed, True), (aborted, False), (committed2, True)):
        p.begin_transaction()
        for k, v in batch:
            p.produce(topic, key=k, value=v)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(30)  # the aborted records really reach the log before the abort
            p.abort_transaction(30)

    seen = _drain(bootstrap, topic, "read_committed")
    assert sorted(seen) == sorted(committed + committed2)
    # Same keys go to the same partition, so each key's records keep their order.
    for k, _ in committed:
        assert [v for kk, v in seen if kk == k] == [f"committed-1-{k[1:]}", f"committed-2-{k[1:]}"]

    # The aborted records are in the log: read_uncommitted sees them.
    raw = _drain(bootstrap, topic, "read_uncommitted")
    assert sorted(raw) == sorted(committed + aborted + committed2)


def test_send_offsets_to_transaction(bootstrap: str, make_topic) -> None:
    src = make_topic("src")
    dst = make_topic("dst")
    group = f"it-group-{uuid.uuid4().hex[:8]}"

    # Input: 40 plain (non-transactional) records spread over the 4 partitions.
    plain = Producer({"bootstrap.servers": bootstrap})
    inputs = [(f"card-{i}", f"tx-{i}") for i in range(40)]
    for k, v in inputs:
        plain.produce(src, key=k, value=v)
    assert plain.flush(30) == 0

    consumer = _consumer(bootstrap, group, "read_committed")
    consumer.subscribe([src])
    producer = _txn_producer(bootstrap, f"it-ctp-{uuid.uuid4().hex[:8]}")

    def read_some(n: int, timeout: float = 30.0):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=n - len(got), timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                got.append(msg)
        assert len(got) == n, f"read {len(got)} of {n} records within {timeout}s"
        return got

    def process(msgs, commit: bool) -> None:
        producer.begin_transaction()
        for m in msgs:
            producer.produce(dst, key=m.key(), value=m.value().upper())
        # Only partitions the consumer has a position on (an empty partition has none yet).
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)

    try:
        # First transaction: output and input offsets committed together.
        first = read_some(40)
        process(first, commit=True)

        ends = {p: hw for p, hw in _high_watermarks(consumer, src).items() if hw > 0}
        assert sum(ends.values()) == 40
        committed = consumer.committed([TopicPartition(src, p) for p in ends], timeout=10)
        assert {tp.partition: tp.offset for tp in committed} == ends

        # Second transaction aborted: neither its output nor its offsets are visible.
        for k, v in [("card-x", "late-1"), ("card-y", "late-2")]:
            plain.produce(src, key=k, value=v)
        assert plain.flush(30) == 0
        late = read_some(2)
        process(late, commit=False)
        committed_after_abort = consumer.committed([TopicPartition(src, p) for p in ends], timeout=10)
        assert {tp.partition: tp.offset for tp in committed_after_abort} == ends
    finally:
        consumer.close()

    out = _drain(bootstrap, dst, "read_committed")
    assert sorted(out) == sorted((k, v.upper()) for k, v in inputs)


def _high_watermarks(consumer: Consumer, topic: str) -> dict[int, int]:
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
