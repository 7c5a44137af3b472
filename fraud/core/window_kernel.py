"""The compiled per-event core: card history, window features, rules and trees, one event at a time.

One call decides a run of already-decoded events in arrival order; each event sees exactly the state
its predecessors in the run left (as if called once per event), so runs change cost, never results.
Python interns ids to slots and packs the run into arrays; everything per event happens here.

Card histories live in an arena (`arena.py`): card slot s owns the block `evi/evf[start, start+cap)`
and its events, in event-time order, are at `start + head .. start + head + len`. Columns:
evi = (event time ms, merchant key), evf = (amount, lat, lon); lat/lon are NaN unless the payment is
card-present with a location. cm[s] = (start, head, len, cap, dirty, last used).

The arithmetic follows the definitions in features.py and the old pure-Python code step by step
(same summation order, same formulas), so features and scores are the same floats.
"""

from __future__ import annotations

import math

import numpy as np

from fraud.core import score_kernel as _scoring
from fraud.core.jit import njit
from fraud.core.score_kernel import decide, model_score, rules
from fraud.core.units import DAY_MS, HOUR_MS, MINUTE_MS

PROFILE_MS = 30 * DAY_MS  # the card's own earlier 30 days (amount_z_30d & co.)
_HABIT_MS = 7_200_000
_DEG = math.pi / 180.0  # what CPython's math.radians multiplies by
NAN = np.nan

# cm columns
START, HEAD, LEN, CAP, DIRTY, USED = range(6)
CM_COLS = 6
# ctl: arena top, max event time seen, whether one was seen, run counter (for LRU), set stamp
TOP, MAX_TS, HAS_MAX, SEQ, STAMP = range(5)
CTL_SIZE = 5
# cfg (int64): watermark bound, history kept behind the watermark, events kept per card at most,
# boosted trees, forest trees, has model, needs the 30-day profile
C_BOUND, C_KEEP, C_MAXCAP, C_NBOOST, C_NFOREST, C_MODEL, C_PROFILE = range(7)
assert (C_NBOOST, C_NFOREST) == (_scoring.C_NBOOST, _scoring.C_NFOREST)
CFG_SIZE = 7
# fcfg (float64): baseline, forest scale, forest weight, review threshold, block threshold
F_BASE, F_FSCALE, F_FWEIGHT, F_REVIEW, F_BLOCK = range(5)
assert (F_BASE, F_FSCALE, F_FWEIGHT) == (_scoring.F_BASE, _scoring.F_FSCALE, _scoring.F_FWEIGHT)
FCFG_SIZE = 5
# window aggregates
A_COUNT, A_SUM, A_AVG, A_MIN, A_MAX, A_DISTINCT = range(6)
# other card features (extras[e] = (code, slot, input column for E_INPUT))
(
    E_AMOUNT,
    E_SECS_PREV,
    E_DIST,
    E_SPEED,
    E_NEW_MERCHANT,
    E_HOUR,
    E_CARD_PRESENT,
    E_Z,
    E_TO_AVG,
    E_TO_MAX,
    E_HABIT,
    E_INPUT,
) = range(12)
# in_f columns: amount, lat, lon, card_present, then the merchant and report inputs
IN_F_FIXED = 4
# out_i columns: late, severity of fired rules, decision (0 allow, 1 review, 2 block), rules fired
O_LATE, O_SEV, O_DEC, O_NFIRED = range(4)
MIN_CAP = 8


@njit(cache=True)
def _bisect_right(evi, base, lo, hi, x):
    """First index in [lo, hi) of the block at `base` whose time is > x."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < evi[base + mid, 0]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def bisect_left(evi, base, lo, hi, x):
    """First index in [lo, hi) of the block at `base` whose column 0 (time, hour) is >= x."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if evi[base + mid, 0] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _copy_rows(evi, evf, dst, src, n):
    """Move n events from row src to row dst (dst < src or no overlap)."""
    for j in range(n):
        evi[dst + j, 0] = evi[src + j, 0]
        evi[dst + j, 1] = evi[src + j, 1]
        evf[dst + j, 0] = evf[src + j, 0]
        evf[dst + j, 1] = evf[src + j, 1]
        evf[dst + j, 2] = evf[src + j, 2]


