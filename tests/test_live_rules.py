"""A rules file edited during a running embedded `fraud detect` (stdin in, a file out) applies
without a restart; an invalid edit is refused and logged, and detection goes on (tests/live_rules.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
from live_rules import RULES_V1, Driver, run_scenario

from fraud.scoring.rules import load_rules, parse_rules_file, rules_version
from fraud.scoring.rules_watch import RulesWatch


def test_an_edited_rules_file_applies_live_and_a_bad_edit_is_refused(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_V1)
    out, err = tmp_path / "decisions.jsonl", tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "fraud.cli", "detect", "--input", "-", "--output", str(out), "--no-model"]
    with open(err, "wb") as errf:
        proc = subprocess.Popen([*cmd, "--rules", str(rules)], stdin=subprocess.PIPE, stderr=errf)
    decided: dict[str, dict] = {}
    read = [0]

    def send(line: bytes) -> None:
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()

    def decision(tx_id: str) -> dict:
        end = time.monotonic() + 60
        while tx_id not in decided:
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < end, f"no decision for {tx_id}"
            data = out.read_bytes() if out.exists() else b""
            whole = data[: data.rfind(b"\n") + 1]
            for ln in whole[read[0] :].splitlines():
                d = orjson.loads(ln)
                decided[d["tx_id"]] = d
            read[0] = len(whole)
        return decided[tx_id]

    try:
        run_scenario(rules, Driver(send, decision, err.read_text))
    finally:
        proc.stdin.close()
        rc = proc.wait(60)
    assert rc == 0, err.read_text()
    assert "Traceback" not in err.read_text()


def test_the_watch_reads_a_file_only_once_it_holds_still(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_V1)
    logs: list[str] = []
    watch = RulesWatch(path, load_rules(path), logs.append, check_s=0.0)
    assert watch.rules.version == rules_version(RULES_V1.encode())
    path.write_text("rules: [")  # caught half-written
    assert not watch.poll()  # changed: wait one more check
    path.write_text(RULES_V1.replace("1000", "2000"))
    assert not watch.poll()  # changed again since
    assert watch.poll() and watch.changes == 1 and not logs[:-1]
    assert "in force from the next transaction" in logs[-1]
    assert watch.rules.rules[0].when["value"] == 2000
    assert not watch.poll()  # unchanged


def test_a_rules_version_is_the_content_digest():
    a = parse_rules_file(RULES_V1.encode(), "a.yaml")
    b = parse_rules_file(RULES_V1.encode(), "b.yaml")
    assert a.version == b.version == rules_version(RULES_V1.encode()) and len(a.version) == 12


def test_switching_rules_midway_equals_deciding_with_the_new_rules(small_stream):
    """After `set_rules`, decisions are those of a detector started with the new rules (a rule on a
    window the old rules did not name included), on the same history."""
    from live_rules import RULES_V3

    from fraud.core.detector import open_detector, runs_of
    from fraud.core.records import iter_transactions
    from fraud.scoring.rules import parse_rules

    v1, v3 = (
        parse_rules_file(RULES_V1.encode(), "v1.yaml"),
        parse_rules_file(RULES_V3.replace("10}", "30}").encode(), "v3.yaml"),
    )
    assert parse_rules({"rules": []}).version is None  # rules from memory have no file version
    runs = list(runs_of(iter_transactions(str(small_stream["tx"])), 8))
    half = len(runs) // 2
    with open_detector(rules=v1) as switched, open_detector(rules=v3) as fresh:
        for run in runs[:half]:
            switched.run(run)
            fresh.run(run)
        switched.set_rules(v3)
        fired = 0
        for run in runs[half:]:
            a = switched.records(run, switched.run(run), [0] * len(run), lambda: 0)
            b = fresh.records(run, fresh.run(run), [0] * len(run), lambda: 0)
            assert a == b
            fired += sum(bool(d["rules"]) for d in a)
    assert fired and all(d["rules_version"] == v3.version for d in a)


def test_a_bad_edit_made_again_is_said_again_and_a_deleted_file_waits(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_V1)
    logs: list[str] = []
    watch = RulesWatch(path, load_rules(path), logs.append, check_s=0.0)

    def settle() -> None:
        for _ in range(3):  # a change is read once it has held still for one check
            watch.poll()

    path.write_text("rules: [")
    settle()
    path.write_text(RULES_V1)  # reverted
    settle()
    path.write_text("rules: [ ")  # the same mistake again, a different file
    settle()
    assert sum("refused the edit" in x for x in logs) == 2, logs
    path.unlink()
    assert not watch.poll() and not any("cannot read" in x for x in logs)  # not at once: it may come back
    path.write_text(RULES_V1)
    settle()
    assert not any("cannot read" in x for x in logs), logs


def test_an_embedded_run_refuses_a_live_merchant_feature_it_does_not_feed():
    from fraud.core.detector import Detector, cannot_apply_live
    from fraud.state.store import StateStore

    merchant = RULES_V1 + "  - name: busy\n    action: review\n    when: {feature: merchant_tx_7d, op: '>', value: 3}\n"
    det = Detector(StateStore.in_memory(), rules=parse_rules_file(RULES_V1.encode(), "v1.yaml"))
    reason = cannot_apply_live(det, parse_rules_file(merchant.encode(), "m.yaml"))
    assert reason and "merchant_tx_7d" in reason and "restart" in reason
    assert cannot_apply_live(det, parse_rules_file(RULES_V1.replace("1000", "9").encode(), "v.yaml")) is None
    fed = Detector(StateStore.in_memory(), rules=parse_rules_file(merchant.encode(), "m.yaml"))
    assert cannot_apply_live(fed, parse_rules_file(merchant.replace("> '", ">= '").encode(), "m2.yaml")) is None
