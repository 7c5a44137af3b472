"""The live view of an embedded run: the same status line as a Kafka worker, and Prometheus metrics
on --metrics-port (updated once a second while transactions flow)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
import urllib.request

import orjson

from fraud.runners.live_view import StatusLine, watermark_text

RULES = "rules:\n  - name: big\n    action: review\n    when: {feature: amount, op: '>', value: 1000}\n"
T0 = 1_767_614_400_000


def test_the_status_line_shows_the_panel():
    out = io.StringIO()
    line = StatusLine(True, out=out)
    counts = {"allow": 90, "review": 7, "block": 3, "dead_letters": 2}
    line.show(counts, [0.1, 0.2, 0.3], T0, {"big": 5, "burst": 9, "odd": 1, "rare": 1}, "read 40%")
    text = out.getvalue()
    for part in ("tx/s", "decided 100 (block 3, review 7)", "dead 2", "p50 0.20 ms", "p99 0.30 ms"):
        assert part in text, text
    assert "watermark at 2026-01-05 12:00" in text and "top rules burst 9, big 5, odd 1" in text
    assert "read 40%" in text
    assert watermark_text(int(time.time() * 1000) - 2500, time.time()).startswith("watermark lag 2.")
    quiet = io.StringIO()
    StatusLine(False, out=quiet).show(counts, [], None, {})
    assert quiet.getvalue() == ""  # not a terminal: nothing drawn


def _scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {k: float(v) for k, v in (ln.rsplit(" ", 1) for ln in text.splitlines() if ln and not ln.startswith("#"))}


def test_embedded_metrics_port_serves_what_was_decided(tmp_path):
    rules, err = tmp_path / "rules.yaml", tmp_path / "stderr.txt"
    rules.write_text(RULES)
    cmd = [sys.executable, "-m", "fraud.cli", "detect", "--input", "-", "--output", str(tmp_path / "d.jsonl")]
    cmd += ["--no-model", "--rules", str(rules), "--metrics-port", "0"]
    with open(err, "wb") as errf:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errf)
    sent = big = 0
    seen: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        url = None
        while True:
            assert time.monotonic() < deadline, (seen, err.read_text())
            assert proc.poll() is None, err.read_text()
            for _ in range(10):  # transactions keep coming: the metrics follow them once a second
                amount = 5000.0 if sent % 10 == 0 else 20.0
                big += amount > 1000
                line = {"tx_id": f"t{sent}", "card_id": f"c{sent % 7}", "merchant_id": "m", "amount": amount}
                proc.stdin.write(orjson.dumps({**line, "event_time": T0 + sent * 1000}) + b"\n")
                sent += 1
            proc.stdin.flush()
            if url is None:
                found = re.search(r"metrics on (http://\S+)", err.read_text())
                url = found and found.group(1)
                continue
            seen = _scrape(url)
            if seen.get('fraud_decisions_total{decision="review"}', 0) >= 20:
                break
        # nothing is sent now, so the updates stop: wait until the last one is complete (a scrape
        # may land in the middle of one, between the counters and the histogram)
        kinds = [f'fraud_decisions_total{{decision="{k}"}}' for k in ("allow", "review", "block")]
        while seen["fraud_decision_latency_seconds_count"] != sum(seen[k] for k in kinds):
            assert time.monotonic() < deadline, seen
            seen = _scrape(url)
        assert seen['fraud_worker_info{instance="embedded",mode="embedded"}'] == 1
        decided = sum(seen[f'fraud_decisions_total{{decision="{k}"}}'] for k in ("allow", "review", "block"))
        assert 0 < decided <= sent and seen["fraud_decision_latency_seconds_count"] == decided
        assert seen['fraud_rules_fired_total{rule="big"}'] == seen['fraud_decisions_total{decision="review"}']
        assert seen["fraud_watermark_timestamp_seconds"] >= T0 / 1000
        assert "fraud_kafka_transactions_committed_total" not in seen  # Kafka's own metrics only on Kafka
    finally:
        proc.stdin.close()
        rc = proc.wait(60)
    assert rc == 0, err.read_text()
    assert len((tmp_path / "d.jsonl").read_bytes().splitlines()) == sent