@njit(cache=True)
def distinct(evi, base, lo, hi, hkeys, hstamp, stamp):
    """Distinct keys in column 1 of rows base+lo .. base+hi: an open-addressing set in scratch arrays,
    emptied in O(1) by moving to a new stamp (the merchant table counts its cards with it too).
    More keys than the scratch arrays hold (a merchant busier than they were sized for): sorted."""
    n = hi - lo
    size = 16
    while size < 2 * n:
        size <<= 1
    if size > hkeys.shape[0]:
        return np.unique(evi[base + lo : base + hi, 1]).shape[0]
    mask = size - 1
    count = 0
    for j in range(lo, hi):
        key = evi[base + j, 1]
        h = (key ^ (key >> 29)) & mask
        while True:
            if hstamp[h] != stamp:
                hstamp[h] = stamp
                hkeys[h] = key
                count += 1
                break
            if hkeys[h] == key:
                break
            h = (h + 1) & mask
    return count


@njit(cache=True)
def _haversine(lat1, lon1, lat2, lon2):
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    a = math.sin((p2 - p1) * 0.5) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((lon2 - lon1) * _DEG * 0.5) ** 2
    return 12_742.0 * math.asin(min(1.0, math.sqrt(a)))


@njit(cache=True)
def _insert(cm, evi, evf, s, t, mer, amt, lat, lon):
    """Insert one event after every event with the same or an earlier time; return its index.
    The caller has made sure the block has room."""
    start = cm[s, START]
    head = cm[s, HEAD]
    n = cm[s, LEN]
    if head + n == cm[s, CAP]:  # room only in front: slide the events to the block's start
        _copy_rows(evi, evf, start, start + head, n)
        head = 0
        cm[s, HEAD] = 0
    base = start + head
    i = n
    if n and t < evi[base + n - 1, 0]:
        i = _bisect_right(evi, base, 0, n, t)
        for j in range(n, i, -1):
            evi[base + j, 0] = evi[base + j - 1, 0]
            evi[base + j, 1] = evi[base + j - 1, 1]
            evf[base + j, 0] = evf[base + j - 1, 0]
            evf[base + j, 1] = evf[base + j - 1, 1]
            evf[base + j, 2] = evf[base + j - 1, 2]
    evi[base + i, 0] = t
    evi[base + i, 1] = mer
    evf[base + i, 0] = amt
    evf[base + i, 1] = lat
    evf[base + i, 2] = lon
    cm[s, LEN] = n + 1
    cm[s, DIRTY] = 1
    return i


@njit(cache=True)
def _make_room(cm, evi, evf, ctl, s, cutoff, maxcap):
    """Evict the card's events older than `cutoff`, and grow its block (or drop its oldest event at
    the cap) so that one more fits. False if the arena is full: nothing was changed then."""
    base = cm[s, START] + cm[s, HEAD]
    n = cm[s, LEN]
    gone = bisect_left(evi, base, 0, n, cutoff) if n else 0
    cap = cm[s, CAP]
    if n - gone >= cap and cap < maxcap:
        newcap = min(max(2 * cap, MIN_CAP), maxcap)
        top = ctl[TOP]
        if top + newcap > evi.shape[0]:
            return False
        keep = n - gone
        _copy_rows(evi, evf, top, base + gone, keep)
        cm[s, START] = top
        cm[s, HEAD] = 0
        cm[s, LEN] = keep
        cm[s, CAP] = newcap
        cm[s, DIRTY] = 1
        ctl[TOP] = top + newcap
        return True
    if n - gone >= maxcap:  # at the cap: the oldest event makes way (documented in features.py)
        gone = n - maxcap + 1
    if gone:
        cm[s, HEAD] += gone
        cm[s, LEN] = n - gone
        cm[s, DIRTY] = 1
    return True


