"""One card cannot exhaust the detector: a card-testing bot sending tens of thousands of payments
within a minute keeps a bounded history (`detector.max_events_per_card`), bounded memory, and
changes no other card's decision. (`fraud bench --flood` measures its cost per event.)"""

from __future__ import annotations

import random

from fraud.core.detector import DetectorSettings, open_detector, runs_of
from fraud.core.records import Transaction
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_RULES

T0 = 1_767_225_600_000
CAP = 200


def _background(rng: random.Random) -> list[Transaction]:
    txs = []
    for k in range(3000):
        t = T0 + rng.randrange(0, 120_000)
        card = f"c{rng.randrange(300)}"
        txs.append(Transaction(f"n{k}", card, f"m{rng.randrange(50)}", rng.choice([2.0, 40.0, 700.0]), t, t))
    return txs


def _flood(n: int) -> list[Transaction]:
    return [
        Transaction(
            f"bot{k}", "bot", f"bot_m{k % 50}", 1.0, T0 + 30_000 + k * 60_000 // n, T0 + 30_000 + k * 60_000 // n
        )
        for k in range(n)
    ]


def _decide(txs: list[Transaction]) -> tuple[dict[str, tuple], object]:
    got = {}
    with open_detector(rules=load_rules(DEFAULT_RULES), settings=DetectorSettings(max_events_per_card=CAP)) as det:
        for run in runs_of(txs, 8):
            res = det.run(run)
            for tx, d in zip(run, det.records(run, res, [0] * len(run), lambda: 0), strict=True):
                got[tx.tx_id] = (d["decision"], d["score"], d["rules"], d["late"])
        arena = det.store.arena
        if "bot" not in arena.slot_of:
            return got, (0, len(arena.evi), 0)
        bot = len(arena.history("bot")[0])
        t = T0 + 91_000
        last = det.run([Transaction("probe", "bot", "bot_m0", 1.0, t, t)])
        return got, (bot, len(arena.evi), last.X[0, det.plan.index["count_10m"]])


def test_a_flooding_card_is_capped_and_changes_no_other_decision():
    rng = random.Random(5)
    background = sorted(_background(rng), key=lambda tx: tx.ts)
    flood = _flood(30_000)
    mixed = sorted(background + flood, key=lambda tx: tx.ts)  # arrival in event-time order
    alone, (_, rows_alone, _) = _decide(background)
    both, (bot_events, rows, count_10m) = _decide(mixed)
    assert len(both) == len(background) + len(flood)  # every one decided, once
    assert {k: v for k, v in both.items() if not k.startswith("bot")} == alone
    assert bot_events == CAP  # the oldest made way
    assert rows == rows_alone  # the arena did not grow for it
    assert count_10m == CAP  # the window covers what is kept
    assert sum(1 for k, v in both.items() if k.startswith("bot") and v[0] == "block") > len(flood) // 2
