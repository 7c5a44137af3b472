"""The detector: one keyed, event-time processor, event at a time.

The same object serves embedded runs, Kafka partitions, training replays and backtests; sources
and sinks are thin adapters around `process`. One detector owns one state store (one per
partition on Kafka).
"""

from __future__ import annotations

from dataclasses import dataclass

from .feedback import FeedbackIndex
from .features import FeaturePlan
from .history import NAN, merchant_key
from .merchant_table import MerchantTable
from .model import FastModel
from .records import Transaction
from .rules import ACTIONS, RuleSet
from .state_store import StateStore

DEFAULT_THRESHOLDS = {"review": 0.5, "block": 0.9}


@dataclass(frozen=True)
class DetectorSettings:
    watermark_bound_ms: int = 5_000      # watermark = max event time seen - bound
    allowed_lateness_ms: int = 86_400_000  # history kept behind the watermark for late events


class Detector:
    """Watermark + card state + features + rules + model -> one decision per transaction."""

    def __init__(self, store: StateStore, rules: RuleSet | None = None, model: FastModel | None = None,
                 settings: DetectorSettings = DetectorSettings(), extra_features: list[str] = (),
                 feedback: FeedbackIndex | None = None) -> None:
        self.store = store
        self.settings = settings
        names = ["amount"]
        if model is not None:
            names += model.features
        if rules is not None:
            names += rules.features
        names += list(extra_features)
        self.plan = FeaturePlan(names, settings.allowed_lateness_ms)
        if feedback is not None:
            self.plan.feedback = feedback
        # Embedded, the merchant table learns from the events decided here; on Kafka from the
        # whole topic instead (`use_merchant_table`).
        self.feeds_merchants = self.plan.uses_merchants
        self.vector = self.plan.new_vector()  # reused for every event: no per-event allocation
        self.model = model
        if model is not None:
            model.bind(self.plan.index)
        self._rules = rules.bind(self.plan.index) if rules is not None else []
        thresholds = dict(DEFAULT_THRESHOLDS)
        if model is not None:
            thresholds.update(model.thresholds)
        if rules is not None and rules.thresholds:
            thresholds.update(rules.thresholds)
        self.thresholds = thresholds
        self._review = thresholds["review"]
        self._block = thresholds["block"]
        self._keep_ms = self.plan.retention_ms + settings.allowed_lateness_ms
        self.max_ts: int | None = None
        meta = store.meta()
        if meta and meta.get("max_ts") is not None:
            self.max_ts = int(meta["max_ts"])

    def use_merchant_table(self, table: MerchantTable) -> None:
        """Read merchant features from a table someone else feeds (a Kafka worker's global table)."""
        self.plan.merchants = table
        self.feeds_merchants = False

    @property
    def watermark(self) -> int | None:
        return None if self.max_ts is None else self.max_ts - self.settings.watermark_bound_ms

    def update(self, tx: Transaction) -> bool:
        """Advance the watermark, insert `tx` into its card's history and fill `self.vector`.

        Returns the `late` flag: the transaction's event time is behind the watermark it found.
        """
        t = tx.ts
        max_ts = self.max_ts
        if max_ts is None:
            late = False
            self.max_ts = t
        else:
            late = t < max_ts - self.settings.watermark_bound_ms
            if t > max_ts:
                self.max_ts = t
        h = self.store.get(tx.card_id)
        h.evict_before(self.history_cutoff())
        cp = tx.channel in ("pos", "atm") if tx.channel is not None else True
        lat = tx.lat
        if lat is None:
            i = h.insert(t, tx.amount, merchant_key(tx.merchant_id), NAN, NAN, 0)
        else:
            i = h.insert(t, tx.amount, merchant_key(tx.merchant_id), lat, tx.lon, 1 if cp else 0)
        self.plan.compute(h, i, tx, self.vector)
        if self.feeds_merchants:
            self.plan.merchants.add(tx.merchant_id, tx.card_id, t)
        return late

    def rules_fired(self) -> tuple[list[str], int]:
        """The rules that fire on `self.vector`, and the most severe action among them (0 allow,
        1 review, 2 block)."""
        v = self.vector
        fired: list[str] = []
        severity = 0
        for name, sev, test in self._rules:
            if test(v):
                fired.append(name)
                if sev > severity:
                    severity = sev
        return fired, severity

    def decide(self, severity: int, model_score: float | None) -> tuple[str, float]:
        """(decision, score) from the fired rules' severity and the model's probability."""
        score = 0.0 if model_score is None else model_score
        # The score never contradicts the decision: a fired rule lifts it to its action's threshold.
        if severity == 2 and score < self._block:
            score = self._block
        elif severity == 1 and score < self._review:
            score = self._review
        if score >= self._block:
            return "block", score
        if score >= self._review:
            return "review", score
        return ACTIONS[severity], score

    def score(self) -> tuple[str, float, float | None, list[str]]:
        """Rules and model over `self.vector`: (decision, score, model_score, fired rule names)."""
        fired, severity = self.rules_fired()
        model_score = self.model.score(self.vector) if self.model is not None else None
        decision, score = self.decide(severity, model_score)
        return decision, score, model_score, fired

    def decision(self, tx: Transaction, late: bool, fired: list[str], severity: int,
                 model_score: float | None, arrived_ns: int, now_ns) -> dict:
        """The decision record; `now_ns` is the clock (injected so latency measures the same way everywhere)."""
        decision, score = self.decide(severity, model_score)
        return {
            "tx_id": tx.tx_id,
            "card_id": tx.card_id,
            "event_time": tx.event_time,
            "decision": decision,
            "score": round(score, 6),
            "model_score": None if model_score is None else round(model_score, 6),
            "rules": fired,
            "latency_ms": round((now_ns() - arrived_ns) / 1e6, 4),
            "late": late,
        }

    def process(self, tx: Transaction, arrived_ns: int, now_ns) -> dict:
        """Decide one transaction, event at a time (a Kafka batch scores its rows together instead:
        `update`, `rules_fired`, `FastModel.score_rows`, `decision`; the same decisions)."""
        late = self.update(tx)
        fired, severity = self.rules_fired()
        model_score = self.model.score(self.vector) if self.model is not None else None
        return self.decision(tx, late, fired, severity, model_score, arrived_ns, now_ns)

    def history_cutoff(self) -> int:
        """Events older than this can no longer fall in any window of any transaction still to be
        decided within the allowed lateness: they are evicted (and need no replay on Kafka)."""
        return self.max_ts - self.settings.watermark_bound_ms - self._keep_ms

    def checkpoint_meta(self) -> dict:
        return {"max_ts": self.max_ts}
