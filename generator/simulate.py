"""Public entry point of the simulator: configuration, record streams and file output.

Everything is derived from SimConfig through seeded generators only (no wall clock, no
hash-order dependence), so the same configuration always yields the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import orjson

from . import catalog as C
from .arrival import arrival_order, delays_ms
from .columns import Tx
from .encode import encode_chunk, iso_ms, merchant_tails, table
from .fraud import inject_fraud
from .normal import DAY_MS, HOUR_MS, legit_transactions
from .population import World, build_world

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 10_000
REPORTED_SHARE = 0.9  # share of fraud incidents the cardholder ends up reporting
MAX_AMOUNT = 25_000.0  # authorisation limit: caps the lognormal tail


@dataclass(frozen=True)
class SimConfig:
    cards: int = 2000
    days: int = 30
    seed: int = 7
    start: str = "2026-01-01"  # ISO date, UTC midnight
    fraud_rate: float = 0.0075  # target share of fraudulent transactions
    late_share: float = 0.02  # share of events that arrive late / out of order
    max_delay_s: float = 3 * 3600  # longest arrival delay
    merchants: int | None = None  # default max(200, cards // 4); a floor: every city gets a few shops and an ATM
    feedback_delay_days: float = 7.0  # fraud reports arrive about this long after the fraud
    scenarios: tuple[str, ...] = C.SCENARIOS

    def validate(self) -> None:
        """Reject configurations that cannot produce a meaningful stream (clear message, no traceback)."""
        if self.cards < 1:
            raise ValueError("cards must be >= 1")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if not 0.0 <= self.fraud_rate < 1.0:
            raise ValueError("fraud_rate must be in [0, 1)")
        if not 0.0 <= self.late_share <= 1.0:
            raise ValueError("late_share must be in [0, 1]")
        if self.max_delay_s < 0 or self.feedback_delay_days < 0:
            raise ValueError("max_delay_s and feedback_delay_days must be >= 0")
        if self.merchants is not None and self.merchants < 1:
            raise ValueError("merchants must be >= 1")
        unknown = [s for s in self.scenarios if s not in C.SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {list(C.SCENARIOS)}")
        start_ms(self.start)


def start_ms(start: str) -> int:
    """UTC midnight of the ISO start date, in epoch ms."""
    try:
        d = date.fromisoformat(start)
    except ValueError as exc:
        raise ValueError(f"start must be an ISO date (YYYY-MM-DD), got {start!r}") from exc
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Stream:
    """The simulated stream in event-time order (row i has tx_id t{i:09d})."""

    world: World
    tx: Tx
    delay_ms: np.ndarray
    order: np.ndarray  # arrival order
    start_ms: int


def build_stream(cfg: SimConfig) -> Stream:
    """Population, legit traffic, fraud and arrival delays for one configuration."""
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    world = build_world(rng, cfg.seed, cfg.cards, cfg.merchants)
    legit, travelling = legit_transactions(rng, world, cfg.days)
    legit.amount = np.minimum(legit.amount, MAX_AMOUNT)
    fraud = inject_fraud(rng, world, legit, travelling, cfg.days, cfg.fraud_rate, cfg.scenarios)
    tx = Tx.concat([legit, fraud])
    tx = tx.take(np.argsort(tx.t_ms, kind="stable"))  # tx ids follow event time
    tx.amount = np.round(np.clip(tx.amount, 0.0, MAX_AMOUNT), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    tx.channel = world.merchants.channel[tx.merchant]  # a terminal/shop has one channel: keep records coherent
    delay = delays_ms(np.random.default_rng([cfg.seed, 1]), len(tx), cfg.late_share, cfg.max_delay_s)
    return Stream(world=world, tx=tx, delay_ms=delay, order=arrival_order(tx.t_ms, delay), start_ms=start_ms(cfg.start))


def _chunks(s: Stream, progress: Progress | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(card numbers, transaction lines, label lines) per block of PROGRESS_EVERY records, arrival order."""
    m, tx, o = s.world.merchants, s.tx, s.order
    card_tab = table([f'"card_id":"{c}"' for c in s.world.cards.ids])
    merch_tab = table([f',"merchant_id":"{i}"' for i in m.ids])
    tails = merchant_tails(m.mcc, m.channel, m.lat, m.lon, m.country)
    total = len(tx)
    for lo in range(0, total, PROGRESS_EVERY):
        oo = o[lo : lo + PROGRESS_EVERY]
        card = tx.card[oo]
        lines, labels = encode_chunk(
            oo,
            card_tab,
            card,
            merch_tab,
            tails,
            tx.merchant[oo],
            s.start_ms + tx.t_ms[oo],
            tx.amount[oo],
            tx.scenario[oo],
        )
        yield card, lines, labels
        if progress is not None:
            progress(min(lo + PROGRESS_EVERY, total), total)


