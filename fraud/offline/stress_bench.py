"""`fraud bench --soak N` and `fraud bench --flood N`: the embedded detector on streams built to
stress it, through the same `run_file` as `fraud detect`.

- Soak: N transactions of a million cards over months of event time. Per million: throughput,
  p50/p99 latency, resident memory and the state directory's size, which must stay flat once the
  stream is longer than the longest window (evicted history, deleted stale cards).
- Flood: a card-testing bot sends N payments within one minute amid ordinary traffic. Reported: the
  bot's cost per event (bounded by `detector.max_events_per_card`), and the latency of the other
  cards' payments in that minute, with and without the bot.

The streams are synthetic (numpy, seeded): the simulator's Faker population would take longer to
build a million cards than the detector takes to decide them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from fraud.core.detector import DetectorSettings, open_detector
from fraud.core.latency import percentiles
from fraud.core.units import DAY_MS, MINUTE_MS
from fraud.runners.embedded import RunStats, run_file
from fraud.scoring.model import FastModel
from fraud.scoring.rules import RuleSet

T0 = 1_767_225_600_000  # 2026-01-01
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1e6


def _rss_mb() -> float:
    """Resident memory now (not the peak: the soak wants to see it stay flat)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_MB


def _dir_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass  # a file RocksDB just compacted away
    return total / 1e6


