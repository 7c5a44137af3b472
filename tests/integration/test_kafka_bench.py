"""`fraud bench --kafka`: the end-to-end benchmark runs a real worker and accounts for every decision.

Asserts what the benchmark reports, never how fast: timings are the benchmark's job, not the tests'.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import foreign_sim  # noqa: E402

pytestmark = pytest.mark.kafka


def test_kafka_bench_reports_every_decision(tmp_path: Path) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP") or "127.0.0.1:9092"
    tx = tmp_path / "tx.jsonl"
    foreign_sim.write(str(tx), str(tmp_path / "labels.jsonl"), None, n_customers=60, n_terminals=120, days=10, seed=4)
    n = sum(1 for _ in open(tx, "rb"))
    rate = n / 10  # ten seconds of production: past the 5 s warm-up the percentiles leave out
    out = tmp_path / "bench.json"
    fraud = str(Path(sys.executable).with_name("fraud"))
    run = subprocess.run(
        [
            fraud,
            "bench",
            "--kafka",
            bootstrap,
            "--input",
            str(tx),
            "--rate",
            f"{rate:.3f}",
            "--json",
            str(out),
            "--no-quix",  # the Quix Streams peer needs its own venv from PyPI: the bench's, not CI's
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = orjson.loads(out.read_bytes())
    drains = {r["pipeline"].split(" (")[0]: r for r in report["drain"]}
    assert set(drains) == {"passthrough", "detector, exactly-once", "detector, at-least-once"}
    for name, r in drains.items():
        # every pipeline drained the whole input; the detector wrote exactly one decision each
        assert r["records"] == n and r["span_s"] > 0 and r["tx_per_s"] > 0, name
        assert r["outputs"] == n, name
    assert drains["passthrough"]["vs_passthrough"] == 1.0
    assert "x Quix" in run.stdout and "detector, exactly-once" in run.stdout
    results = report["latency"]
    assert set(results) == {"exactly_once", "at_least_once"}  # both delivery guarantees, one run
    for guarantee, result in results.items():
        assert result["transactions"] == result["decided"] == n
        e2e = result["e2e_ms"]
        assert 0 < e2e["p50"] <= e2e["p90"] <= e2e["p99"] <= e2e["p99.9"]
        assert result["warmup_max_ms"] is not None and result["warmup_max_ms"] > 0
        assert f"{guarantee}: {n:,}/{n:,} decided" in run.stdout
    assert run.stdout.count("after the first 5 s") == 2
    floor = report["floor"]  # the harness alone: producer and reader, no worker
    assert floor["transactions"] == floor["decided"] == n and "floor, no worker" in run.stdout
