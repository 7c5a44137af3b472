"""Card states to their saved form in one compiled call per checkpoint.

A checkpoint writes every changed card (thousands per batch); packing each one from Python cost
about 2 µs a card (slices, `tobytes`, a join), a fifth of the checkpoint. Here the dirty cards are
packed back to back into one byte buffer that the store slices per key. The layout of one card is
the store's card format v3 (`state/arena.py`): a 5-byte header (format, event count as uint32 LE),
then its (time, merchant, transaction key) rows as int64 and its (amount, lat, lon) rows as float64, little-endian.
"""

from __future__ import annotations

import numpy as np

from fraud.core.jit import njit
from fraud.core.window_kernel import EVI_COLS, HEAD, LEN, START

HEADER_BYTES = 5
EVI_BYTES = 8 * EVI_COLS
ROW_BYTES = EVI_BYTES + 24  # 3 x int64 + 3 x float64


def sizes(cm: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Saved size of each card in `slots`, in bytes."""
    return HEADER_BYTES + ROW_BYTES * cm[slots, LEN]


@njit(cache=True)
def pack_cards(slots, cm, evi_bytes, evf_bytes, version, out):
    """Write each card of `slots` into `out`, back to back, each `sizes()` long. `evi_bytes` and
    `evf_bytes` are the arena's event arrays viewed as bytes (native order, little-endian here)."""
    pos = 0
    for k in range(len(slots)):
        s = slots[k]
        base = cm[s, START] + cm[s, HEAD]
        n = cm[s, LEN]
        out[pos] = version
        for b in range(4):
            out[pos + 1 + b] = (n >> (8 * b)) & 0xFF
        pos += HEADER_BYTES
        out[pos : pos + EVI_BYTES * n] = evi_bytes[EVI_BYTES * base : EVI_BYTES * (base + n)]
        pos += EVI_BYTES * n
        out[pos : pos + 24 * n] = evf_bytes[24 * base : 24 * (base + n)]
        pos += 24 * n
