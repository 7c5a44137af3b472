"""Hostile input through Kafka: the same 100,000 generated lines as tests/test_fuzz.py, as message
values. The worker exits cleanly, every good record gets one committed decision, every bad one one
dead letter with its reason (value and `error` header)."""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hostile import hostile_lines  # noqa: E402

from integration.kafka_helpers import (  # noqa: E402
    _topic,
    finish,
    produce_lines,
    read_committed,
    worker,
)

pytestmark = pytest.mark.kafka
KAFKA_MAX = 1_000_000  # the producer's message.max.bytes: larger values never reach a topic


def test_a_hundred_thousand_hostile_records_through_kafka(tmp_path):
    lines, good, bad_at = hostile_lines(100_000)
    bad = set(bad_at)
    sent = [(n, line) for n, line in enumerate(lines, 1) if len(line) < KAFKA_MAX - 1000]
    assert len(sent) > len(lines) - 100  # only the megabyte strings stay out
    n_bad = sum(1 for n, _ in sent if n in bad)
    inp, out, dlq = _topic("fuzz"), _topic("fuzzdec"), _topic("fuzzdlq")
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(f"kafka:\n  topics:\n    dead_letters: {dlq}\n")
    produce_lines([line for _, line in sent], inp)
    log = tmp_path / "fuzz.log"
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", "fuzz", config=cfg)
    finish(w, log, 300)
    assert b"Traceback" not in log.read_bytes()
    decided = Counter(orjson.loads(m.value())["tx_id"] for m in read_committed(out))
    assert set(decided) == good and set(decided.values()) == {1}
    letters = read_committed(dlq)
    assert len(letters) == n_bad
    for m in letters:
        value = orjson.loads(m.value())
        assert value["error"] and value["topic"] == inp and dict(m.headers())["error"]
        assert len(value["record"]) <= 65_536
    assert any("record_bytes" in orjson.loads(m.value()) for m in letters)
