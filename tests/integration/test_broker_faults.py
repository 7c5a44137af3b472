"""Broker trouble, against the real broker: stopped for 30 s mid-stream, and paused (SIGSTOP: it
holds every connection open and answers nothing). No decision lost or duplicated, the decisions
equal the embedded run's, and the worker says on stderr that it is waiting and when it is back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

from integration.kafka_helpers import (
    BOOTSTRAP,
    ROOT,
    _topic,
    assert_exactly_once_and_equal,
    committed_count,
    decisions,
    finish,
    produce_file,
    worker,
)

pytestmark = pytest.mark.kafka
KAFKA = [str(ROOT / "scripts" / "kafka.sh")]
ENV = {**os.environ, "KAFKA_PORT": BOOTSTRAP.rsplit(":", 1)[1]}


def _wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _broker_pid() -> int:
    out = subprocess.run(KAFKA + ["status"], env=ENV, capture_output=True, text=True, check=True).stdout
    return int(out.rsplit("pid ", 1)[1].rstrip(")\n "))


def _started_worker(stream, tmp_path, name):
    inp, out = _topic("tx"), _topic("dec")
    produce_file(stream, inp)
    w = worker(tmp_path, inp, out, f"g-{uuid.uuid4().hex[:6]}", name, idle=15.0)
    return w, out


def test_broker_stopped_for_30_seconds_mid_stream(stream, reference, tmp_path):
    w, out = _started_worker(stream, tmp_path, "outage")
    log = tmp_path / "outage.log"
    _wait_for(lambda: committed_count(out) >= len(reference) // 4, 120, "a quarter of the decisions")
    subprocess.run(KAFKA + ["stop"], env=ENV, check=True, capture_output=True, timeout=120)
    stopped = time.monotonic()
    try:
        _wait_for(lambda: b"does not answer" in log.read_bytes(), 60, "the worker to say it is waiting")
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))  # the outage itself: 30 s
    finally:
        subprocess.run(KAFKA + ["start"], env=ENV, check=True, capture_output=True, timeout=180)
    finish(w, log, 300)
    text = log.read_text(errors="replace")
    assert "answers again after" in text, text[-2000:]
    assert_exactly_once_and_equal(decisions(out), reference)


def test_broker_paused_mid_stream(stream, reference, tmp_path):
    """SIGSTOP: connections stay open and nothing answers, the way a broker stuck in a long GC
    pause or a throttled one looks; past the transaction and session timeouts (10 s each)."""
    w, out = _started_worker(stream, tmp_path, "paused")
    log = tmp_path / "paused.log"
    _wait_for(lambda: committed_count(out) >= len(reference) // 4, 120, "a quarter of the decisions")
    pid = _broker_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(20)  # the pause itself
    finally:
        os.kill(pid, signal.SIGCONT)
    finish(w, log, 300)
    text = log.read_text(errors="replace")
    assert "does not answer" in text and "answers again after" in text, text[-2000:]
    assert_exactly_once_and_equal(decisions(out), reference)
