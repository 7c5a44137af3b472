"""Per-card state in RocksDB (rocksdict) behind a bounded write-back cache, with checkpoints.

Crash consistency (ARCHITECTURE.md, State): card states change only in memory between checkpoints;
`checkpoint(meta)` writes every changed card *and* the input position they reflect in one RocksDB
write batch, so the store on disk is always a state "as of" some position, never a mix.
Cards pushed out of the bounded cache while dirty wait, serialised, in `_pending` until that batch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

import orjson
from rocksdict import Options, Rdict, WriteBatch

from .history import CardHistory

META_KEY = b"\x00meta"
CARD_PREFIX = b"c:"


class StateStore:
    """Card histories keyed by card id. `path=None` keeps RocksDB in a temporary directory."""

    def __init__(self, path: str | Path | None = None, cache_size: int = 100_000) -> None:
        self._tmp = None
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="fraud-state-")
            path = self._tmp
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        self._db = Rdict(str(self.path), opts)
        self._cache: OrderedDict[str, CardHistory] = OrderedDict()
        self._pending: dict[bytes, bytes] = {}
        self.cache_size = cache_size

    def get(self, card_id: str) -> CardHistory:
        """The card's history, loaded into the cache on a miss (a new card gets an empty one)."""
        cache = self._cache
        h = cache.get(card_id)
        if h is not None:
            cache.move_to_end(card_id)
            return h
        key = CARD_PREFIX + card_id.encode()
        data = self._pending.pop(key, None)
        dirty = data is not None  # a pending card is not on disk yet
        if data is None:
            data = self._db.get(key)
        h = CardHistory.from_bytes(data) if data is not None else CardHistory()
        h.dirty = dirty
        cache[card_id] = h
        if len(cache) > self.cache_size:
            self._evict()
        return h

    def _evict(self) -> None:
        cache = self._cache
        while len(cache) > self.cache_size:
            card_id, h = cache.popitem(last=False)
            if h.dirty:
                self._pending[CARD_PREFIX + card_id.encode()] = h.to_bytes()

    def checkpoint(self, meta: dict) -> None:
        """Write dirty cards and `meta` (input position, watermark, ...) in one atomic batch."""
        wb = WriteBatch(raw_mode=True)
        for key, data in self._pending.items():
            wb.put(key, data)
        self._pending.clear()
        for card_id, h in self._cache.items():
            if h.dirty:
                wb.put(CARD_PREFIX + card_id.encode(), h.to_bytes())
                h.dirty = False
        wb.put(META_KEY, orjson.dumps(meta))
        self._db.write(wb)

    def discard(self) -> None:
        """Forget every change since the last checkpoint (an aborted Kafka transaction)."""
        self._cache.clear()
        self._pending.clear()

    def meta(self) -> dict | None:
        """The metadata of the last checkpoint, or None for a fresh store."""
        data = self._db.get(META_KEY)
        return orjson.loads(data) if data is not None else None

    def close(self) -> None:
        self._db.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @staticmethod
    def wipe(path: str | Path) -> None:
        """Delete a store directory (its state is stale and will be rebuilt)."""
        shutil.rmtree(path, ignore_errors=True)
