"""The detector on a real Kafka broker: equality with the embedded run, exactly-once through
SIGKILLs, a worker lost for good, a broker restart. Needs KAFKA_BOOTSTRAP (bin/test sets it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from integration.kafka_helpers import (
    BOOTSTRAP,
    FRAUD,
    ROOT,
    _topic,
    assert_exactly_once_and_equal,
    committed_count,
    decisions,
    embedded_reference,
    finish,
    java_console_read,
    key,
    produce_file,
    read_committed,
    worker,
)

pytestmark = pytest.mark.kafka


def test_simulator_stream_on_kafka_equals_embedded(sim_stream, tmp_path):
    want = embedded_reference(sim_stream, tmp_path)
    inp, out = _topic("tx"), _topic("dec")
    produce_file(sim_stream, inp)
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", "sim")
    finish(w, tmp_path / "sim.log", 180)
    assert_exactly_once_and_equal(decisions(out), want)


def test_feedback_topic_on_kafka_equals_embedded_with_the_feedback_file(tmp_path):
    """Fraud reports as a global table: every worker reads the whole feedback topic, and decisions
    (merchant fraud rates, known-compromised cards) equal an embedded run given the same reports."""
    from generator.simulate import SimConfig, write_files

    tx, fb = tmp_path / "tx.jsonl", tmp_path / "fb.jsonl"
    write_files(
        SimConfig(cards=300, days=20, seed=23, late_share=0.05), str(tx), str(tmp_path / "labels.jsonl"), str(fb)
    )
    want = embedded_reference(tx, tmp_path, feedback=fb)
    inp, out, fbt = _topic("tx"), _topic("dec"), _topic("fb", partitions=2)
    produce_file(fb, fbt)
    produce_file(tx, inp)
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", "fb", feedback_topic=fbt)
    finish(w, tmp_path / "fb.log", 180)
    assert_exactly_once_and_equal(decisions(out), want)
    blind = embedded_reference(tx, tmp_path)  # without reports: some decisions must differ
    assert sum(1 for k, v in want.items() if blind[k][1] != v[1]) > 0


def test_merchant_features_matter_in_the_comparison(stream, reference, tmp_path):
    """The default model reads the merchant table (a global table on Kafka), and the foreign stream is
    long enough (55 days) for its 7-day-delayed windows to fill: equality below is a real check."""
    blind = embedded_reference(stream, tmp_path, blind_to_merchants=True)
    changed = sum(1 for k, v in reference.items() if blind[k][1] != v[1])
    assert changed > len(reference) // 2


def test_kafka_decisions_equal_embedded(stream, reference, tmp_path):
    inp, out = _topic("tx"), _topic("dec")
    produce_file(stream, inp)
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", "solo")
    finish(w, tmp_path / "solo.log", 180)
    got = decisions(out)
    assert_exactly_once_and_equal(got, reference)
    dlq = [m for m in read_committed("transactions.dlq") if m.headers()]
    assert len([m for m in dlq if m.topic() == "transactions.dlq"]) >= 10
    # keys: decisions keyed by card, so a card's decisions stay on one partition
    by_card: dict[str, set[int]] = {}
    for m in read_committed(out):
        by_card.setdefault(m.key().decode(), set()).add(m.partition())
    assert all(len(p) == 1 for p in by_card.values())


def test_sigkill_three_times_then_exactly_once(stream, reference, tmp_path):
    inp, out = _topic("tx"), _topic("dec")
    produce_file(stream, inp)
    group = f"g-{uuid.uuid4().hex[:6]}"
    total = len(reference)
    for k in range(3):
        w = worker(tmp_path, inp, out, group, "crashy", idle=None)
        target = (k + 1) * total // 4
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and w.poll() is None:
            time.sleep(0.3)
            if committed_count(out) >= target:
                break
        time.sleep(0.2 * k)  # land the kill at different points of a transaction
        w.send_signal(signal.SIGKILL)
        w.wait()
    w = worker(tmp_path, inp, out, group, "crashy")
    finish(w, tmp_path / "crashy.log", 240)
    assert_exactly_once_and_equal(decisions(out), reference)
    # The same check by a client that is not librdkafka: Apache Kafka's own Java console consumer.
    java = java_console_read(out, "read_committed")
    assert_exactly_once_and_equal(java, reference)
    uncommitted = java_console_read(out, "read_uncommitted")  # aborted batches of the killed workers too
    assert len(uncommitted) >= len(java)


def test_two_workers_one_killed_for_good(stream, reference, tmp_path):
    inp, out = _topic("tx"), _topic("dec")
    group = f"g-{uuid.uuid4().hex[:6]}"
    a = worker(tmp_path, inp, out, group, "a", idle=25.0)
    b = worker(tmp_path, inp, out, group, "b", idle=None)
    time.sleep(6)  # both join the group and split the 4 partitions
    produce_file(stream, inp, rate=4000)
    deadline = time.monotonic() + 60
    while committed_count(out) < len(reference) // 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    b.send_signal(signal.SIGKILL)  # gone for good: its partitions (and their state) move to a
    b.wait()
    finish(a, tmp_path / "a.log", 300)
    assert_exactly_once_and_equal(decisions(out), reference)
    # a rebuilt the dead worker's partitions by replaying their input (it had no local state for them)
    replayed = re.search(r"replayed ([0-9,]+)", (tmp_path / "a.log").read_text(errors="replace"))
    assert replayed and int(replayed.group(1).replace(",", "")) > 0


def test_broker_restart_mid_stream(stream, reference, tmp_path):
    port = BOOTSTRAP.rsplit(":", 1)[1]
    inp, out = _topic("tx"), _topic("dec")
    produce_file(stream, inp)
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", "survivor", idle=15.0)
    deadline = time.monotonic() + 60
    while committed_count(out) < len(reference) // 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    env = {**os.environ, "KAFKA_PORT": port}
    subprocess.run(
        [str(ROOT / "scripts" / "kafka.sh"), "restart"], check=True, env=env, capture_output=True, timeout=120
    )
    finish(w, tmp_path / "survivor.log", 240)
    assert_exactly_once_and_equal(decisions(out), reference)


def test_sigterm_finishes_the_batch_commits_and_resumes(stream, reference, tmp_path):
    inp, out = _topic("tx"), _topic("dec")
    # Produced at a pace the worker outruns, so the SIGTERM lands mid-stream whatever the machine
    # (a topic filled up front was sometimes decided whole before the signal arrived).
    producing = threading.Thread(target=produce_file, args=(stream, inp), kwargs={"rate": 4000})
    producing.start()
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = worker(tmp_path, inp, out, group, "polite", idle=None)
    deadline = time.monotonic() + 60
    while committed_count(out) < len(reference) // 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    w.send_signal(signal.SIGTERM)
    finish(w, tmp_path / "polite.log", 60)  # a clean exit, status 0
    partial = decisions(out)
    producing.join()
    assert 0 < len(partial) < len(reference)
    w = worker(tmp_path, inp, out, group, "polite")
    finish(w, tmp_path / "polite.log", 180)
    assert_exactly_once_and_equal(decisions(out), reference)


def test_card_numbers_stay_masked_on_kafka(tmp_path):
    """A raw card number as card_id (and so as the message key) is dead-lettered, never decided; the
    dead letter's key, `error` header and value carry it masked only."""
    pan = "4111111111111111"
    lines = [
        {"tx_id": "ok", "card_id": "card_a", "merchant_id": "m", "amount": 5.0, "event_time": 1767614400000},
        {"tx_id": "pan_card", "card_id": pan, "merchant_id": "m", "amount": 5.0, "event_time": 1767614401000},
        {"tx_id": "pan_time", "card_id": "card_b", "merchant_id": "m", "amount": 5.0, "event_time": pan},
    ]
    src = tmp_path / "pan.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    inp, out = _topic("pan"), _topic("dec")
    produce_file(src, inp)
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", "pan")
    finish(w, tmp_path / "pan.log", 120)
    assert [d["tx_id"] for d in decisions(out)] == ["ok"]
    dead = [m for m in read_committed("transactions.dlq") if orjson.loads(m.value())["topic"] == inp]
    assert len(dead) == 2
    for m in dead:
        raw = (m.key() or b"") + m.value() + b"".join(v for _, v in m.headers())
        assert pan.encode() not in raw, raw
        assert b"1111" in raw
    assert pan not in (tmp_path / "pan.log").read_text(errors="replace")


