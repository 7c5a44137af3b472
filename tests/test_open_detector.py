"""`open_detector`: one way to open a store, run a detector and close it; the in-memory store that
replays use decides exactly as a RocksDB one."""

import numpy as np
import pytest

from fraud.core.detector import open_detector, runs_of
from fraud.core.records import iter_transactions
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES
from fraud.state.store import StateStore


def _decide(state, path, cache_cards=100_000):
    out = []
    parts = dict(rules=load_rules(DEFAULT_RULES), model=load_model(DEFAULT_MODEL))
    with open_detector(state, cache_cards, **parts) as det:
        for run in runs_of(iter_transactions(str(path)), 64):
            res = det.run(run)
            out.append(np.hstack([res.out_i, res.out_f]))
        store = det.store
    return np.vstack(out), store


def test_memory_store_decides_as_rocksdb(small_stream, tmp_path):
    mem, store = _decide("memory", small_stream["tx"])
    assert store._db is None and store.meta() is None
    disk, _ = _decide(tmp_path / "state", small_stream["tx"], cache_cards=50)  # evictions to RocksDB too
    assert np.array_equal(mem, disk)


def test_memory_store_has_nowhere_to_checkpoint():
    store = StateStore.in_memory()
    with pytest.raises(RuntimeError):
        store.checkpoint({})
    store.close()
