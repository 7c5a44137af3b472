"""A card's recent history, packed in parallel arrays sorted by event time.

Why parallel lists and not one object per event: a card has tens to hundreds of events in its
retention span; `bisect` on a list of ints plus C-level slices (`sum`, `min`, `set`) is the fastest
thing pure Python offers, and the arrays serialise to RocksDB with one `tobytes` each.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from hashlib import blake2b

NAN = float("nan")
_HEADER = struct.Struct("<BI")
_VERSION = 1


def merchant_key(merchant_id: str) -> int:
    """Stable 64-bit key of a merchant id (Python's `hash` is salted per process)."""
    return int.from_bytes(blake2b(merchant_id.encode(), digest_size=8).digest(), "little", signed=True)


class CardHistory:
    """Events of one card with event time inside the retention span, in event-time order.

    Ties keep arrival order: a new event goes after events with the same event time.
    `cp` is 1 for a card-present payment with a location, else 0.
    """

    __slots__ = ("ts", "amt", "mer", "lat", "lon", "cp", "dirty")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.amt: list[float] = []
        self.mer: list[int] = []
        self.lat: list[float] = []
        self.lon: list[float] = []
        self.cp: list[int] = []
        self.dirty = False

    def __len__(self) -> int:
        return len(self.ts)

    def insert(self, ts: int, amount: float, merchant: int, lat: float, lon: float, cp: int) -> int:
        """Insert one event in event-time order; return its index."""
        times = self.ts
        if not times or ts >= times[-1]:
            times.append(ts)
            self.amt.append(amount)
            self.mer.append(merchant)
            self.lat.append(lat)
            self.lon.append(lon)
            self.cp.append(cp)
            self.dirty = True
            return len(times) - 1
        i = bisect_right(times, ts)
        times.insert(i, ts)
        self.amt.insert(i, amount)
        self.mer.insert(i, merchant)
        self.lat.insert(i, lat)
        self.lon.insert(i, lon)
        self.cp.insert(i, cp)
        self.dirty = True
        return i

    def evict_before(self, cutoff: int) -> None:
        """Drop events with event time < cutoff (they can no longer fall in any window)."""
        times = self.ts
        if not times or times[0] >= cutoff:
            return
        k = bisect_left(times, cutoff)
        del times[:k], self.amt[:k], self.mer[:k], self.lat[:k], self.lon[:k], self.cp[:k]
        self.dirty = True

    def to_bytes(self) -> bytes:
        n = len(self.ts)
        return b"".join((
            _HEADER.pack(_VERSION, n),
            array("q", self.ts).tobytes(),
            array("d", self.amt).tobytes(),
            array("q", self.mer).tobytes(),
            array("d", self.lat).tobytes(),
            array("d", self.lon).tobytes(),
            bytes(self.cp),
        ))

    @classmethod
    def from_bytes(cls, data: bytes) -> "CardHistory":
        version, n = _HEADER.unpack_from(data)
        if version != _VERSION:
            raise ValueError(f"unknown card state version {version}")
        h = cls()
        pos = _HEADER.size
        for name, code in (("ts", "q"), ("amt", "d"), ("mer", "q"), ("lat", "d"), ("lon", "d")):
            arr = array(code)
            arr.frombytes(data[pos:pos + 8 * n])
            setattr(h, name, arr.tolist())
            pos += 8 * n
        h.cp = list(data[pos:pos + n])
        return h