@njit(cache=True)
def _features(k, i, base, t, in_f, evi, evf, wins, extras, profile, hkeys, hstamp, stamp, X):
    """Fill row k of X for the event at index i of the block at `base`."""
    hi = i + 1
    lo = 0
    prev_dur = -1
    for w in range(wins.shape[0]):
        dur = wins[w, 0]
        agg = wins[w, 1]
        slot = wins[w, 2]
        if dur != prev_dur:
            lo = _bisect_right(evi, base, 0, i, t - dur)
            prev_dur = dur
        n = hi - lo
        if agg == A_COUNT:
            X[k, slot] = n
        elif agg == A_SUM or agg == A_AVG:
            total = 0.0
            for j in range(lo, hi):
                total += evf[base + j, 0]
            X[k, slot] = total if agg == A_SUM else total / n
        elif agg == A_MIN:
            m = evf[base + lo, 0]
            for j in range(lo + 1, hi):
                if evf[base + j, 0] < m:
                    m = evf[base + j, 0]
            X[k, slot] = m
        elif agg == A_MAX:
            m = evf[base + lo, 0]
            for j in range(lo + 1, hi):
                if evf[base + j, 0] > m:
                    m = evf[base + j, 0]
            X[k, slot] = m
        else:
            stamp += 1
            X[k, slot] = distinct(evi, base, lo, hi, hkeys, hstamp, stamp)
    if extras.shape[0] == 0:
        return stamp
    amount = evf[base + i, 0]
    plo = _bisect_right(evi, base, 0, i, t - PROFILE_MS)
    to_avg = NAN
    to_max = NAN
    z = NAN
    if profile:
        kk = i - plo
        if kk:
            total = 0.0
            sq = 0.0
            mx = evf[base + plo, 0]
            for j in range(plo, i):
                a = evf[base + j, 0]
                total += a
                sq += a * a
                if a > mx:
                    mx = a
            mean = total / kk
            to_avg = amount / (1.0 + mean)
            to_max = amount / (1.0 + mx)
            if kk >= 3:
                var = sq / kk - mean * mean
                z = (amount - mean) / max(math.sqrt(var) if var > 0 else 0.0, 1.0)
    dist = NAN
    hours = 1.0
    travelled = False
    for e in range(extras.shape[0]):
        code = extras[e, 0]
        slot = extras[e, 1]
        if code == E_AMOUNT:
            X[k, slot] = amount
        elif code == E_SECS_PREV:
            X[k, slot] = (t - evi[base + i - 1, 0]) / 1000.0 if i else NAN
        elif code == E_DIST or code == E_SPEED:
            if not travelled:
                travelled = True
                if evf[base + i, 1] == evf[base + i, 1]:  # card-present with a location
                    j = i - 1
                    while j >= 0 and evf[base + j, 1] != evf[base + j, 1]:
                        j -= 1
                    if j >= 0:
                        dist = _haversine(evf[base + j, 1], evf[base + j, 2], evf[base + i, 1], evf[base + i, 2])
                        hours = max(t - evi[base + j, 0], MINUTE_MS) / float(HOUR_MS)
            X[k, slot] = dist if code == E_DIST else dist / hours
        elif code == E_NEW_MERCHANT:
            mine = evi[base + i, 1]
            new = 1.0
            for j in range(plo, i):
                if evi[base + j, 1] == mine:
                    new = 0.0
                    break
            X[k, slot] = new
        elif code == E_HOUR:
            X[k, slot] = (t % DAY_MS) / float(HOUR_MS)
        elif code == E_CARD_PRESENT:
            X[k, slot] = in_f[k, 3]
        elif code == E_Z:
            X[k, slot] = z
        elif code == E_TO_AVG:
            X[k, slot] = to_avg
        elif code == E_TO_MAX:
            X[k, slot] = to_max
        elif code == E_HABIT:
            if plo == i:
                X[k, slot] = NAN
            else:
                near = 0
                mine = t % DAY_MS
                for j in range(plo, i):
                    d = abs(evi[base + j, 0] % DAY_MS - mine)
                    if d <= _HABIT_MS or d >= DAY_MS - _HABIT_MS:
                        near += 1
                X[k, slot] = near / (i - plo)
        else:
            X[k, slot] = in_f[k, extras[e, 2]]
    return stamp


