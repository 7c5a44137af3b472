"""`fraud bench`: throughput and latency of the embedded detector, against a passthrough baseline
measured in the same run (decode + validate + encode a decision, no state, no scoring).

Figures, not assertions: tests never time anything; this command is where the numbers come from.
"""

from __future__ import annotations

import os
import tempfile
import time
from array import array

import numpy as np
import orjson

from .detector import Detector, DetectorSettings
from .embedded import run_file
from .errors import UserError
from .model import FastModel
from .records import BadRecord, decode
from .rules import RuleSet
from .state_store import StateStore


def passthrough(input_path: str, output_path: str) -> tuple[float, array]:
    """The floor any detector pays: read, decode, validate, encode, write."""
    lat = array("d")
    clock = time.perf_counter_ns
    t0 = time.perf_counter()
    n = 0
    with open(input_path, "rb") as src, open(output_path, "wb") as out:
        for raw in src:
            arrived = clock()
            try:
                tx = decode(raw)
            except BadRecord:
                continue
            out.write(orjson.dumps({"tx_id": tx.tx_id, "card_id": tx.card_id, "event_time": tx.event_time,
                                    "decision": "allow", "score": 0.0, "model_score": None, "rules": [],
                                    "latency_ms": (clock() - arrived) / 1e6, "late": False}) + b"\n")
            lat.append((clock() - arrived) / 1e6)
            n += 1
    return n / (time.perf_counter() - t0), lat


def _pcts(lat: array) -> dict[str, float]:
    a = np.frombuffer(lat, dtype=np.float64)
    return {f"p{q:g}": float(np.percentile(a, q)) for q in (50, 99, 99.9)}


def run_bench(input_path: str, rules: RuleSet, model: FastModel | None,
              settings: DetectorSettings, checkpoint_every: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp:
        out = os.path.join(tmp, "out.jsonl")
        tps, lat = passthrough(input_path, out)
        if not lat:
            raise UserError(f"{input_path}: no valid transaction to measure")
        rows.append({"pipeline": "passthrough (decode + encode)", "tx_per_s": tps, **_pcts(lat)})
        variants = [("detector, rules only", None), ("detector, rules + model", model)]
        for name, m in variants:
            if name.endswith("model") and model is None:
                continue
            store = StateStore(os.path.join(tmp, name.replace(" ", "_")))
            try:
                det = Detector(store, rules=rules, model=m, settings=settings)
                stats = run_file(det, input_path, out, out + ".bad", checkpoint_every=checkpoint_every)
            finally:
                store.close()
            rows.append({"pipeline": f"{name} (RocksDB, checkpoint every {checkpoint_every:,})",
                         "tx_per_s": stats.throughput, **_pcts(stats.latencies_ms)})
    base = rows[0]["tx_per_s"]
    for r in rows:
        r["vs_passthrough"] = r["tx_per_s"] / base
    return rows


def format_bench(rows: list[dict], n: int) -> str:
    lines = [f"{n:,} transactions, one process, this machine",
             f"{'pipeline':<58} {'tx/s':>9} {'x base':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}"]
    for r in rows:
        lines.append(f"{r['pipeline']:<58} {r['tx_per_s']:>9,.0f} {r['vs_passthrough']:>7.2f} "
                     f"{r['p50']:>8.3f} {r['p99']:>8.3f} {r['p99.9']:>9.3f}")
    lines.append("latency: from the line read to the decision made (what `latency_ms` reports)")
    return "\n".join(lines)
