"""Columnar transaction batch: the one in-memory shape every generator step exchanges.

Only per-transaction facts live here; mcc, coordinates and country follow from the merchant,
so they cannot contradict it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Tx:
    card: np.ndarray  # int64 card number
    merchant: np.ndarray  # int64 merchant number
    t_ms: np.ndarray  # int64 event time, ms after the simulation start
    amount: np.ndarray  # float64 dollars (rounded at the end)
    channel: np.ndarray  # int8 catalog.POS/ECOM/ATM
    scenario: np.ndarray  # int8 0 = legit, else catalog.SCENARIO_CODE
    incident: np.ndarray  # int64 fraud incident number (-1 for legit): one report covers one incident

    def __len__(self) -> int:
        return len(self.t_ms)

    def take(self, idx: np.ndarray) -> Tx:
        return Tx(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def empty() -> Tx:
        return Tx(
            card=np.empty(0, np.int64),
            merchant=np.empty(0, np.int64),
            t_ms=np.empty(0, np.int64),
            amount=np.empty(0, float),
            channel=np.empty(0, np.int8),
            scenario=np.empty(0, np.int8),
            incident=np.empty(0, np.int64),
        )

    @staticmethod
    def concat(parts: list[Tx]) -> Tx:
        if not parts:
            return Tx.empty()
        return Tx(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Tx)})

    @staticmethod
    def build(card, merchant, t_ms, amount, channel, scenario: int = 0, incident: int = -1) -> Tx:
        """Small batch from Python lists/arrays (used by the fraud scenarios)."""
        n = len(t_ms)
        return Tx(
            card=np.asarray(card, np.int64).reshape(-1) if np.ndim(card) else np.full(n, card, np.int64),
            merchant=np.asarray(merchant, np.int64),
            t_ms=np.asarray(t_ms, np.int64),
            amount=np.asarray(amount, float),
            channel=np.asarray(channel, np.int8),
            scenario=np.full(n, scenario, np.int8),
            incident=np.full(n, incident, np.int64),
        )