def write_synthetic(
    path: str, n: int, cards: int, start_ms: int, span_ms: int, seed: int, card: Callable | None = None
) -> list[int]:
    """n transactions in near event-time order over [start, start + span); card activity skewed
    (a few cards busy, most quiet), each card near its own home. Returns the byte offset after
    each millionth line."""
    rng = np.random.default_rng(seed)
    marks = []
    written = 0
    with open(path, "wb") as out:
        for c0 in range(0, n, 100_000):
            m = min(100_000, n - c0)
            ts = (start_ms + np.arange(c0, c0 + m, dtype=np.int64) * span_ms // n + rng.integers(-2000, 1, m)).tolist()
            ids = (cards * rng.random(m) ** 2).astype(np.int64) if card is None else card(rng, m)
            merchant = rng.integers(0, 20_000, m).tolist()
            amount = np.round(rng.lognormal(3.3, 1.1, m), 2).tolist()
            present = (rng.random(m) < 0.6).tolist()
            lat = ((ids * 0.6180339887) % 1.0 * 120 - 55 + rng.normal(0, 0.05, m)).round(4).tolist()
            lon = ((ids * 0.7548776662) % 1.0 * 340 - 170 + rng.normal(0, 0.05, m)).round(4).tolist()
            lines = []
            for k, cid in enumerate(ids.tolist()):
                rec = {
                    "tx_id": f"s{seed}_{c0 + k}",
                    "card_id": f"card_{cid:07d}",
                    "merchant_id": f"m_{merchant[k]:05d}",
                    "amount": amount[k],
                    "event_time": ts[k],
                }
                if present[k]:
                    rec.update(channel="pos", lat=lat[k], lon=lon[k])
                else:
                    rec["channel"] = "online"
                lines.append(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
            for k, line in enumerate(lines, c0 + 1):
                written += len(line)
                if k % 1_000_000 == 0:
                    marks.append(written)
            out.write(b"".join(lines))
    return marks


def run_soak(
    n: int,
    cards: int,
    days: int,
    rules: RuleSet,
    model: FastModel | None,
    settings: DetectorSettings,
    cache_cards: int,
    checkpoint_every: int,
    checkpoint_interval_ms: int | None,
    run_max: int,
) -> dict:
    """Decide the soak stream with RocksDB state; one row per million records."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fraud-soak-") as tmp:
        src = os.path.join(tmp, "soak.jsonl")
        t = time.perf_counter()
        marks = write_synthetic(src, n, cards, T0, days * DAY_MS, seed=5)
        generated_s = time.perf_counter() - t
        state = os.path.join(tmp, "state")
        stats = RunStats()
        size = os.path.getsize(src)
        chunk: list = []
        last = {"t": time.perf_counter(), "records": 0}

        def at_checkpoint(offset: int) -> None:
            lat = stats.latencies_ms.values
            chunk.append(np.array(lat, dtype=np.float64))
            del lat[:]  # the soak keeps its latencies per million, not all of them
            if len(rows) < len(marks) and offset >= marks[len(rows)] or offset >= size:
                now = time.perf_counter()
                a = np.concatenate(chunk)
                chunk.clear()
                rows.append(
                    {
                        "million": len(rows) + 1,
                        "records": stats.records,
                        "tx_per_s": (stats.records - last["records"]) / (now - last["t"]),
                        **percentiles(a, (50, 99)),
                        "rss_mb": _rss_mb(),
                        "state_mb": _dir_mb(state),
                        "cards_in_memory": len(det.store.arena),
                        "cards_forgotten": det.store.forgotten,
                    }
                )
                last.update(t=now, records=stats.records)

        with open_detector(state, cache_cards, rules=rules, model=model, settings=settings) as det:
            run_file(
                det,
                src,
                os.path.join(tmp, "out.jsonl"),
                os.path.join(tmp, "bad.jsonl"),
                checkpoint_every=checkpoint_every,
                checkpoint_interval_ms=checkpoint_interval_ms,
                progress=at_checkpoint,
                run_max=run_max,
                stats=stats,
            )
            os.remove(os.path.join(tmp, "out.jsonl"))  # the soak's decisions: a GB it does not need
        return {"n": n, "cards": cards, "days": days, "generated_s": generated_s, "rows": rows}


def format_soak(result: dict) -> str:
    lines = [
        f"soak: {result['n']:,} transactions, {result['cards']:,} cards, {result['days']} days of event time "
        f"(stream written in {result['generated_s']:.0f} s); RocksDB state, rules + model",
        f"{'million':>7} {'tx/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7} {'state MB':>9} {'cards in memory':>16}"
        f" {'stale cards deleted':>20}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['million']:>7} {r['tx_per_s']:>8,.0f} {r['p50']:>7.3f} {r['p99']:>7.3f} {r['rss_mb']:>7,.0f}"
            f" {r['state_mb']:>9,.0f} {r['cards_in_memory']:>16,} {r['cards_forgotten']:>20,}"
        )
    lines.append("per million: as of the checkpoint that ends it (every 100,000 records or 1 s)")
    return "\n".join(lines)


def run_flood(
    flood: int,
    rules: RuleSet,
    model: FastModel | None,
    settings: DetectorSettings,
    run_max: int,
) -> dict:
    """Ordinary traffic (50,000 payments of 20,000 cards over 10 minutes) with and without a bot
    sending `flood` payments within the sixth minute; the same records, in event-time order."""
    with tempfile.TemporaryDirectory(prefix="fraud-flood-") as tmp:
        bg, bot = os.path.join(tmp, "background.jsonl"), os.path.join(tmp, "bot.jsonl")
        write_synthetic(bg, 50_000, 20_000, T0, 10 * MINUTE_MS, seed=7)
        minute = T0 + 5 * MINUTE_MS
        write_synthetic(bot, flood, 1, minute, MINUTE_MS, seed=8, card=lambda rng, m: np.full(m, 9_999_999))
        lines = [(orjson.loads(line)["event_time"], 0, line) for line in open(bg, "rb")]
        lines += [(orjson.loads(line)["event_time"], 1, line) for line in open(bot, "rb")]
        lines.sort(key=lambda x: x[0])
        mixed = os.path.join(tmp, "mixed.jsonl")
        Path(mixed).write_bytes(b"".join(line for _, _, line in lines))
        is_bot = np.array([b for _, b, _ in lines], dtype=bool)
        in_minute_mixed = np.array([minute <= t < minute + MINUTE_MS for t, b, _ in lines if not b])
        runs = {}
        for name, path in (("without the bot", bg), ("with the bot", mixed)):
            with open_detector(os.path.join(tmp, name), rules=rules, model=model, settings=settings) as det:
                st = run_file(
                    det, path, os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "bad.jsonl"), run_max=run_max
                )
                bot_events = len(det.store.arena.history("card_9999999")[0]) if name == "with the bot" else 0
            runs[name] = (st, np.array(st.latencies_ms.values, dtype=np.float64), bot_events)
        st0, lat0, _ = runs["without the bot"]
        st1, lat1, kept = runs["with the bot"]
        in_file_order = [orjson.loads(line)["event_time"] for line in open(bg, "rb")]
        in_minute = np.array([minute <= t < minute + MINUTE_MS for t in in_file_order])  # the same records
        others = lat1[~is_bot]
        return {
            "flood": flood,
            "cap": settings.max_events_per_card,
            "bot_events_kept": kept,
            "seconds_without": st0.seconds,
            "seconds_with": st1.seconds,
            "us_per_bot_event": (st1.seconds - st0.seconds) / flood * 1e6,
            "others_in_minute_without": percentiles(lat0[in_minute], (50, 99)),
            "others_in_minute_with": percentiles(others[in_minute_mixed], (50, 99)),
            "bot": percentiles(lat1[is_bot], (50, 99)),
            "tx_per_s_without": st0.throughput,
            "tx_per_s_with": st1.throughput,
            "rss_mb": _rss_mb(),
        }


def format_flood(r: dict) -> str:
    w, o = r["others_in_minute_without"], r["others_in_minute_with"]
    return "\n".join(
        [
            f"flood: one card sends {r['flood']:,} payments within a minute, amid 50,000 payments of 20,000 cards "
            f"over 10 minutes; rules + model",
            f"the bot's history holds {r['bot_events_kept']:,} events (detector.max_events_per_card {r['cap']:,})",
            f"cost per bot payment: {r['us_per_bot_event']:,.1f} µs (run {r['seconds_with']:.2f} s with the bot, "
            f"{r['seconds_without']:.2f} s without); bot payments p50 {r['bot']['p50']:.3f} ms, p99 "
            f"{r['bot']['p99']:.3f} ms",
            f"other cards' payments in the bot's minute: p50 {o['p50']:.3f} ms, p99 {o['p99']:.3f} ms with the bot; "
            f"p50 {w['p50']:.3f} ms, p99 {w['p99']:.3f} ms without",
            f"throughput {r['tx_per_s_with']:,.0f} tx/s with the bot, {r['tx_per_s_without']:,.0f} without; "
            f"resident memory {r['rss_mb']:,.0f} MB",
        ]
    )
