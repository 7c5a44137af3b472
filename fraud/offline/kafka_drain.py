"""Maximum drain throughput on Kafka, for `fraud bench --kafka`: one consumer process drains a topic
filled before it starts.

The rate is the input's records over the span between the first and the last record the process
wrote, as the broker stamped them on append (the output topics use `LogAppendTime`): the process's
start-up (kernels, the global tables' first read, joining the group) and the wait for it to notice
it is done are not counted, whatever the process is (the detector, the passthrough, the Quix Streams
peer, which stamps its outputs with window times). The process is done when its group's committed
offsets reach the end of every partition of the input.
"""

from __future__ import annotations

import subprocess
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from fraud.errors import UserError
from fraud.runners.kafka.admin import ensure_topics
from fraud.settings.kafka import KafkaSettings

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def produce_waiting(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    """Produce one record, waiting for deliveries to make room while the local queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


def fill(settings: KafkaSettings, topic: str, lines: list[bytes], keys: list[bytes]) -> None:
    """Produce every line (keyed by card) and wait for all of them to be acknowledged."""
    producer = Producer(settings.client_config(**{"linger.ms": 20, "enable.idempotence": True}))
    for line, key in zip(lines, keys):
        produce_waiting(producer, topic, key, line)
        producer.poll(0)
    if producer.flush(60):
        raise UserError(f"could not produce the benchmark's input to {topic!r} on {settings.bootstrap}")


def _committed_to_end(consumer: Consumer, group_parts: list[TopicPartition], ends: dict[int, int]) -> bool:
    try:
        committed = consumer.committed(group_parts, timeout=10)
    except KafkaException:  # a broker hiccup: ask again
        return False
    return all(tp.offset >= ends[tp.partition] for tp in committed)


def _output_span(settings: KafkaSettings, topic: str) -> tuple[int, float]:
    """(records, seconds between the first and last broker append) of a topic, read to its end."""
    reader = Consumer(
        settings.client_config(
            **{
                "group.id": f"span-{topic}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
            }
        )
    )
    parts = reader.list_topics(topic, timeout=10).topics[topic].partitions
    reader.assign([TopicPartition(topic, p, 0) for p in parts])
    eof: set[int] = set()
    n, first, last = 0, float("inf"), float("-inf")
    deadline = time.monotonic() + 120
    while len(eof) < len(parts) and time.monotonic() < deadline:
        for m in reader.consume(10_000, 1.0):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            ts = m.timestamp()[1]
            n += 1
            first, last = min(first, ts), max(last, ts)
    reader.close()
    return n, (last - first) / 1000 if n else 0.0


def measure_drain(
    settings: KafkaSettings,
    name: str,
    command: list[str],
    group: str,
    input_topic: str,
    output_topic: str,
    records: int,
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
) -> dict:
    """Run `command` (a consumer in `group` of `input_topic`, writing to `output_topic`, which is
    created here with broker append times) until it has committed the whole input; its rate."""
    ensure_topics(settings, {output_topic: settings.partitions}, config=APPEND_TIME)
    admin = Consumer(settings.client_config(**{"group.id": group, "enable.auto.commit": False}))
    parts = sorted(admin.list_topics(input_topic, timeout=10).topics[input_topic].partitions)
    ends = {p: admin.get_watermark_offsets(TopicPartition(input_topic, p), timeout=10)[1] for p in parts}
    group_parts = [TopicPartition(input_topic, p) for p in parts]
    t0 = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        while not _committed_to_end(admin, group_parts, ends):
            if proc.poll() is not None:
                err = (proc.stderr.read() or b"").decode(errors="replace").strip().splitlines()[-3:]
                raise UserError(f"{name} exited with status {proc.returncode} before draining: {' | '.join(err)}")
            if time.monotonic() - t0 > timeout:
                raise UserError(f"{name} did not drain {records:,} records within {timeout:g} s")
            time.sleep(0.25)
        wall = time.monotonic() - t0
    finally:
        admin.close()
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    outputs, span = _output_span(settings, output_topic)
    return {
        "pipeline": name,
        "records": records,
        "outputs": outputs,
        "span_s": span,
        "tx_per_s": records / span if span > 0 else float("inf"),
        "wall_s": wall,
    }
