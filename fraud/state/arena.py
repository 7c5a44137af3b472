"""Card histories in memory: packed numeric arrays indexed by an interned card slot.

Why an arena and not one object per card: the compiled kernel reads and updates every card of a run
in one call, which needs all histories in a few flat arrays (`core/window_kernel.py` documents the layout). Python
only interns card ids to slots, loads and saves cards, and moves blocks when the arrays fill up.

Memory is bounded twice: a card keeps at most `max_events` events (older ones beyond that make way,
`features.MAX_EVENTS_PER_CARD`), and at most `limit` cards stay in memory; the least recently used
beyond that are handed to `on_evict` (the state store keeps them until the next checkpoint).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable

import numpy as np

from fraud.core import card_kernel
from fraud.core.window_kernel import (
    CAP,
    CM_COLS,
    CTL_SIZE,
    DIRTY,
    EVI_COLS,
    HEAD,
    LEN,
    MIN_CAP,
    SEQ,
    START,
    TOP,
    USED,
    block_max,
    compact,
)

CARD_FORMAT = 3  # v1: the pure-Python core's per-field arrays; v2: no transaction keys. Neither read
assert sys.byteorder == "little", "the card format is little-endian and packed from native arrays"
_HEADER = struct.Struct("<BI")


class StaleCardFormat(ValueError):
    """A card state written by another version of the card format."""


class CardArena:
    """Slots of cards in memory and the blocks of events they own."""

    def __init__(
        self,
        max_events: int,
        limit: int,
        on_evict: Callable[[str, bytes], None],
        slots: int = 1024,
        events: int = 1 << 16,
    ) -> None:
        self.max_events = max_events
        self.limit = limit
        self.on_evict = on_evict
        self.cm = np.zeros((slots, CM_COLS), dtype=np.int64)
        self.evi = np.zeros((events, EVI_COLS), dtype=np.int64)
        self.evf = np.zeros((events, 3), dtype=np.float64)
        self.ctl = np.zeros(CTL_SIZE, dtype=np.int64)
        self.slot_of: dict[str, int] = {}
        self.card_of: list[str | None] = [None] * slots
        self._free: list[int] = list(range(slots - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.slot_of)

    def admit(self, card_id: str, data: bytes | None, dirty: bool) -> int:
        """A slot for a card not in memory, holding its saved history `data` (None: a new card)."""
        if not self._free:
            self._grow_slots()
        s = self._free.pop()
        self.slot_of[card_id] = s
        self.card_of[s] = card_id
        cm = self.cm
        cm[s] = 0
        cm[s, DIRTY] = dirty
        if data is not None:
            ti, tf = decode_card(data)
            n = len(ti)
            if n:
                cap = min(max(MIN_CAP, 1 << (n - 1).bit_length()), max(block_max(self.max_events), n))
                start = self.reserve(cap)
                self.evi[start : start + n] = ti
                self.evf[start : start + n] = tf
                cm[s, START], cm[s, LEN], cm[s, CAP] = start, n, cap
        return s

    def reserve(self, size: int) -> int:
        """A block of `size` events at the top of the arena; its start."""
        self.make_space(size)
        top = int(self.ctl[TOP])
        self.ctl[TOP] = top + size
        return top

    def make_space(self, size: int) -> None:
        """Room for `size` more events at the top: compact the blocks, and grow the arrays when the
        live blocks fill more than half of them."""
        if self.ctl[TOP] + size > len(self.evi):
            live = np.fromiter(self.slot_of.values(), dtype=np.int64, count=len(self.slot_of))
            live.sort()
            used = int(self.cm[live, CAP].sum()) + size
            rows = len(self.evi)
            while rows < 2 * used:
                rows *= 2
            new_evi = np.zeros((rows, EVI_COLS), dtype=np.int64)
            new_evf = np.zeros((rows, 3), dtype=np.float64)
            top = int(compact(self.cm, live, self.evi, self.evf, new_evi, new_evf))
            self.evi, self.evf = new_evi, new_evf
            self.ctl[TOP] = top

    def _grow_slots(self) -> None:
        old = len(self.cm)
        cm = np.zeros((2 * old, CM_COLS), dtype=np.int64)
        cm[:old] = self.cm
        self.cm = cm
        self.card_of.extend([None] * old)
        self._free.extend(range(2 * old - 1, old - 1, -1))

    def mark_used(self, slots: np.ndarray) -> None:
        """Stamp a run's cards as used now, then push the least recently used cards beyond the limit
        out (never those of the run: the kernel is about to read them)."""
        now = self.ctl[SEQ] + 1
        self.cm[slots, USED] = now
        over = len(self.slot_of) - self.limit
        if over <= 0:
            return
        live = np.fromiter(self.slot_of.values(), dtype=np.int64, count=len(self.slot_of))
        # evict a tenth more than needed, so that a full arena sorts once per many runs, not per run
        want = over + (self.limit // 10 if self.limit >= 100 else 0)
        cand = live[self.cm[live, USED] < now]
        if len(cand) > want:
            cand = cand[np.argsort(self.cm[cand, USED], kind="stable")[:want]]
        self.release(cand.tolist())

    def release(self, slots: list[int]) -> None:
        """Take cards out of memory; the changed ones go to `on_evict` first."""
        dirty = [s for s in slots if self.cm[s, DIRTY]]
        for s, data in zip(dirty, self.encode_many(dirty), strict=True):
            self.on_evict(self.card_of[s], data)
        for s in slots:
            del self.slot_of[self.card_of[s]]
            self.card_of[s] = None
            self.cm[s] = 0
            self._free.append(s)

    def encode_many(self, slots: list[int]) -> list[bytes]:
        """The saved forms of these cards, packed in one compiled call (checkpoints write thousands)."""
        if not slots:
            return []
        at = np.asarray(slots, dtype=np.int64)
        ends = np.cumsum(card_kernel.sizes(self.cm, at))
        out = np.empty(int(ends[-1]), dtype=np.uint8)
        card_kernel.pack_cards(
            at,
            self.cm,
            self.evi.reshape(-1).view(np.uint8),
            self.evf.reshape(-1).view(np.uint8),
            CARD_FORMAT,
            out,
        )
        buf = out.tobytes()
        starts = [0, *ends[:-1].tolist()]
        return [buf[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]

    def dirty_slots(self) -> list[int]:
        live = np.fromiter(self.slot_of.values(), dtype=np.int64, count=len(self.slot_of))
        return live[self.cm[live, DIRTY] != 0].tolist()

    def clear_dirty(self) -> None:
        self.cm[:, DIRTY] = 0

    def history(self, card_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, merchants and transaction keys; amounts and locations) of a card in memory, in
        event-time order."""
        s = self.slot_of[card_id]
        base = int(self.cm[s, START] + self.cm[s, HEAD])
        n = int(self.cm[s, LEN])
        return self.evi[base : base + n], self.evf[base : base + n]


def decode_card(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    version, n = _HEADER.unpack_from(data)
    if version != CARD_FORMAT:
        raise StaleCardFormat(f"card state format v{version}, this version reads v{CARD_FORMAT}")
    pos = _HEADER.size
    ti = np.frombuffer(data, dtype="<i8", count=EVI_COLS * n, offset=pos).reshape(n, EVI_COLS)
    tf = np.frombuffer(data, dtype="<f8", count=3 * n, offset=pos + 8 * EVI_COLS * n).reshape(n, 3)
    return ti, tf
