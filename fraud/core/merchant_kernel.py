"""Compiled merchant table: per merchant slot, hourly transaction counts and (hour, card) pairs.

The semantics are `merchant_table.py`'s (read there why the windows are delayed by 7 days). Layout:
mm[s] holds two blocks into the shared `mev` rows (start, head, len, cap each): the count block,
rows (hour, transactions), and the card block, rows (hour, card key) with one row per card and hour;
both sorted by hour. mm[s, CUT..] caches the last window read (cut-off hour and its four figures),
forgotten when an event lands before that cut-off. mctl = (top, latest hour, last swept day, set stamp).
"""

from __future__ import annotations

import numpy as np

from fraud.core.jit import njit
from fraud.core.units import DAY_MS, HOUR_MS
from fraud.core.window_kernel import bisect_left, distinct

DELAY_MS = 7 * DAY_MS
NO_CUT = -(1 << 62)
# mm columns: count block, card block (start, head, len, cap), cached window
CNT, CRD = 0, 4
START, HEAD, LEN, CAP = range(4)
CUT, C_N1, C_N7, C_N30, C_CARDS = range(8, 13)
MM_COLS = 13
TOP, MAX_H, SWEPT_DAY, STAMP = range(4)
MCTL_SIZE = 4
MIN_CAP = 4


@njit(cache=True)
def _drop_before(mm, mev, s, o, h):
    """Forget the block's rows with hour < h."""
    n = mm[s, o + LEN]
    if n and mev[mm[s, o + START] + mm[s, o + HEAD], 0] < h:
        k = bisect_left(mev, mm[s, o + START] + mm[s, o + HEAD], 0, n, h)
        mm[s, o + HEAD] += k
        mm[s, o + LEN] = n - k


@njit(cache=True)
def _room(mm, mev, mctl, s, o):
    """Make room for one more row in a block; False if the arena is full (nothing changed)."""
    start = mm[s, o + START]
    head = mm[s, o + HEAD]
    n = mm[s, o + LEN]
    cap = mm[s, o + CAP]
    if head + n < cap:
        return True
    if n < cap:  # room in front: slide to the start
        for j in range(n):
            mev[start + j, 0] = mev[start + head + j, 0]
            mev[start + j, 1] = mev[start + head + j, 1]
        mm[s, o + HEAD] = 0
        return True
    newcap = max(2 * cap, MIN_CAP)
    top = mctl[TOP]
    if top + newcap > mev.shape[0]:
        return False
    for j in range(n):
        mev[top + j, 0] = mev[start + head + j, 0]
        mev[top + j, 1] = mev[start + head + j, 1]
    mm[s, o + START] = top
    mm[s, o + HEAD] = 0
    mm[s, o + CAP] = newcap
    mctl[TOP] = top + newcap
    return True


@njit(cache=True)
def _insert_at(mm, mev, s, o, i, h, v):
    base = mm[s, o + START] + mm[s, o + HEAD]
    n = mm[s, o + LEN]
    for j in range(n, i, -1):
        mev[base + j, 0] = mev[base + j - 1, 0]
        mev[base + j, 1] = mev[base + j - 1, 1]
    mev[base + i, 0] = h
    mev[base + i, 1] = v
    mm[s, o + LEN] = n + 1


@njit(cache=True)
def sweep(mm, mev, now_h, keep_h, keep_cards_h):
    """Drop what no event at hour `now_h` or later can read (the allowed lateness included)."""
    for s in range(mm.shape[0]):
        _drop_before(mm, mev, s, CRD, now_h - keep_cards_h)
        _drop_before(mm, mev, s, CNT, now_h - keep_h)


@njit(cache=True)
def add(mm, mev, mctl, s, card, ts, keep_h, keep_cards_h, auto_sweep):
    """Count one transaction of card key `card` at merchant slot s; False if the arena is full."""
    h = ts // HOUR_MS
    if not (_room(mm, mev, mctl, s, CNT) and _room(mm, mev, mctl, s, CRD)):
        return False
    base = mm[s, CNT + START] + mm[s, CNT + HEAD]
    n = mm[s, CNT + LEN]
    if n and mev[base + n - 1, 0] == h:
        mev[base + n - 1, 1] += 1
    else:
        i = bisect_left(mev, base, 0, n, h)
        if i < n and mev[base + i, 0] == h:
            mev[base + i, 1] += 1
        else:
            _insert_at(mm, mev, s, CNT, i, h, 1)
    base = mm[s, CRD + START] + mm[s, CRD + HEAD]
    n = mm[s, CRD + LEN]
    j = n
    while j > 0 and mev[base + j - 1, 0] > h:
        j -= 1
    seen = False
    q = j
    while q > 0 and mev[base + q - 1, 0] == h:
        if mev[base + q - 1, 1] == card:
            seen = True
            break
        q -= 1
    if not seen:
        _insert_at(mm, mev, s, CRD, j, h, card)
    if h < mm[s, CUT]:  # lands inside a window already computed
        mm[s, CUT] = NO_CUT
    if h > mctl[MAX_H]:
        mctl[MAX_H] = h
        if auto_sweep and h // 24 > mctl[SWEPT_DAY]:
            mctl[SWEPT_DAY] = h // 24
            sweep(mm, mev, h, keep_h, keep_cards_h)
    return True


