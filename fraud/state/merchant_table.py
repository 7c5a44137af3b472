"""Merchant-side state: every merchant's transactions in hourly buckets, read with a 7-day delay.

Keyed by merchant, not by card, so on Kafka no worker owns it: every worker builds the same table
from the whole transactions topic (a global table, see `runners/kafka/global_tables.py`); embedded runs feed it
from the events they process. Reads are delayed by `DELAY_MS` (7 days, the usual time for a fraud
to be confirmed and the handbook's protocol) for two reasons:

* a fraud rate means something only over transactions whose frauds are known by now;
* a window that ended 7 days ago is complete in every mode: a worker needs the other partitions to
  have reached that point, not to be in step with it, so Kafka decisions equal embedded ones.

Buckets are UTC hours: at event time t the windows cover the hours before the one containing
t - 7 days. The table lives in packed arrays that compiled code reads and updates
(`merchant_kernel.py`); per merchant the last window read is cached, so a busy merchant costs one
comparison per event, a quiet one a short bisect over its few buckets.
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

from fraud.core import merchant_kernel as MK
from fraud.core import run_kernel as RK
from fraud.core.units import DAY_MS, HOUR_MS

DELAY_MS = MK.DELAY_MS
WINDOW_DAYS = (1, 7, 30)  # merchant_tx_<n>d / merchant_fraud_rate_<n>d
CARDS_DAYS = 7  # merchant_cards_7d
_LONGEST_H = max(WINDOW_DAYS) * 24
_BUFFERED = 4096  # adds buffered before one compiled call (flushed before any read)


def merchant_key(merchant_id: str) -> int:
    """Stable 64-bit key of a merchant id (Python's `hash` is salted per process): card histories
    saved to RocksDB name their merchants by it."""
    return int.from_bytes(blake2b(merchant_id.encode(), digest_size=8).digest(), "little", signed=True)


class MerchantTable:
    """Per merchant: hour buckets with a transaction count and the cards seen.

    Cards are known by `hash(card_id)`: the table is never saved (it is rebuilt from its source on
    every start), so a per-process key is enough.
    """

    def __init__(self, lateness_ms: int = DAY_MS, slots: int = 1024, rows: int = 1 << 15) -> None:
        # Buckets older than every window still to be read (with the lateness allowed) are dropped.
        self._keep_h = (DELAY_MS + lateness_ms) // HOUR_MS + _LONGEST_H + 1
        self._keep_cards_h = (DELAY_MS + lateness_ms) // HOUR_MS + CARDS_DAYS * 24 + 1
        self.mm = np.zeros((slots, MK.MM_COLS), dtype=np.int64)
        self.mm[:, MK.CUT] = MK.NO_CUT
        self.mev = np.zeros((rows, 2), dtype=np.int64)
        self.mctl = np.zeros(MK.MCTL_SIZE, dtype=np.int64)
        self.mctl[MK.MAX_H] = -1
        self.mctl[MK.SWEPT_DAY] = -1
        self.keys = np.zeros(slots, dtype=np.int64)  # merchant_key of each slot
        self.slot_of: dict[str, int] = {}
        self._name_of: list[str | None] = [None] * slots
        self._free = list(range(slots - 1, -1, -1))
        self.hkeys = np.zeros(1 << 12, dtype=np.int64)
        self.hstamp = np.zeros(1 << 12, dtype=np.int64)
        self._pending: tuple[list[int], list[int], list[int]] = ([], [], [])
        # Embedded, the table is fed by the events being decided, so it sweeps itself as time goes
        # on. A Kafka global table runs ahead of the partitions it serves: they sweep it instead.
        self.auto_sweep = True
        empty = np.zeros(0, dtype=np.int64)  # numba compiles or loads `feed` now, not inside a decision
        MK.feed(0, empty, empty, empty, self.mm, self.mev, self.mctl, self._keep_h, self._keep_cards_h, True)

    def __len__(self) -> int:
        """Merchants with something still counted."""
        self.flush()
        mm = self.mm
        return sum(1 for s in self.slot_of.values() if mm[s, MK.CNT + MK.LEN])

    def __contains__(self, merchant: str) -> bool:
        self.flush()
        s = self.slot_of.get(merchant)
        return s is not None and bool(self.mm[s, MK.CNT + MK.LEN])

    def slot(self, merchant: str) -> int:
        """The merchant's slot, interning it on first sight."""
        s = self.slot_of.get(merchant)
        if s is None:
            if not self._free:
                self._grow_slots()
            s = self._free.pop()
            self.slot_of[merchant] = s
            self._name_of[s] = merchant
            self.keys[s] = merchant_key(merchant)
        return s

    def add(self, merchant: str, card: str, ts: int) -> None:
        slots, cards, times = self._pending
        slots.append(self.slot(merchant))
        cards.append(hash(card))
        times.append(ts)
        if len(slots) >= _BUFFERED:
            self.flush()

    def window(self, merchant: str, t: int) -> tuple[int, int, int, int]:
        """(transactions over 1, 7, 30 days, distinct cards over 7 days) in the hours before the one
        containing t - 7 days."""
        self.flush()
        s = self.slot_of.get(merchant, -1)
        return tuple(int(x) for x in MK.window(self.mm, self.mev, s, t, self.hkeys, self.hstamp, self.mctl))

    def config(self, read: bool, feed: bool) -> np.ndarray:
        """The `run_kernel` settings of a detector that reads this table (`read`) and feeds it (`feed`)."""
        mcfg = np.zeros(RK.MCFG_SIZE, dtype=np.int64)
        mcfg[RK.M_READ], mcfg[RK.M_FEED], mcfg[RK.M_AUTO_SWEEP] = read, feed, self.auto_sweep
        mcfg[RK.M_KEEP_H], mcfg[RK.M_KEEP_CARDS_H] = self._keep_h, self._keep_cards_h
        return mcfg

    def after_run(self, swept: int) -> None:
        """After a kernel call that may have fed the table: forget the merchants a sweep emptied."""
        if self.mctl[MK.SWEPT_DAY] != swept:
            self._forget_empty()

    def flush(self) -> None:
        """Count the buffered adds (done before any read, and before interning a run's merchants:
        a sweep may forget empty merchants)."""
        slots, cards, times = self._pending
        if slots:
            self._pending = ([], [], [])
            swept = int(self.mctl[MK.SWEPT_DAY])
            slots_a, cards_a, ts_a = (np.array(x, np.int64) for x in (slots, cards, times))
            done = 0
            while (
                done := MK.feed(
                    done,
                    slots_a,
                    cards_a,
                    ts_a,
                    self.mm,
                    self.mev,
                    self.mctl,
                    self._keep_h,
                    self._keep_cards_h,
                    self.auto_sweep,
                )
            ) < len(slots_a):
                self.make_room()
            self.after_run(swept)

    def sweep_behind(self, ts: int) -> None:
        """Drop what no event at or after event time `ts` (less the lateness allowed) can read."""
        self.sweep(ts // HOUR_MS)

    def sweep(self, now_h: int) -> None:
        """Drop what no event at hour `now_h` or later can read (the allowed lateness included), and
        merchants left without any bucket."""
        self.flush()
        MK.sweep(self.mm, self.mev, now_h, self._keep_h, self._keep_cards_h)
        self._forget_empty()

    def buckets(self, merchant: str) -> tuple[list[int], list[int]]:
        """(hours with a count, hours of the card rows) of a merchant, for inspection."""
        self.flush()
        s = self.slot_of[merchant]
        out = []
        for o in (MK.CNT, MK.CRD):
            base = int(self.mm[s, o + MK.START] + self.mm[s, o + MK.HEAD])
            out.append(self.mev[base : base + int(self.mm[s, o + MK.LEN]), 0].tolist())
        return out[0], out[1]

    def _forget_empty(self) -> None:
        mm = self.mm
        name_of = self._name_of
        for s in MK.empty_slots(mm).tolist():
            name = name_of[s]
            if name is not None:
                del self.slot_of[name]
                name_of[s] = None
                mm[s] = 0
                mm[s, MK.CUT] = MK.NO_CUT
                self._free.append(s)

    def _grow_slots(self) -> None:
        old = len(self.mm)
        mm = np.zeros((2 * old, MK.MM_COLS), dtype=np.int64)
        mm[:, MK.CUT] = MK.NO_CUT
        mm[:old] = self.mm
        self.mm = mm
        self.keys = np.concatenate([self.keys, np.zeros(old, np.int64)])
        self._name_of.extend([None] * old)
        self._free.extend(range(2 * old - 1, old - 1, -1))

    def make_room(self) -> None:
        """Compact the blocks into fresh rows (twice the live size at least)."""
        live = np.array(sorted(self.slot_of.values()), dtype=np.int64)
        used = int(self.mm[live, MK.CNT + MK.CAP].sum() + self.mm[live, MK.CRD + MK.CAP].sum()) + 64
        rows = len(self.mev)
        while rows < 2 * used:
            rows *= 2
        new = np.zeros((rows, 2), dtype=np.int64)
        self.mctl[MK.TOP] = MK.compact(self.mm, live, self.mev, new)
        self.mev = new
