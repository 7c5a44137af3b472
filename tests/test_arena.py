"""The card arena: compaction, growth, eviction to RocksDB and the per-card cap keep windows exact.

The kernel keeps every card's events in blocks of shared arrays; blocks move when they grow and the
arrays are compacted or enlarged when full. None of that may change a feature: a detector whose arena
starts tiny (so it moves blocks all the time) must compute exactly what a roomy one computes.
"""

from __future__ import annotations

import math
import random

import numpy as np

from fraud.core.detector import Detector
from fraud.core.records import validate
from fraud.state.arena import CardArena
from fraud.state.store import StateStore

T0 = 1_767_225_600_000
FEATS = [
    "count_1h",
    "sum_24h",
    "max_24h",
    "distinct_merchants_24h",
    "count_7d",
    "secs_since_prev",
    "amount_to_avg_30d",
    "new_merchant",
]


def _stream(n: int, cards: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    t = T0
    out = []
    for k in range(n):
        t += rng.randint(0, 600_000)
        late = rng.random() < 0.1
        out.append(
            {
                "tx_id": f"t{k}",
                "card_id": f"c{rng.randrange(cards)}",
                "merchant_id": f"m{rng.randrange(7)}",
                "amount": round(rng.uniform(1, 300), 2),
                "event_time": t - (rng.randint(0, 3_600_000) if late else 0),
            }
        )
    return out


def _features(events: list[dict], store: StateStore, run: int) -> np.ndarray:
    det = Detector(store, extra_features=FEATS)
    rows = []
    for i in range(0, len(events), run):
        res = det.run([validate(e) for e in events[i : i + run]])
        rows.append(res.X[:, [det.plan.index[f] for f in FEATS]].copy())
    return np.vstack(rows)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_tiny_arena_moves_blocks_without_changing_a_feature():
    events = _stream(3000, 40, 1)
    roomy = StateStore(None)
    tiny = StateStore(None, cache_size=5)  # also: cards leave memory and come back from RocksDB
    tiny.arena = CardArena(tiny.arena.max_events, 5, tiny._keep_evicted, slots=2, events=16)
    try:
        want = _features(events, roomy, 64)
        got = _features(events, tiny, 7)
    finally:
        roomy.close()
        tiny.close()
    assert _same(got, want)
    assert len(tiny.arena.evi) > 16  # it had to grow


def test_a_card_keeps_at_most_its_cap_of_events():
    store = StateStore(None, max_events=8)
    det = Detector(store, extra_features=["count_7d", "sum_7d"])
    try:
        for k in range(20):
            det.update(
                validate(
                    {
                        "tx_id": str(k),
                        "card_id": "bot",
                        "merchant_id": "m",
                        "amount": float(k),
                        "event_time": T0 + k * 1000,
                    }
                )
            )
        assert det.vector[det.plan.index["count_7d"]] == 8  # the last 8 events, this one included
        assert det.vector[det.plan.index["sum_7d"]] == sum(range(12, 20))
        times, _ = store.arena.history("bot")
        assert len(times) == 8
    finally:
        store.close()


def test_saved_card_format_round_trips(tmp_path):
    store = StateStore(tmp_path / "s", cache_size=1)
    det = Detector(store, extra_features=["count_24h", "dist_prev_km"])
    evs = [
        {
            "tx_id": str(k),
            "card_id": f"c{k % 3}",
            "merchant_id": "m",
            "amount": 2.5 * k,
            "channel": "pos",
            "lat": 10.0 + k,
            "lon": 20.0 - k,
            "event_time": T0 + k * 60_000,
        }
        for k in range(9)
    ]
    for e in evs[:6]:
        det.update(validate(e))
    store.checkpoint(det.checkpoint_meta())
    store.close()
    store = StateStore(tmp_path / "s", cache_size=1)
    det = Detector(store, extra_features=["count_24h", "dist_prev_km"])
    det.update(validate(evs[6]))
    assert det.vector[det.plan.index["count_24h"]] == 3
    assert not math.isnan(det.vector[det.plan.index["dist_prev_km"]])
    store.close()


def test_store_written_by_the_pure_python_core_is_refused(tmp_path):
    import orjson
    import pytest
    from rocksdict import Options, Rdict

    from fraud.errors import UserError

    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    db = Rdict(str(tmp_path / "old"), opts)
    db[b"\x00meta"] = orjson.dumps({"max_ts": T0})  # what the v1 core wrote: no card_format
    db.close()
    with pytest.raises(UserError, match="card format v1.*empty --state directory"):
        StateStore(tmp_path / "old")