@njit(cache=True)
def window(mm, mev, s, t, hkeys, hstamp, mctl):
    """(transactions over 1, 7, 30 days, distinct cards over 7 days) in the hours before the one
    containing t - 7 days; zeros for an unknown merchant (s < 0)."""
    if s < 0:
        return 0, 0, 0, 0
    cut = (t - DELAY_MS) // HOUR_MS
    if mm[s, CUT] != cut:
        base = mm[s, CNT + START] + mm[s, CNT + HEAD]
        hi = bisect_left(mev, base, 0, mm[s, CNT + LEN], cut)
        lo30 = bisect_left(mev, base, 0, hi, cut - 30 * 24)
        lo7 = bisect_left(mev, base, lo30, hi, cut - 7 * 24)
        lo1 = bisect_left(mev, base, lo7, hi, cut - 24)
        n1 = n7 = n30 = 0
        for j in range(lo30, hi):
            c = mev[base + j, 1]
            n30 += c
            if j >= lo7:
                n7 += c
            if j >= lo1:
                n1 += c
        base = mm[s, CRD + START] + mm[s, CRD + HEAD]
        chi = bisect_left(mev, base, 0, mm[s, CRD + LEN], cut)
        clo = bisect_left(mev, base, 0, chi, cut - 7 * 24)
        mctl[STAMP] += 1
        cards = distinct(mev, base, clo, chi, hkeys, hstamp, mctl[STAMP])
        mm[s, CUT] = cut
        mm[s, C_N1] = n1
        mm[s, C_N7] = n7
        mm[s, C_N30] = n30
        mm[s, C_CARDS] = cards
    return mm[s, C_N1], mm[s, C_N7], mm[s, C_N30], mm[s, C_CARDS]


@njit(cache=True)
def read(k, mm, mev, s, t, hkeys, hstamp, mctl, windows, out, cols):
    """Event k's merchant windows at slot s into windows[k], and its features into out[k, cols[c]]
    for c = transactions over 1, 7, 30 days, their fraud rates, distinct cards over 7 days (cols[c]
    < 0: not wanted). Rates here know of no fraud report (0, or NaN without transactions): the
    report kernel corrects those of merchants with reports."""
    w = window(mm, mev, s, t, hkeys, hstamp, mctl)
    for c in range(4):
        windows[k, c] = w[c]
    for c in range(3):
        if cols[c] >= 0:
            out[k, cols[c]] = w[c]
        if cols[3 + c] >= 0:
            out[k, cols[3 + c]] = 0.0 if w[c] > 0 else np.nan
    if cols[6] >= 0:
        out[k, cols[6]] = w[3]


@njit(cache=True)
def feed(k0, slots, cards, ts, mm, mev, mctl, keep_h, keep_cards_h, auto_sweep):
    """Count events k0.. in order; returns how many are done (fewer: the arena is full, make room
    and call again from there)."""
    for k in range(k0, slots.shape[0]):
        if not add(mm, mev, mctl, slots[k], cards[k], ts[k], keep_h, keep_cards_h, auto_sweep):
            return k
    return slots.shape[0]


@njit(cache=True)
def empty_slots(mm):
    """Slots with no row left in either block (free slots among them)."""
    return np.flatnonzero((mm[:, CNT + LEN] == 0) & (mm[:, CRD + LEN] == 0))


@njit(cache=True)
def compact(mm, live, mev, new_mev):
    """Copy the live merchants' blocks into a fresh array; return the new top."""
    top = 0
    for s in live:
        for o in (CNT, CRD):
            base = mm[s, o + START] + mm[s, o + HEAD]
            for j in range(mm[s, o + LEN]):
                new_mev[top + j, 0] = mev[base + j, 0]
                new_mev[top + j, 1] = mev[base + j, 1]
            mm[s, o + START] = top
            mm[s, o + HEAD] = 0
            top += mm[s, o + CAP]
    return top
