"""A rules file edited while a Kafka worker runs applies from the next batch without a restart; an
invalid edit is refused and logged while the worker goes on (the scenario of tests/live_rules.py,
against the real broker; decisions read back read_committed)."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from live_rules import RULES_V1, Driver, run_scenario

from integration.kafka_helpers import BOOTSTRAP, _topic, finish, worker

pytestmark = pytest.mark.kafka


def test_an_edited_rules_file_applies_on_a_running_worker(tmp_path):
    inp, out = _topic("live", 1), _topic("livedec", 1)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_V1)
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0})
    reader = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"live-read-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    reader.assign([TopicPartition(out, 0, 0)])
    w = worker(
        tmp_path,
        inp,
        out,
        f"g-{uuid.uuid4().hex[:8]}",
        "live",
        idle=None,
        extra_args=("--rules", str(rules), "--no-model"),
    )
    log = tmp_path / "live.log"
    decided: dict[str, dict] = {}

    def send(line: bytes) -> None:
        producer.produce(inp, key=b"k", value=line)
        producer.flush(30)

    def decision(tx_id: str) -> dict:
        end = time.monotonic() + 90  # the first one waits for the group's first assignment
        while tx_id not in decided:
            assert w.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < end, f"no decision for {tx_id}"
            for m in reader.consume(100, 0.2):
                if not m.error():
                    d = orjson.loads(m.value())
                    decided[d["tx_id"]] = d
        return decided[tx_id]

    try:
        run_scenario(rules, Driver(send, decision, lambda: log.read_text(errors="replace")))
    finally:
        reader.close()
        w.terminate()
    finish(w, log, 60)