@njit(cache=True)
def room(cm, evi, evf, ctl, cfg, s, t):
    """Make room in card slot s's block for an event at time t (evicting what the watermark that
    event brings has left behind); False if the arena is full: nothing of the event changed then."""
    max_ts = max(ctl[MAX_TS], t) if ctl[HAS_MAX] else t
    return _make_room(cm, evi, evf, ctl, s, max_ts - cfg[C_BOUND] - cfg[C_KEEP], cfg[C_MAXCAP])


@njit(cache=True)
def event(k, t, s, mer, in_f, cm, evi, evf, ctl, cfg, wins, extras, hkeys, hstamp, X, out_i, seq):
    """Event k of a run (card slot s, time t, merchant key `mer`; `room` made space for it): its
    late flag, its insertion into the card's history, its card features into X[k]."""
    if ctl[HAS_MAX]:
        max_ts = ctl[MAX_TS]
        late = t < max_ts - cfg[C_BOUND]
        if t > max_ts:
            max_ts = t
    else:
        late = False
        max_ts = t
    ctl[MAX_TS] = max_ts
    ctl[HAS_MAX] = 1
    cm[s, USED] = seq
    i = _insert(cm, evi, evf, s, t, mer, in_f[k, 0], in_f[k, 1], in_f[k, 2])
    base = cm[s, START] + cm[s, HEAD]
    ctl[STAMP] = _features(
        k, i, base, t, in_f, evi, evf, wins, extras, cfg[C_PROFILE] != 0, hkeys, hstamp, ctl[STAMP], X
    )
    out_i[k, O_LATE] = late


@njit(cache=True)
def score(k0, k1, X, cfg, fcfg, prog_i, prog_f, spans, sev, trees, out_i, out_f, fired):
    """Rules, trees and decision of rows k0..k1 of X. They read nothing but the row, so a run's rows
    are scored after its events are all in: the tree walks then run back to back, their nodes hot
    in cache (interleaved with the feature code they ran ~2.5x slower)."""
    nodes, roots, qcond, qidx, qleaf = trees
    stack = np.empty(max(prog_i.shape[0], 1), dtype=np.bool_)
    bits = np.empty(qleaf.shape[0], np.uint64)
    has_model = cfg[C_MODEL] != 0
    for k in range(k0, k1):
        severity, nfired = rules(k, X, prog_i, prog_f, spans, sev, stack, fired)
        ms = model_score(X[k], nodes, roots, qcond, qidx, qleaf, bits, cfg, fcfg) if has_model else NAN
        dec, sc = decide(severity, has_model, ms, fcfg[F_REVIEW], fcfg[F_BLOCK])
        out_i[k, O_SEV] = severity
        out_i[k, O_DEC] = dec
        out_i[k, O_NFIRED] = nfired
        out_f[k, 0] = sc
        out_f[k, 1] = ms
        out_f[k, 2] = np.rint(sc * 1e6) / 1e6  # as written: what np.round(x, 6) computes
        out_f[k, 3] = np.rint(ms * 1e6) / 1e6


@njit(cache=True)
def compact(cm, live, evi, evf, new_evi, new_evf):
    """Copy the live cards' events into fresh arrays, each block with its capacity, in slot order;
    return the new top."""
    top = 0
    for s in live:
        _copy_rows_between(evi, evf, new_evi, new_evf, top, cm[s, START] + cm[s, HEAD], cm[s, LEN])
        cm[s, START] = top
        cm[s, HEAD] = 0
        top += cm[s, CAP]
    return top


@njit(cache=True)
def _copy_rows_between(evi, evf, new_evi, new_evf, dst, src, n):
    new_evi[dst : dst + n] = evi[src : src + n]
    new_evf[dst : dst + n] = evf[src : src + n]
