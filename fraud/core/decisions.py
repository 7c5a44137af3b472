"""A run's results as the kernel leaves them, and the decision records made from them (SPEC 1).

Flagged decisions (review, block) carry `reasons`: the rules that fired and the features that pushed
the model's score up most, from one compiled call per run over the flagged rows only
(`explain_kernel.py` gives the identity the contributions satisfy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fraud.core import explain_kernel as EK
from fraud.core import window_kernel as K
from fraud.core.records import Transaction
from fraud.scoring.model import FastModel
from fraud.scoring.rules import ACTIONS

if TYPE_CHECKING:
    from fraud.core.detector import Detector

NAN = math.nan
TOP_FEATURES = 3  # features named in a decision's reasons at most


class RunResult:
    """What the kernel decided for a run: per event the feature row, late flag, fired rules, decision.

    The arrays are reused by the detector's next run (no allocation per run): copy what must outlive it.
    """

    __slots__ = ("X", "out_i", "out_f", "fired", "windows", "in_f", "shadow")

    def __init__(self, n: int, width: int, rules: int, inputs: int) -> None:
        self.X = np.full((n, width), NAN)
        self.in_f = np.zeros((n, K.IN_F_FIXED + inputs))  # the kernel's input rows (fixed part copied in)
        self.out_i = np.zeros((n, K.OUT_I_COLS), dtype=np.int64)
        self.out_f = np.zeros((n, 4), dtype=np.float64)  # score, model score, both rounded to 6 decimals
        self.fired = np.zeros((n, rules), dtype=np.bool_)
        self.windows = np.zeros((n, 4), dtype=np.int64)
        self.shadow = np.zeros(n)  # a shadow model's score of each event (`Detector(shadow=...)`)

    def head(self, n: int) -> RunResult:
        view = RunResult.__new__(RunResult)
        for name in RunResult.__slots__:
            setattr(view, name, getattr(self, name)[:n])
        return view


def fired_names(res: RunResult, k: int, names: Sequence[str]) -> list[str]:
    """Names of the rules that fired on event k of a run, in the rules file's order."""
    return [names[j] for j in np.flatnonzero(res.fired[k]).tolist()]


class Explainer:
    """The model's trees as `explain_kernel` reads them, and the names of the feature slots."""

    def __init__(self, model: FastModel, names: Sequence[str], top: int = TOP_FEATURES) -> None:
        self.model = model
        self.names = list(names)
        self.top = top

    def contributions(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        """(base, every feature slot's contribution) of one feature row: base + sum = model score."""
        m = self.model
        row = np.ascontiguousarray(row, dtype=np.float64)
        out, scratch = np.empty(len(row)), np.empty(len(row))
        base = EK.contributions(row, m.nodes, m.expect, m.roots, *self._cfg(), scratch, out)
        return base, out

    def _cfg(self) -> tuple:
        m = self.model
        return (
            int(m.cfg[K.C_NBOOST]),
            int(m.cfg[K.C_NFOREST]),
            m.base_raw,
            float(m.fcfg[K.F_FSCALE]),
            float(m.fcfg[K.F_FWEIGHT]),
        )

    def features(self, X: np.ndarray, rows: list[int]) -> list[tuple[float, list[dict]]]:
        """Per row of `rows`: (base, the top features with their value and contribution)."""
        m = self.model
        idx = np.array(rows, dtype=np.int64)
        slots = np.empty((len(rows), self.top), dtype=np.int64)
        values = np.empty((len(rows), self.top))
        bases = EK.top_reasons(X, idx, m.nodes, m.expect, m.roots, *self._cfg(), slots, values)
        out = []
        names = self.names
        for r, base, top, contrib in zip(rows, bases.tolist(), slots.tolist(), values.tolist(), strict=True):
            feats = []
            for s, c in zip(top, contrib, strict=True):
                if s < 0:
                    break
                x = float(X[r, s])
                feats.append({"feature": names[s], "value": None if x != x else x, "contribution": round(c, 6)})
            out.append((round(base, 6), feats))
        return out


def decision_records(
    txs: Sequence[Transaction],
    res: RunResult,
    arrived_ns: Sequence[int],
    now_ns: Callable[[], int],
    det: Detector,
) -> list[dict]:
    """The decision records of a run (SPEC 1) by detector `det`. The run's decisions are all made when
    the kernel returns, so the clock `now_ns` is read once: `latency_ms` runs from each event's arrival
    to then.

    Scores are rounded to 6 decimals by the kernel as numpy does (x 1e6, to the nearest integer,
    / 1e6): the same float as Python's `round` except for values within one ulp of a tie.
    """
    names, has_model, explainer = det.rule_names, det.model is not None, det.explainer
    rules_version, shadow = det.rules_version, det.shadow is not None
    now = now_ns()
    out = []
    flagged = []
    shadow_scores = np.round(res.shadow, 6).tolist() if shadow else None
    last_at, latency = None, 0.0
    for k, (tx, (late, _, dec, nfired, repeat), (_, _, score, ms), at) in enumerate(
        zip(txs, res.out_i.tolist(), res.out_f.tolist(), arrived_ns)
    ):
        if at != last_at:
            last_at, latency = at, round((now - at) / 1e6, 4)
        rules = fired_names(res, k, names) if nfired else []
        rec = {
            "tx_id": tx.tx_id,
            "card_id": tx.card_id,
            "event_time": tx.event_time,
            "decision": ACTIONS[dec],
            "score": score,
            "model_score": ms if has_model else None,
            "rules": rules,
            "latency_ms": latency,
            "late": late == 1,
            "repeat": repeat == 1,
            "rules_version": rules_version,
        }
        if shadow:
            rec["shadow_score"] = shadow_scores[k]
        if dec:
            rec["reasons"] = {"rules": rules, "model_base": None, "features": []}
            flagged.append(k)
        out.append(rec)
    if flagged and explainer is not None:
        for k, (base, feats) in zip(flagged, explainer.features(res.X, flagged), strict=True):
            reasons = out[k]["reasons"]
            reasons["model_base"] = base
            reasons["features"] = feats
    return out
