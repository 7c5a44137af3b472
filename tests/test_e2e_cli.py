"""The story a new user runs, through the installed `fraud` command: simulate, train, detect,
evaluate, backtest - and determinism of the decisions."""

from __future__ import annotations

import json
import subprocess

import orjson
from conftest import FRAUD, ROOT


def fraud(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([FRAUD, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_simulate_train_detect_evaluate_backtest(tmp_path):
    tx, labels, model = tmp_path / "tx.jsonl", tmp_path / "labels.jsonl", tmp_path / "model"
    fraud("simulate", "--out", str(tx), "--labels", str(labels), "--cards", "500", "--days", "14", "--seed", "5")
    n_tx = sum(1 for _ in open(tx, "rb"))
    fraud("train", "--transactions", str(tx), "--labels", str(labels), "--model", str(model), "--warmup-days", "2")
    card = json.loads((model / "model_card.json").read_text())
    assert card["training_data"]["rows_replayed"] == n_tx
    assert card["validation"]["split"].startswith("time-ordered")
    out = tmp_path / "decisions.jsonl"
    detected = fraud("detect", "--input", str(tx), "--output", str(out), "--model", str(model))
    assert "warning" not in detected.stderr  # trained without fraud reports: none needed to serve it
    decisions = [orjson.loads(line) for line in open(out, "rb")]
    assert len(decisions) == n_tx
    assert {d["decision"] for d in decisions} <= {"allow", "review", "block"}
    assert all(0.0 <= d["score"] <= 1.0 and d["latency_ms"] >= 0 for d in decisions)
    assert (tmp_path / "decisions.rejected.jsonl").read_bytes() == b""
    assert any(d["late"] for d in decisions)  # the simulator delivers some events late
    plots = tmp_path / "plots"
    report = fraud(
        "evaluate",
        "--decisions",
        str(out),
        "--labels",
        str(labels),
        "--json",
        str(tmp_path / "m.json"),
        "--plots",
        str(plots),
    )
    assert "card precision@100" in report.stdout
    pngs = sorted(p.name for p in plots.iterdir())
    assert pngs == ["block_rate.png", "latency.png", "precision_recall.png", "roc.png", "score_histogram.png"]
    images = [(plots / p).read_bytes() for p in pngs]
    assert all(b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) > 10_000 for b in images)  # drawn, not blank
    assert len(set(images)) == len(images)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["roc_auc"] > 0.8  # the model ranks frauds far above chance even on a small stream
    assert set(metrics["per_scenario"]) >= {"card_testing", "account_takeover", "impossible_travel"}
    bt = fraud(
        "backtest",
        "--rules",
        str(ROOT / "config" / "rules.yaml"),
        "--transactions",
        str(tx),
        "--labels",
        str(labels),
        "--model",
        str(model),
    )
    assert "card_testing_burst" in bt.stdout and "block rate" in bt.stdout


def test_same_input_same_decisions_file_and_stdin(small_stream, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    fraud("detect", "--input", str(small_stream["tx"]), "--output", str(a))
    with open(small_stream["tx"], "rb") as src, open(b, "wb") as dst:
        proc = subprocess.run(
            [FRAUD, "detect", "--input", "-", "--output", "-", "--dead-letter", str(tmp_path / "bad.jsonl")],
            stdin=src,
            stdout=dst,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
    assert proc.returncode == 0, proc.stderr

    def strip(path):
        return [{k: v for k, v in orjson.loads(line).items() if k != "latency_ms"} for line in open(path, "rb")]

    assert strip(a) == strip(b)


def test_a_model_trained_with_reports_warns_when_served_without_them(small_stream, tmp_path):
    """The shipped model was trained with fraud reports: without them it still decides everything,
    but says its fraud-history features are empty."""
    args = ("detect", "--input", str(small_stream["tx"]))
    bare = fraud(*args, "--output", str(tmp_path / "a.jsonl"))
    warning, summary = bare.stderr.splitlines()
    assert warning.startswith("fraud: warning:") and "--feedback" in warning
    assert summary.startswith("decided")
    fed = fraud(*args, "--output", str(tmp_path / "b.jsonl"), "--feedback", str(small_stream["feedback"]))
    assert "warning" not in fed.stderr


def test_sigterm_stops_an_embedded_run_cleanly(tmp_path):
    """SIGTERM (a service manager stopping it) ends like Ctrl-C: a message, status 143, the
    temporary RocksDB state removed, the decisions so far flushed as whole lines."""
    import os
    import signal
    import time

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [FRAUD, "detect", "--input", "-", "--output", str(out), "--no-model"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    for i in range(50):
        proc.stdin.write(
            json.dumps(
                {
                    "tx_id": f"t{i}",
                    "card_id": "c1",
                    "merchant_id": "m1",
                    "amount": 3.5,
                    "event_time": 1767225600000 + i * 1000,
                }
            )
            + "\n"
        )
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:  # deciding
        time.sleep(0.05)
    assert any(tmp.iterdir()), "no temporary state while running"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "fraud: terminated" and "Traceback" not in stderr
    assert not any(tmp.iterdir()), "temporary state left behind"
    assert all(orjson.loads(line)["tx_id"] for line in open(out, "rb"))
