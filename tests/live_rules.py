"""One scenario for a rules file edited while `fraud detect` runs, embedded or on Kafka.

The runner under test is driven through three callables: `send(line)` gives it a transaction,
`decision(tx_id)` waits for that transaction's decision, `log()` is what it wrote on stderr so far.
Every wait is on a condition (a decision with the new version, a log line), never a fixed sleep:
transactions keep coming while waiting, as they would in production, and each is checked against
the rules that must be in force at that point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson

from fraud.scoring.rules import rules_version

T0 = 1_767_614_400_000  # 2026-01-05T12:00Z
RULES_V1 = "rules:\n  - name: big\n    action: review\n    when: {feature: amount, op: '>', value: 1000}\n"
RULES_V2 = "rules:\n  - name: tiny\n    action: block\n    when: {feature: amount, op: '<', value: 10}\n"
# an unknown feature: refused, naming the file, the rule and the field
RULES_BAD = "rules:\n  - name: tiny\n    action: block\n    when: {feature: amount_per_fortnight, op: '<', value: 10}\n"
# a window the running detector does not compute yet: added to its plan live
RULES_V3 = RULES_V2 + "  - name: burst_7m\n    action: block\n    when: {feature: count_7m, op: '>=', value: 3}\n"


class Driver:
    def __init__(self, send: Callable[[bytes], None], decision: Callable[[str], dict], log: Callable[[], str]):
        self.send_line, self.decision, self.log = send, decision, log
        self.n = 0

    def decide(self, amount: float, card: str = "card_live") -> dict:
        self.n += 1
        tx_id = f"live{self.n:05d}"
        ts = T0 + self.n * 1_000
        line = {"tx_id": tx_id, "card_id": card, "merchant_id": "m_live", "amount": amount, "event_time": ts}
        self.send_line(orjson.dumps(line))
        return self.decision(tx_id)


def _until(what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, f"timed out waiting for {what}"


def run_scenario(rules_path: Path, drive: Driver) -> None:
    v1, v2, v3 = (rules_version(r.encode()) for r in (RULES_V1, RULES_V2, RULES_V3))
    d = drive.decide(5000.0)
    assert (d["decision"], d["rules"], d["rules_version"]) == ("review", ["big"], v1), d
    d = drive.decide(5.0)
    assert (d["decision"], d["rules_version"]) == ("allow", v1), d

    rules_path.write_text(RULES_V2)  # in place, as an editor saves
    seen: list[dict] = []

    def took(version: str) -> bool:
        seen.append(drive.decide(5.0))
        return seen[-1]["rules_version"] == version

    _until("the edited rules to apply", lambda: took(v2))
    assert all((s["decision"], s["rules_version"]) == ("allow", v1) for s in seen[:-1]), seen
    assert (seen[-1]["decision"], seen[-1]["rules"]) == ("block", ["tiny"]), seen[-1]

    rules_path.write_text(RULES_BAD)
    seen.clear()
    _until("the invalid edit to be refused", lambda: took("never") or "refused the edit" in drive.log())
    assert all((s["decision"], s["rules"], s["rules_version"]) == ("block", ["tiny"], v2) for s in seen), seen
    line = next(x for x in drive.log().splitlines() if "refused the edit" in x)
    assert str(rules_path) in line and "rule 'tiny'" in line and "when.feature" in line and v2 in line, line
    d = drive.decide(5000.0)  # detection went on with the previous version
    assert (d["decision"], d["rules"], d["rules_version"]) == ("allow", [], v2), d

    rules_path.write_text(RULES_V3)
    seen.clear()
    _until("a rule with a new window to apply", lambda: took(v3))
    burst = [drive.decide(50.0, card="card_burst") for _ in range(3)]  # within 7 minutes
    assert [b["rules"] for b in burst] == [[], [], ["burst_7m"]], burst
    assert all(b["rules_version"] == v3 for b in burst), burst
