"""The detector: one keyed, event-time processor, event at a time, in compiled code.

The same object serves embedded runs, Kafka partitions, training replays and backtests. `run` decides
a run of decoded transactions in arrival order in one kernel call (`kernel.run`): each event sees
the state its predecessors left, so a run of many events gives exactly the results of runs of one.
Python packs the run (ids interned to slots, the merchant and report features looked up) and the
caller encodes the results. One detector owns one state store (one per partition on Kafka).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fraud.core import merchant_kernel as MK
from fraud.core import run_kernel as RK
from fraud.core import score_kernel as KS
from fraud.core import window_kernel as K
from fraud.core.decisions import Explainer, RunResult, decision_records, fired_names
from fraud.core.records import CARD_PRESENT_CHANNELS, Transaction
from fraud.core.units import DAY_MS
from fraud.scoring import bitvector_trees
from fraud.scoring.features import MERCHANT_FEATURES, FeaturePlan
from fraud.scoring.model import FastModel
from fraud.scoring.rules import ACTIONS, RuleProgram, RuleSet
from fraud.state.feedback import FeedbackIndex
from fraud.state.merchant_table import MerchantTable
from fraud.state.store import MAX_EVENTS_PER_CARD, StateStore

DEFAULT_THRESHOLDS = {"review": 0.5, "block": 0.9}
NAN = math.nan
# Events per kernel call at most, embedded (`detector.run_max`): the call's fixed cost is shared by
# the run, and an event's latency includes deciding the others of its run (`fraud bench` measures
# both; at 16 the full detector ran ~10% faster per event and its p99 latency doubled).
RUN_MAX = 8
_NO_IDS = np.frombuffer(b"", dtype=np.uint8)  # read-only, as every run's ids are: one kernel signature, not two
_NO_EVENTS, _NO_FIXED = np.zeros((0, RK.EV_I_COLS), np.int64), np.zeros((0, K.IN_F_FIXED))  # a run of none
REPLAY_RUN = 4096  # events per kernel call in replays (training, backtests): nothing waits offline


@contextmanager
def open_detector(
    state: str | Path | None | Literal["memory"] = "memory", cache_cards: int = 100_000, **parts: Any
) -> Iterator[Detector]:
    """A detector over its own store, closed on exit: `state` is a RocksDB directory (None: a
    temporary one) or "memory" (no RocksDB: replays that never checkpoint). `parts` go to `Detector`."""
    cap = parts.get("settings", DetectorSettings()).max_events_per_card
    store = (
        StateStore.in_memory(max_events=cap)
        if state == "memory"
        else StateStore(state, cache_size=cache_cards, max_events=cap)
    )
    try:
        yield Detector(store, **parts)
    finally:
        store.close()


def runs_of(txs: Iterable[Transaction], size: int = REPLAY_RUN) -> Iterator[list[Transaction]]:
    """Consecutive runs of at most `size` transactions, in order."""
    it = iter(txs)
    while run := list(islice(it, size)):
        yield run


def pack_run(
    txs: Sequence[Transaction], reports: tuple, store: StateStore, table: MerchantTable
) -> tuple[np.ndarray, np.ndarray]:
    """The run as the kernel's input (`run_kernel.py`): ids interned to card and merchant slots
    (cards not in memory loaded from the store), report rows looked up, and each event's amount,
    location and card-present flag."""
    table.flush()  # buffered adds first: a sweep they cause may forget merchants
    card_slot = store.arena.slot_of.get
    load = store.load
    merchant_slot = table.slot_of.get
    intern = table.slot
    report_card, report_merchant = reports[0].get, reports[1].get
    cps = CARD_PRESENT_CHANNELS
    ints: list[int] = []
    floats: list[float] = []
    for tx in txs:
        cid = tx.card_id
        mid = tx.merchant_id
        c = card_slot(cid)
        if c is None:
            c = load(cid)
        m = merchant_slot(mid)
        if m is None:
            m = intern(mid)
        ints += (tx.ts, c, m, hash(cid), report_card(cid, -1), report_merchant(mid, -1), 0)
        ch = tx.channel
        cp = NAN if ch is None else (1.0 if ch in cps else 0.0)
        if tx.lat is None or cp == 0.0:  # a location counts only for a card-present payment
            floats += (tx.amount, NAN, NAN, cp)
        else:
            floats += (tx.amount, tx.lat, tx.lon, cp)
    n = len(txs)
    ev_i = np.array(ints, dtype=np.int64).reshape(n, RK.EV_I_COLS)
    fixed = np.array(floats, dtype=np.float64).reshape(n, K.IN_F_FIXED)
    ev_i[:, RK.V_TX_KEY] = fixed[:, 0].view(np.int64)  # the amount's bits, for `tx_keys`
    return ev_i, fixed


def cannot_apply_live(det: Detector, rules: RuleSet) -> str | None:
    """Why an embedded detector cannot take `rules` live, or None: merchant features come from a
    table fed only while some feature reads it, and read 7 days behind the event, so one added live
    would see a table that started filling only then (restart with the new rules instead)."""
    needs = [f for f in rules.features if f in MERCHANT_FEATURES]
    if needs and not det.plan.uses_merchants:
        return (
            f"its rules read {', '.join(needs)}, and this run's merchant table was not fed (no rule or model "
            "of the running detector reads a merchant feature): restart with the new rules to use them"
        )
    return None


@dataclass(frozen=True)
class DetectorSettings:
    watermark_bound_ms: int = 5_000  # watermark = max event time seen - bound
    allowed_lateness_ms: int = DAY_MS  # history kept behind the watermark for late events
    max_events_per_card: int = MAX_EVENTS_PER_CARD  # the oldest make way beyond it (a flooding card)


class Detector:
    """Watermark + card state + features + rules + model -> one decision per transaction."""

    def __init__(
        self,
        store: StateStore,
        rules: RuleSet | None = None,
        model: FastModel | None = None,
        settings: DetectorSettings = DetectorSettings(),
        extra_features: Sequence[str] = (),
        feedback: FeedbackIndex | None = None,
        shadow: FastModel | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        names = ["amount"]
        if model is not None:
            names += model.features
        if shadow is not None:
            names += shadow.features
        if rules is not None:
            names += rules.features
        names += list(extra_features)
        self.plan = FeaturePlan(names, settings.allowed_lateness_ms)
        if feedback is not None:
            self.plan.feedback = feedback
        # Embedded, the merchant table learns from the events decided here; on Kafka from the
        # whole topic instead (`use_merchant_table`).
        self.feeds_merchants = self.plan.uses_merchants
        self._own_merchants = True
        self.model = model
        self.shadow = shadow  # scored on every event after the kernel, never deciding (champion/challenger)
        if shadow is not None:
            shadow.bind(self.plan.index)
        if model is not None:
            model.bind(self.plan.index)
            self._trees = model.trees
            cfg, fcfg = model.cfg.copy(), model.fcfg.copy()
        else:
            self._trees = (np.zeros(0, KS.NODE), np.zeros(0, np.int64), *bitvector_trees.empty())
            cfg, fcfg = np.zeros(K.CFG_SIZE, np.int64), np.zeros(K.FCFG_SIZE)
        cfg[K.C_BOUND] = settings.watermark_bound_ms
        cfg[K.C_MAXCAP] = store.arena.max_events
        self._cfg, self._fcfg = cfg, fcfg
        # scratch of `window_kernel.distinct`: a power of two at least twice the events a card holds
        # (smaller, a capped card's distinct counts fell back to sorting, 20x slower)
        self._hkeys = np.zeros(1 << max(4, (2 * store.arena.max_events - 1).bit_length()), dtype=np.int64)
        self._hstamp = np.zeros_like(self._hkeys)
        meta = store.meta()
        if meta and meta.get("max_ts") is not None:
            self.max_ts = int(meta["max_ts"])
        self._mcfg_of: tuple = ()
        self._mcfg = np.zeros(RK.MCFG_SIZE, dtype=np.int64)
        self._buf = RunResult(0, 0, 0, 0)  # sized by `_use_rules`
        self._use_plan()
        self._use_rules(rules)
        # numba compiles or loads the kernels now, not inside the first decision
        self._kernel(0, _NO_EVENTS, _NO_IDS, _NO_FIXED, self.plan.feedback.packed(), self._buf)
        if self.explainer is not None:  # the reasons' and the shadow's kernels too
            self.explainer.features(self._buf.X[:0], [])
        if shadow is not None:
            shadow.score_into(self._buf.X[:0], self._buf.shadow[:0])
        self.vector: list[float] = self.plan.new_vector()
        self._last: tuple | None = None

    def _use_plan(self) -> None:
        """What follows from the feature plan: history kept, the kernel's settings, the explainer."""
        self._keep_ms = self.plan.retention_ms + self.settings.allowed_lateness_ms
        self._cfg[K.C_KEEP] = self._keep_ms
        self._cfg[K.C_PROFILE] = self.plan.profile
        self.explainer = Explainer(self.model, self.plan.names) if self.model is not None else None

    def _use_rules(self, rules: RuleSet | None) -> None:
        self.rules_version = rules.version if rules is not None else None  # written in each decision
        self.program = rules.program(self.plan.index) if rules is not None else RuleProgram.empty()
        self.rule_names = self.program.names
        thresholds = dict(DEFAULT_THRESHOLDS)
        if self.model is not None:
            thresholds.update(self.model.thresholds)
        if rules is not None and rules.thresholds:
            thresholds.update(rules.thresholds)
        self.thresholds = thresholds
        self._fcfg[K.F_REVIEW] = thresholds["review"]
        self._fcfg[K.F_BLOCK] = thresholds["block"]
        self._new_buffer(len(self._buf.X))  # its widths follow the plan and the rules

    def _new_buffer(self, rows: int) -> None:
        self._buf = RunResult(rows, len(self.plan.names), len(self.rule_names), len(self.plan.inputs))
        self._heads: dict[int, RunResult] = {}  # views of `_buf` by run length

    def set_rules(self, rules: RuleSet | None) -> None:
        """Decide with `rules` from the next run on (a rules file changed live). A rule naming a
        feature this detector does not compute yet adds it to the plan (after the features already
        there, whose slots the model reads): its windows see the history kept so far, so a window
        longer than that is complete only once the detector has run that long."""
        missing = [f for f in (rules.features if rules is not None else []) if f not in self.plan.index]
        if missing:
            old = self.plan
            self.plan = FeaturePlan(old.names + missing, self.settings.allowed_lateness_ms)
            self.plan.feedback, self.plan.merchants = old.feedback, old.merchants
            if self._own_merchants:
                self.feeds_merchants = self.plan.uses_merchants
            self._mcfg_of = ()
            self._use_plan()
        self._use_rules(rules)

    def use_merchant_table(self, table: MerchantTable) -> None:
        """Read merchant features from a table someone else feeds (a Kafka worker's global table)."""
        self.plan.merchants = table
        self.feeds_merchants = False
        self._own_merchants = False

    @property
    def max_ts(self) -> int | None:
        ctl = self.store.arena.ctl
        return int(ctl[K.MAX_TS]) if ctl[K.HAS_MAX] else None

    @max_ts.setter
    def max_ts(self, value: int) -> None:
        ctl = self.store.arena.ctl
        ctl[K.MAX_TS] = value
        ctl[K.HAS_MAX] = 1

    @property
    def watermark(self) -> int | None:
        m = self.max_ts
        return None if m is None else m - self.settings.watermark_bound_ms

    def run(self, txs: Sequence[Transaction]) -> RunResult:
        """Decide `txs` in arrival order: one `run_kernel.run` call (restarted where an arena fills)."""
        n = len(txs)
        res = self._heads.get(n)
        if res is None:
            if n > len(self._buf.X):
                self._new_buffer(max(n, 2 * len(self._buf.X)))
            res = self._heads[n] = self._buf.head(n)
        if not n:
            return res
        reports = self.plan.feedback.packed()  # rebuilt only when reports were added
        ev_i, fixed = pack_run(txs, reports, self.store, self.plan.merchants)
        ids = np.frombuffer("\0".join([tx.tx_id for tx in txs]).encode(), dtype=np.uint8)
        arena = self.store.arena
        if len(arena.slot_of) > arena.limit:  # before the call: never push out a card of this run
            arena.mark_used(ev_i[:, RK.V_CARD])
        table = self.plan.merchants
        swept = int(table.mctl[MK.SWEPT_DAY])
        done, full = self._kernel(0, ev_i, ids, fixed, reports, res)
        while done < n:  # an arena is full: compact or grow it, go on from that event
            if full == RK.FULL_MERCHANTS:
                table.make_room()
            else:
                arena.make_space(K.block_max(arena.max_events))
            done, full = self._kernel(done, ev_i, ids, fixed, reports, res)
        table.after_run(swept)
        if self.shadow is not None:  # one compiled call for the run's rows
            self.shadow.score_into(res.X, res.shadow)
        return res

    def _kernel(
        self, k0: int, ev_i: np.ndarray, ids: np.ndarray, fixed: np.ndarray, reports: tuple, res: RunResult
    ) -> tuple[int, int]:
        arena = self.store.arena
        prog = self.program
        plan = self.plan
        table = plan.merchants
        if self._mcfg_of != (table, table.auto_sweep):  # a table set since (Kafka's global one, tests)
            self._mcfg_of = (table, table.auto_sweep)
            self._mcfg = table.config(plan.uses_merchants, self.feeds_merchants)
        return RK.run(
            k0,
            ev_i,
            ids,
            fixed,
            res.in_f,
            arena.cm,
            arena.evi,
            arena.evf,
            arena.ctl,
            self._cfg,
            self._fcfg,
            plan.windows,
            plan.extras,
            prog.code,
            prog.consts,
            prog.spans,
            prog.severity,
            self._trees,
            self._hkeys,
            self._hstamp,
            table.mm,
            table.mev,
            table.mctl,
            table.keys,
            self._mcfg,
            plan.merchant_cols,
            table.hkeys,
            table.hstamp,
            reports[2],
            reports[3],
            reports[4],
            plan.report_cols,
            plan.report_defaults,
            res.windows,
            res.X,
            res.out_i,
            res.out_f,
            res.fired,
        )

    def fired(self, res: RunResult, k: int) -> list[str]:
        """Names of the rules that fired on event k of a run."""
        return fired_names(res, k, self.rule_names) if res.out_i[k, K.O_NFIRED] else []

    def records(
        self, txs: Sequence[Transaction], res: RunResult, arrived_ns: Sequence[int], now_ns: Callable[[], int]
    ) -> list[dict]:
        """The decision records of a run (`decision_records`)."""
        return decision_records(txs, res, arrived_ns, now_ns, self)

    # -- one event at a time (tests, tools): a run of one, the same kernel --------------------

    def update(self, tx: Transaction) -> bool:
        """Decide one transaction, keep its feature vector in `self.vector`; return its late flag."""
        res = self.run([tx])
        self.vector = res.X[0].tolist()
        score, ms = res.out_f[0, :2].tolist()
        self._last = (
            ACTIONS[int(res.out_i[0, K.O_DEC])],
            score,
            ms if self.model is not None else None,
            self.fired(res, 0),
        )
        return bool(res.out_i[0, K.O_LATE])

    def score(self) -> tuple[str, float, float | None, list[str]]:
        """(decision, score, model_score, fired rule names) of the last `update`."""
        return self._last

    def history_cutoff(self) -> int:
        """Events older than this can no longer fall in any window of any transaction still to be
        decided within the allowed lateness: they are evicted (and need no replay on Kafka)."""
        return self.max_ts - self.settings.watermark_bound_ms - self._keep_ms

    def checkpoint_meta(self) -> dict:
        return {"max_ts": self.max_ts}
