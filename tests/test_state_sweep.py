"""State on disk is bounded by the longest window: checkpoints delete saved cards gone stale.

A card whose events are all older than the detector's history cutoff would lose them all to
eviction at its next event; deleting it from RocksDB changes no decision (it comes back as a new
card), and an endless stream of new cards no longer grows the store without bound.
"""

from __future__ import annotations

import random

import orjson

from fraud.core.detector import Detector
from fraud.core.units import DAY_MS
from fraud.runners.embedded import run_file
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_RULES
from fraud.state.store import CARD_PREFIX, StateStore

T0 = 1_767_225_600_000


def _stream(path) -> None:
    """Cards 0-99 on days 0-5; cards 50-199 on days 45-50: cards 50-99 come back after 40 idle days."""
    rng = random.Random(3)
    lines = []
    for first, last, day0 in ((0, 100, 0), (50, 200, 45)):
        t = T0 + day0 * DAY_MS
        for k in range(3000):
            t += rng.randrange(60_000, 240_000)
            card = rng.randrange(first, last)
            rec = {"tx_id": f"t{day0}_{k}", "card_id": f"c{card}", "merchant_id": f"m{rng.randrange(40)}"}
            lines.append(orjson.dumps({**rec, "amount": rng.choice([2.0, 30.0, 900.0]), "event_time": t}))
    path.write_bytes(b"\n".join(lines) + b"\n")


def _decide(src, out, store) -> None:
    try:
        det = Detector(store, rules=load_rules(DEFAULT_RULES))
        run_file(det, str(src), str(out), str(out) + ".bad", checkpoint_every=50)
    finally:
        if store._db is not None:
            keys = [k for k in store._db.keys() if k.startswith(CARD_PREFIX)]
            store.saved_cards = len(keys)
        store.close()


def test_stale_cards_leave_the_disk_and_decisions_do_not_change(tmp_path):
    src = tmp_path / "tx.jsonl"
    _stream(src)
    swept = StateStore(tmp_path / "state", cache_size=20)  # most cards live on disk between events
    _decide(src, tmp_path / "swept.jsonl", swept)
    kept = StateStore(tmp_path / "kept", cache_size=1_000)  # every card in memory: none deleted
    _decide(src, tmp_path / "kept.jsonl", kept)

    def read(name):
        return [
            {k: v for k, v in orjson.loads(line).items() if k != "latency_ms"} for line in open(tmp_path / name, "rb")
        ]

    got, want = read("swept.jsonl"), read("kept.jsonl")
    assert got == want and any(d["rules"] for d in want)
    assert swept.forgotten >= 80  # cards 0-99, 31 days after their last event (but those in memory)
    assert swept.saved_cards == 150  # cards 50-199: cards 0-49 never came back
    assert kept.forgotten == 0 and kept.saved_cards == 200
