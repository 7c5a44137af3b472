"""Embedded runs restarted from their checkpoint decide exactly as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import orjson
import pytest
from conftest import FRAUD

from fraud.core.detector import RUN_MAX, Detector
from fraud.errors import ConfigError
from fraud.runners.embedded import run_file
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES, load_config
from fraud.state.store import StateStore


def _decisions(path) -> list[dict]:
    out = []
    for line in open(path, "rb"):
        d = orjson.loads(line)
        d.pop("latency_ms")  # the only field that may differ between runs
        out.append(d)
    return out


def _run(tx, out, state, stop_after=None, every=500):
    model = load_model(DEFAULT_MODEL) if (DEFAULT_MODEL / "model.json").exists() else None
    store = StateStore(state, cache_size=50)  # small cache: dirty cards go through the pending batch
    try:
        det = Detector(store, rules=load_rules(DEFAULT_RULES), model=model)
        return run_file(det, str(tx), str(out), str(out) + ".bad", checkpoint_every=every, stop_after=stop_after)
    finally:
        store.close()


def test_restart_from_checkpoint_gives_the_same_decisions(small_stream, tmp_path):
    tx = small_stream["tx"]
    _run(tx, tmp_path / "full.jsonl", tmp_path / "s1")
    want = _decisions(tmp_path / "full.jsonl")
    out = tmp_path / "crashy.jsonl"
    state = tmp_path / "s2"
    stops = [1_234, 5_000, 9_999]
    for stop in stops:  # each run dies between checkpoints, leaving decisions past the checkpoint
        _run(tx, out, state, stop_after=stop)
    stats = _run(tx, out, state)
    assert stats.resumed_from_line > 0
    got = _decisions(out)
    assert len(got) == len(want)
    assert got == want


def test_sigkill_mid_stream_then_restart(small_stream, tmp_path):
    tx = small_stream["tx"]
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("state:\n  checkpoint_every: 300\n  cache_cards: 100\n")
    base = [FRAUD, "detect", "--input", str(tx), "--config", str(cfg)]
    subprocess.run(
        base + ["--output", str(tmp_path / "ref.jsonl"), "--state", str(tmp_path / "ref")],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "out.jsonl"
    args = base + ["--output", str(out), "--state", str(tmp_path / "st")]
    total = sum(1 for _ in open(tx, "rb"))
    kills = 0
    for target in (total // 5, total // 2, (4 * total) // 5):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists() and out.stat().st_size > target * 150:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.02)
        proc.wait()
    assert kills >= 1, "the detector finished before it could be killed"
    subprocess.run(args, check=True, capture_output=True)
    assert _decisions(out) == _decisions(tmp_path / "ref.jsonl")


@pytest.mark.parametrize("every", [1, 7])
def test_tiny_checkpoint_intervals(small_stream, tmp_path, every):
    # Very frequent checkpoints: the state and the position stay in step even at every record.
    lines = open(small_stream["tx"], "rb").readlines()[:400]
    tx = tmp_path / "tx.jsonl"
    tx.write_bytes(b"".join(lines))
    _run(tx, tmp_path / "a.jsonl", tmp_path / "sa", every=every)
    _run(tx, tmp_path / "b.jsonl", tmp_path / "sb", stop_after=123, every=every)
    _run(tx, tmp_path / "b.jsonl", tmp_path / "sb", every=every)
    assert _decisions(tmp_path / "a.jsonl") == _decisions(tmp_path / "b.jsonl")


def test_time_driven_checkpoints_resume_where_the_last_one_was(small_stream, tmp_path):
    # A record count this run never reaches, and a time bound every run passes: each run of the
    # stream ends with a checkpoint, so a crash resumes from the last run decided before it.
    lines = open(small_stream["tx"], "rb").readlines()[:600]
    tx = tmp_path / "tx.jsonl"
    tx.write_bytes(b"".join(lines))
    rules = load_rules(DEFAULT_RULES)

    def run(out, state, stop_after=None):
        store = StateStore(state, cache_size=50)
        try:
            det = Detector(store, rules=rules)
            return run_file(
                det,
                str(tx),
                str(out),
                str(out) + ".bad",
                checkpoint_every=10**9,
                checkpoint_interval_ms=0,
                stop_after=stop_after,
            )
        finally:
            store.close()

    run(tmp_path / "a.jsonl", tmp_path / "sa")
    run(tmp_path / "b.jsonl", tmp_path / "sb", stop_after=250)
    stats = run(tmp_path / "b.jsonl", tmp_path / "sb")
    assert 250 <= stats.resumed_from_line < 250 + RUN_MAX  # checkpointed after the run that reached 250
    assert _decisions(tmp_path / "b.jsonl") == _decisions(tmp_path / "a.jsonl")


def test_checkpoint_interval_is_a_duration_named_when_wrong(tmp_path):
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("state:\n  checkpoint_interval: 250ms\n")
    assert load_config(cfg).checkpoint_interval_ms == 250
    cfg.write_text("state:\n  checkpoint_interval: soon\n")
    with pytest.raises(ConfigError, match=r"pipeline.yaml: state.checkpoint_interval"):
        load_config(cfg)
