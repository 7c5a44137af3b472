"""Per-card state in RocksDB (rocksdict) behind a bounded in-memory arena, with checkpoints.

Crash consistency (ARCHITECTURE.md, State): card states change only in memory between checkpoints;
`checkpoint(meta)` writes every changed card *and* the input position they reflect in one RocksDB
write batch, so the store on disk is always a state "as of" some position, never a mix.
Cards pushed out of memory while dirty wait, serialised, in `_pending` until that batch.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from pathlib import Path

import orjson
from rocksdict import Options, Rdict, WriteBatch

from fraud.core.history_kernel import EVI_COLS
from fraud.errors import UserError
from fraud.state.arena import CARD_FORMAT, CardArena, StaleCardFormat

META_KEY = b"\x00meta"
CARD_PREFIX = b"c:"
MAX_EVENTS_PER_CARD = 10_000  # a card's events kept at most (the oldest make way beyond it)
SWEEP_PER_CHECKPOINT = 20_000  # saved cards a checkpoint looks at for ones gone stale
_COUNT = struct.Struct("<I")
_TIME = struct.Struct("<q")


class StateStore:
    """Card histories keyed by card id. `path=None` keeps RocksDB in a temporary directory.

    In memory the cards live in a `CardArena` (at most `cache_size` of them); RocksDB holds each
    card's saved form, written at checkpoints.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        cache_size: int = 100_000,
        max_events: int = MAX_EVENTS_PER_CARD,
        memory: bool = False,
    ) -> None:
        """`memory=True`: no RocksDB at all, every card in memory (`in_memory`)."""
        self._tmp = None
        self._db = None
        if memory:
            self.path = Path("<memory>")
            cache_size = 1 << 62
        else:
            if path is None:
                self._tmp = tempfile.mkdtemp(prefix="fraud-state-")
                path = self._tmp
            self.path = Path(path)
            self.path.mkdir(parents=True, exist_ok=True)
            opts = Options(raw_mode=True)
            opts.create_if_missing(True)
            self._db = Rdict(str(self.path), opts)
            meta = self.meta()
            if meta is not None and meta.get("card_format") != CARD_FORMAT:
                self._db.close()
                raise UserError(
                    f"{self.path}: state written by an older fraudstream (card format "
                    f"v{meta.get('card_format', 1)}, this version reads v{CARD_FORMAT}); "
                    "use an empty --state directory"
                )
        self._pending: dict[bytes, bytes] = {}
        self._sweep_from = CARD_PREFIX  # where the next checkpoint's sweep of stale cards starts
        self.forgotten = 0  # saved cards deleted by those sweeps
        self.cache_size = cache_size
        self.arena = CardArena(max_events, cache_size, self._keep_evicted)

    @classmethod
    def in_memory(cls, max_events: int = MAX_EVENTS_PER_CARD) -> StateStore:
        """A store without RocksDB, every card in memory: for replays (training, backtests, warm-up)
        that never checkpoint and never resume."""
        return cls(max_events=max_events, memory=True)

    def _keep_evicted(self, card_id: str, data: bytes) -> None:
        self._pending[CARD_PREFIX + card_id.encode()] = data

    def load(self, card_id: str) -> int:
        """The arena slot of a card not in memory: its saved history read back (or a new card).
        The caller stamps the run's cards used before more cards are pushed out (`mark_used`)."""
        key = CARD_PREFIX + card_id.encode()
        data = self._pending.pop(key, None)
        dirty = data is not None  # a pending card is not on disk yet
        if data is None and self._db is not None:
            data = self._db.get(key)
        try:
            return self.arena.admit(card_id, data, dirty)
        except StaleCardFormat as exc:
            raise UserError(f"{self.path}: {exc}; use an empty --state directory") from None

    def checkpoint(self, meta: dict, forget_before: int | None = None) -> None:
        """Write dirty cards and `meta` (input position, watermark, ...) in one atomic batch.

        With `forget_before` (the detector's history cutoff), the same batch deletes saved cards
        whose newest event is older (`_sweep`), so that the state on disk is bounded by the longest
        window, not by every card ever seen."""
        if self._db is None:
            raise RuntimeError("an in-memory store has nowhere to checkpoint")
        wb = WriteBatch(raw_mode=True)
        for key, data in self._pending.items():
            wb.put(key, data)
        written = self._pending
        self._pending = {}
        arena = self.arena
        dirty = arena.dirty_slots()
        card_of = arena.card_of
        for s, data in zip(dirty, arena.encode_many(dirty), strict=True):
            wb.put(CARD_PREFIX + card_of[s].encode(), data)
        arena.clear_dirty()
        if forget_before is not None:
            self._sweep(wb, forget_before, written)
        wb.put(META_KEY, orjson.dumps({**meta, "card_format": CARD_FORMAT}))
        self._db.write(wb)

    def _sweep(self, wb: WriteBatch, cutoff: int, written: dict[bytes, bytes]) -> None:
        """Delete up to `SWEEP_PER_CHECKPOINT` saved cards, from where the last sweep stopped, whose
        events are all older than `cutoff`: the next event of such a card would evict them all
        before any window saw them, so the card is as good as new (and `find` ignores them too).
        Cards in memory, and those `written` by this batch, are skipped."""
        it = self._db.iter()
        it.seek(self._sweep_from)
        slot_of = self.arena.slot_of
        row = 8 * EVI_COLS
        looked = 0
        while it.valid() and looked < SWEEP_PER_CHECKPOINT:
            key = it.key()
            if not key.startswith(CARD_PREFIX):
                break
            looked += 1
            if key not in written and key[len(CARD_PREFIX) :].decode() not in slot_of:
                data = it.value()
                (n,) = _COUNT.unpack_from(data, 1)
                if n == 0 or _TIME.unpack_from(data, 5 + row * (n - 1))[0] < cutoff:
                    wb.delete(key)
                    self.forgotten += 1
            it.next()
        self._sweep_from = it.key() if it.valid() and it.key().startswith(CARD_PREFIX) else CARD_PREFIX
        del it

    def meta(self) -> dict | None:
        """The metadata of the last checkpoint, or None for a fresh store."""
        data = self._db.get(META_KEY) if self._db is not None else None
        return orjson.loads(data) if data is not None else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @staticmethod
    def wipe(path: str | Path) -> None:
        """Delete a store directory (its state is stale and will be rebuilt)."""
        shutil.rmtree(path, ignore_errors=True)
