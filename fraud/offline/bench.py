"""`fraud bench`: throughput and latency of the embedded detector, against a passthrough baseline
measured in the same run (decode + validate + encode a decision, no state, no scoring).

Figures, not assertions: tests never time anything; this command is where the numbers come from.
Also measured: the kernel's first-run compile time and the start-up time with numba's cache warm
(each in a fresh interpreter), and the process's peak resident memory after each row.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from array import array

import numpy as np
import orjson

from fraud.core.detector import RUN_MAX, Detector, DetectorSettings, open_detector
from fraud.core.latency import percentiles
from fraud.core.records import BadRecord, decode
from fraud.errors import UserError
from fraud.runners.embedded import run_file
from fraud.scoring.model import FastModel
from fraud.scoring.rules import RuleSet
from fraud.state.feedback import FeedbackIndex
from fraud.state.store import StateStore

_WARM = (
    "import time; t = time.perf_counter(); from fraud.offline.bench import warm_up; warm_up(); "
    "print(time.perf_counter() - t)"
)


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
            out.write(
                orjson.dumps(
                    {
                        "tx_id": tx.tx_id,
                        "card_id": tx.card_id,
                        "event_time": tx.event_time,
                        "decision": "allow",
                        "score": 0.0,
                        "model_score": None,
                        "rules": [],
                        "latency_ms": (clock() - arrived) / 1e6,
                        "late": False,
                        "repeat": False,
                    }
                )
                + b"\n"
            )
            lat.append((clock() - arrived) / 1e6)
            n += 1
    return n / (time.perf_counter() - t0), lat


def warm_up() -> None:
    """Run every compiled function once (numba compiles on first call, or loads its cache)."""
    from fraud.core.records import validate
    from fraud.scoring.model import load_model
    from fraud.scoring.rules import load_rules
    from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES

    store = StateStore(None, cache_size=1)
    try:
        det = Detector(store, rules=load_rules(DEFAULT_RULES), model=load_model(DEFAULT_MODEL))
        t = 1_767_225_600_000
        det.run(
            [
                validate(
                    {
                        "tx_id": str(k),
                        "card_id": f"c{k % 2}",
                        "merchant_id": "m",
                        "amount": 1.0,
                        "event_time": t + k,
                        "channel": "pos",
                        "lat": 1.0,
                        "lon": 2.0,
                    }
                )
                for k in range(3)
            ]
        )
        store.arena.make_space(1 << 20)
        det.plan.merchants.sweep(0)
        det.plan.merchants.make_room()
        det.model.score_rows(np.zeros((1, len(det.plan.names))))
    finally:
        store.close()


def startup_times() -> dict[str, float]:
    """Seconds for a fresh interpreter to be ready to decide: with an empty numba cache (the first
    run after an install or a kernel change compiles) and with the cache that run left."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="fraud-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for name in ("first run (compiles the kernels)", "cached start-up"):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _WARM], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"kernel warm-up failed: {proc.stderr.strip().splitlines()[-1:]}")
            out[name] = time.perf_counter() - t0
    return out


def _pcts(lat: array) -> dict[str, float]:
    return percentiles(np.frombuffer(lat, dtype=np.float64))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(
    input_path: str,
    rules: RuleSet,
    model: FastModel | None,
    settings: DetectorSettings,
    checkpoint_every: int,
    feedback_path: str | None = None,
    run_max: int = RUN_MAX,
    checkpoint_interval_ms: int | None = None,
) -> list[dict]:
    """One row per pipeline. The passthrough runs before, between and after the detector rows and
    its median is the baseline: on a shared 2-core machine one short passthrough varies by +-30%
    from run to run, and its median measured across the bench is the fair denominator."""
    rows = []
    cadence = f"every {checkpoint_every:,}" + (
        "" if checkpoint_interval_ms is None else f" or {checkpoint_interval_ms / 1000:g} s"
    )
    base_runs: list[tuple[float, array]] = []
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp:
        out = os.path.join(tmp, "out.jsonl")
        base_runs.append(passthrough(input_path, out))
        if not base_runs[0][1]:
            raise UserError(f"{input_path}: no valid transaction to measure")
        reports = FeedbackIndex.from_file(feedback_path) if feedback_path else None
        variants = [("detector, rules only", None, None)]
        if model is not None:
            variants.append(("detector, rules + model" + (" + fraud reports" if reports else ""), model, reports))
        for name, m, fb in variants:
            state = os.path.join(tmp, str(len(rows)))
            with open_detector(state, rules=rules, model=m, settings=settings, feedback=fb) as det:  # kernels load
                stats = run_file(
                    det,
                    input_path,
                    out,
                    out + ".bad",
                    checkpoint_every=checkpoint_every,
                    checkpoint_interval_ms=checkpoint_interval_ms,
                    run_max=run_max,
                )
            rows.append(
                {
                    "pipeline": f"{name} (RocksDB, checkpoint {cadence})",
                    "tx_per_s": stats.throughput,
                    **stats.latencies_ms.percentiles(),
                    "peak_rss_mb": _peak_rss_mb(),
                }
            )
            base_runs.append(passthrough(input_path, out))
    ordered = sorted(base_runs, key=lambda r: r[0])
    tps, lat = ordered[len(ordered) // 2]
    rows.insert(
        0,
        {
            "pipeline": "passthrough (decode + encode), median of "
            f"{len(base_runs)}: {ordered[0][0]:,.0f}-{ordered[-1][0]:,.0f} tx/s",
            "tx_per_s": tps,
            **_pcts(lat),
            "peak_rss_mb": _peak_rss_mb(),
            "runs_tx_per_s": [r[0] for r in base_runs],
        },
    )
    for r in rows:
        r["vs_passthrough"] = r["tx_per_s"] / tps
    return rows


def format_bench(rows: list[dict], n: int, startup: dict[str, float] | None = None, run_max: int = RUN_MAX) -> str:
    w = max(len(r["pipeline"]) for r in rows)
    lines = [
        f"{n:,} transactions, one process, this machine; kernel runs of at most {run_max} events",
        f"{'pipeline':<{w}} {'tx/s':>9} {'x base':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'peak RSS':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r['pipeline']:<{w}} {r['tx_per_s']:>9,.0f} {r['vs_passthrough']:>7.2f} "
            f"{r['p50']:>8.3f} {r['p99']:>8.3f} {r['p99.9']:>9.3f} {r['peak_rss_mb']:>6,.0f} MB"
        )
    lines.append("latency: from the line taken from the read-ahead buffer to the decision made (`latency_ms`)")
    if startup:
        lines.append(
            "start-up, fresh interpreter to kernels ready: " + "; ".join(f"{k} {v:.1f} s" for k, v in startup.items())
        )
    return "\n".join(lines)