def _encoded(s: Stream, progress: Progress | None) -> Iterator[tuple[str, bytes, bytes]]:
    ids = s.world.cards.ids
    for cards, lines, labels in _chunks(s, progress):
        yield from zip([ids[c] for c in cards.tolist()], lines.tolist(), labels.tolist())


def _feedback(s: Stream, cfg: SimConfig) -> list[bytes]:
    """Confirmed fraud reports: one report time per reported incident, sorted by reported_at."""
    tx = s.tx
    rows = np.flatnonzero(tx.scenario > 0)
    if len(rows) == 0:
        return []
    rng = np.random.default_rng([cfg.seed, 2])
    incidents, inv = np.unique(tx.incident[rows], return_inverse=True)
    last = np.zeros(len(incidents), np.int64)
    np.maximum.at(last, inv, tx.t_ms[rows])
    reported = rng.random(len(incidents)) < REPORTED_SHARE
    lag = cfg.feedback_delay_days * DAY_MS * np.exp(rng.normal(0.0, 0.3, len(incidents)))
    lag = np.maximum(lag.astype(np.int64), HOUR_MS)
    rep_at = (last + lag)[inv]
    keep = reported[inv]
    rows, rep_at = rows[keep], rep_at[keep]
    order = np.lexsort((rows, rep_at))
    rows, rep_at = rows[order], rep_at[order]
    m, card_ids = s.world.merchants, s.world.cards.ids
    ev = iso_ms(s.start_ms + tx.t_ms[rows])
    rp = iso_ms(s.start_ms + rep_at)
    dumps = orjson.dumps
    return [
        dumps(
            {"tx_id": f"t{r:09d}", "card_id": card_ids[c], "merchant_id": m.ids[mi], "event_time": e, "reported_at": p}
        )
        for r, c, mi, e, p in zip(rows.tolist(), tx.card[rows].tolist(), tx.merchant[rows].tolist(), ev, rp)
    ]


def stats(s: Stream, n_feedback: int | None = None) -> dict:
    """Summary of a run: sizes, fraud per scenario, late events."""
    sc = s.tx.scenario
    counts = np.bincount(sc, minlength=len(C.SCENARIOS) + 1)
    n = len(s.tx)
    late_out = int(np.sum(s.tx.t_ms[s.order] < np.maximum.accumulate(s.tx.t_ms[s.order])))
    out = {
        "n_tx": n,
        "n_fraud": int(counts[1:].sum()),
        "fraud_rate": float(counts[1:].sum() / n) if n else 0.0,
        "scenarios": {name: int(counts[i + 1]) for i, name in enumerate(C.SCENARIOS)},
        "incidents": {name: int(len(np.unique(s.tx.incident[sc == i + 1]))) for i, name in enumerate(C.SCENARIOS)},
        "n_late": int(np.count_nonzero(s.delay_ms)),
        "n_out_of_order": late_out,
        "n_cards": len(s.world.cards),
        "n_merchants": len(s.world.merchants.ids),
    }
    if n_feedback is not None:
        out["n_feedback"] = n_feedback
    return out


def iter_records(cfg: SimConfig, progress: Progress | None = None) -> Iterator[tuple[str, bytes, bytes]]:
    """(card_id, transaction JSON, label JSON) in arrival order, e.g. to produce to Kafka keyed by card."""
    yield from _encoded(build_stream(cfg), progress)


def iter_feedback(cfg: SimConfig) -> Iterator[bytes]:
    """Feedback records (JSON, no newline) sorted by reported_at."""
    yield from _feedback(build_stream(cfg), cfg)


def write_files(
    cfg: SimConfig, tx_path: str, labels_path: str, feedback_path: str | None = None, progress: Progress | None = None
) -> dict:
    """Write transactions and labels (arrival order) and optionally feedback; return run stats."""
    s = build_stream(cfg)
    with open(tx_path, "wb") as ftx, open(labels_path, "wb") as flb:
        for _cards, lines, labels in _chunks(s, progress):
            ftx.write(b"\n".join(lines.tolist()) + b"\n")
            flb.write(b"\n".join(labels.tolist()) + b"\n")
    n_fb = None
    if feedback_path is not None:
        fb = _feedback(s, cfg)
        with open(feedback_path, "wb") as f:
            if fb:
                f.write(b"\n".join(fb) + b"\n")
        n_fb = len(fb)
    return stats(s, n_fb)