def _scrape(url: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (comments skipped)."""
    import urllib.request

    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_prometheus_metrics_count_what_was_committed(stream, tmp_path):
    """--metrics-port 0 picks a free port and says which; the counters match the committed output.
    The worker takes the broker address from FRAUD_KAFKA_BOOTSTRAP (`--kafka config`)."""
    good = open(stream, "rb").read().splitlines()[:3000]
    good = [line for line in good if line.startswith(b"{") and b'"tx_id"' in line][:2500]
    src = tmp_path / "small.jsonl"
    src.write_bytes(b"\n".join(good[:1000] + [b"not json"] + good[1000:] + [b"", b'{"tx_id": 1}']) + b"\n")
    inp, out = _topic("tx"), _topic("dec")
    produce_file(src, inp)
    log = tmp_path / "metrics.log"
    # the broker address from the environment (`--kafka config`), as a deployment would pass it
    w = subprocess.Popen(
        [
            FRAUD,
            "detect",
            "--kafka",
            "config",
            "--group",
            f"g-{uuid.uuid4().hex[:6]}",
            "--input-topic",
            inp,
            "--output-topic",
            out,
            "--instance",
            "metered",
            "--feedback-topic",
            f"no-feedback-{uuid.uuid4().hex[:8]}",
            "--state",
            str(tmp_path / "state"),
            "--metrics-port",
            "0",
        ],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "FRAUD_KAFKA_BOOTSTRAP": BOOTSTRAP},
    )
    try:
        url, seen = None, {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if url is None:
                found = re.search(r"metrics on (http://\S+)", log.read_text(errors="replace"))
                url = found and found.group(1)
                continue
            seen = _scrape(url)
            decided = sum(seen.get(f'fraud_decisions_total{{decision="{k}"}}', 0) for k in ("allow", "review", "block"))
            watermark = seen.get("fraud_watermark_timestamp_seconds", 0)  # set once a second
            if decided >= len(good) and seen.get("fraud_consumer_lag", 1) == 0 and watermark > 0:
                break
        assert url, log.read_text(errors="replace")[-2000:]
        assert decided == len(good) == committed_count(out)
        assert seen["fraud_dead_letters_total"] == 3
        assert seen["fraud_decision_latency_seconds_count"] == len(good)
        assert seen["fraud_assigned_partitions"] == 4
        assert seen["fraud_kafka_transactions_committed_total"] >= 1
        assert seen['fraud_worker_info{instance="metered",mode="kafka"}'] == 1
        fired = {k: n for k, n in seen.items() if k.startswith("fraud_rules_fired_total")}
        assert sum(fired.values()) == sum(len(d["rules"]) for d in decisions(out))  # committed ones
        assert seen["fraud_watermark_timestamp_seconds"] > 1e9  # an event time of the stream, in seconds
    finally:
        w.send_signal(signal.SIGTERM)
    assert w.wait(60) == 0, log.read_text(errors="replace")[-2000:]


def _group_committed(group: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10)}
    finally:
        c.close()


def test_idle_means_drained_not_a_partial_assignment(sim_stream, tmp_path):
    """A member that holds partitions without deciding them (a dead worker whose session has not
    expired yet) must not make a `--stop-when-idle` worker exit with only its own share decided: it
    waits, then takes over the partitions once the member leaves, and decides every transaction."""
    want = embedded_reference(sim_stream, tmp_path)
    inp, out = _topic("tx"), _topic("dec")
    total = produce_file(sim_stream, inp)
    group = f"g-{uuid.uuid4().hex[:6]}"
    holder = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "enable.auto.commit": False,
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 10000,
        }
    )
    holder.subscribe([inp])
    try:
        deadline = time.monotonic() + 60
        while not holder.assignment():
            holder.poll(0.2)
            assert time.monotonic() < deadline, "the holder never got partitions"
        w = worker(tmp_path, inp, out, group, "idle", idle=1.0)
        # wait until the worker has decided its share: the group then has two partitions at their end
        highs = {}
        probe = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"probe-{uuid.uuid4().hex}"})
        for p in range(4):
            highs[p] = probe.get_watermark_offsets(TopicPartition(inp, p), timeout=10)[1]
        probe.close()
        deadline = time.monotonic() + 180
        while True:
            holder.poll(0.2)  # stays a live member, and takes part in the rebalance the worker causes
            done = [p for p, off in _group_committed(group, inp).items() if off >= highs[p] > 0]
            if len(done) >= 2:
                break
            assert w.poll() is None, (tmp_path / "idle.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the worker never drained its share"
        # drained its share, idle for longer than --stop-when-idle: it must still be running
        until = time.monotonic() + 5
        while time.monotonic() < until:
            holder.poll(0.2)
            assert w.poll() is None, "exited with partitions of the group undecided"
    finally:
        holder.close()  # leaves the group: its partitions move to the worker
    finish(w, tmp_path / "idle.log", 180)
    got = decisions(out)
    assert len(got) == total - 10  # the 10 malformed lines are dead letters
    assert_exactly_once_and_equal(got, want)


def test_at_least_once_repeats_are_identical_after_sigkills(stream, reference, tmp_path):
    """kafka.guarantee: at_least_once. Decisions go out without transactions; after SIGKILLs the
    records since the last offset commit are decided again, with the same key and the same bytes,
    so the last record per tx_id gives the embedded run's decisions, every one of them."""
    inp, out = _topic("tx"), _topic("dec")
    produce_file(stream, inp)
    group = f"g-{uuid.uuid4().hex[:6]}"
    env = {"FRAUD_KAFKA_GUARANTEE": "at_least_once"}
    total = len(reference)
    for k in range(2):
        w = worker(tmp_path, inp, out, group, "alo", idle=None, extra_env=env)
        target = (k + 1) * total // 3
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and w.poll() is None:
            time.sleep(0.3)
            if committed_count(out) >= target:
                break
        w.send_signal(signal.SIGKILL)
        w.wait()
    w = worker(tmp_path, inp, out, group, "alo", extra_env=env)
    finish(w, tmp_path / "alo.log", 240)
    records: dict[tuple, set[tuple[bytes, bytes]]] = {}
    last: dict[tuple, dict] = {}
    got = read_committed(out)
    print(f"at-least-once: {len(got) - len(reference)} repeated decisions")  # -s shows it
    for m in got:
        d = orjson.loads(m.value())
        assert "latency_ms" not in d and dict(m.headers() or [])["latency_ms"]
        records.setdefault(key(d), set()).add((m.key(), m.value()))
        last[key(d)] = d
    assert set(records) == set(reference), f"missing {len(set(reference) - set(records))} decisions"
    assert all(len(v) == 1 for v in records.values()), "a repeated decision differs from the first"
    assert_exactly_once_and_equal(list(last.values()), reference)
