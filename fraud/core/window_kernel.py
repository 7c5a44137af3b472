"""The compiled per-event core: card history, window features, rules and trees, one event at a time.

One call decides a run of already-decoded events in arrival order; each event sees exactly the state
its predecessors in the run left (as if called once per event), so runs change cost, never results.
Python interns ids to slots and packs the run into arrays; everything per event happens here.

Card histories live in the arena (`state/arena.py`), kept by `history_kernel.py`: insertion in
event-time order, eviction behind the watermark, the cap on events per card, and `find`, which
recognises a repeat of a transaction already in the history by its key (`run_kernel.tx_keys`).
Here, per event: the late flag, the window aggregates and card features, then rules and trees.

The arithmetic follows the definitions in features.py and the old pure-Python code step by step
(same summation order, same formulas), so features and scores are the same floats.
"""

from __future__ import annotations

import math

import numpy as np

from fraud.core import score_kernel as _scoring
from fraud.core.history_kernel import (  # noqa: F401  (the arena layout, read through this module too)
    CAP,
    CM_COLS,
    CTL_SIZE,
    DIRTY,
    EVI_COLS,
    HAS_MAX,
    HEAD,
    LEN,
    MAX_TS,
    MIN_CAP,
    SEQ,
    STAMP,
    START,
    TOP,
    USED,
    bisect_left,
    bisect_right,
    block_max,
    compact,
    find,
    insert,
    make_room,
)
from fraud.core.jit import njit
from fraud.core.score_kernel import decide, model_score, rules
from fraud.core.units import DAY_MS, HOUR_MS, MINUTE_MS

PROFILE_MS = 30 * DAY_MS  # the card's own earlier 30 days (amount_z_30d & co.)
_HABIT_MS = 7_200_000
_DEG = math.pi / 180.0  # what CPython's math.radians multiplies by
NAN = np.nan

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
# out_i columns: late, severity of fired rules, decision (0 allow, 1 review, 2 block), rules fired,
# repeat (the transaction was already in the card's history)
O_LATE, O_SEV, O_DEC, O_NFIRED, O_REPEAT = range(5)
OUT_I_COLS = 5


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
            lo = bisect_right(evi, base, 0, i, t - dur)
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
    plo = bisect_right(evi, base, 0, i, t - PROFILE_MS)
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
                t0 = evi[base + plo, 0]
                day = t0 - t0 % DAY_MS  # the times are sorted: the day's start only moves on
                for j in range(plo, i):
                    tj = evi[base + j, 0]
                    if tj >= day + DAY_MS:  # a new day: one % per day, not per event
                        day = tj - tj % DAY_MS
                    d = abs(tj - day - mine)
                    if d <= _HABIT_MS or d >= DAY_MS - _HABIT_MS:
                        near += 1
                X[k, slot] = near / (i - plo)
        else:
            X[k, slot] = in_f[k, extras[e, 2]]
    return stamp


@njit(cache=True)
def cutoff(ctl, cfg, t):
    """Events before this time are behind what any window of an event at t or later can reach,
    with the watermark that event at t brings: they are evicted."""
    max_ts = max(ctl[MAX_TS], t) if ctl[HAS_MAX] else t
    return max_ts - cfg[C_BOUND] - cfg[C_KEEP]


@njit(cache=True)
def room(cm, evi, evf, ctl, cfg, s, t):
    """Make room in card slot s's block for an event at time t (evicting what the watermark that
    event brings has left behind); False if the arena is full: nothing of the event changed then."""
    return make_room(cm, evi, evf, ctl, s, cutoff(ctl, cfg, t), cfg[C_MAXCAP])


@njit(cache=True)
def _arrive(t, ctl, cfg):
    """The watermark an event at time t brings; whether it was already past t (the late flag)."""
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
    return late


@njit(cache=True)
def event(k, t, s, mer, key, in_f, cm, evi, evf, ctl, cfg, wins, extras, hkeys, hstamp, X, out_i, seq):
    """Event k of a run (card slot s, time t, merchant key `mer`; `room` made space for it): its
    late flag, its insertion into the card's history, its card features into X[k]."""
    out_i[k, O_LATE] = _arrive(t, ctl, cfg)
    out_i[k, O_REPEAT] = 0
    cm[s, USED] = seq
    i = insert(cm, evi, evf, s, t, mer, key, in_f[k, 0], in_f[k, 1], in_f[k, 2])
    base = cm[s, START] + cm[s, HEAD]
    ctl[STAMP] = _features(
        k, i, base, t, in_f, evi, evf, wins, extras, cfg[C_PROFILE] != 0, hkeys, hstamp, ctl[STAMP], X
    )


@njit(cache=True)
def repeat(k, j, t, s, in_f, cm, evi, evf, ctl, cfg, wins, extras, hkeys, hstamp, X, out_i, seq):
    """Event k repeats the event at index j of card slot s's history (an upstream retry): it is not
    inserted again; its card features are those of the first one, at the first one's place in the
    history (its time, its amount, what was before it). Its own time still moves the watermark."""
    out_i[k, O_LATE] = _arrive(t, ctl, cfg)
    out_i[k, O_REPEAT] = 1
    cm[s, USED] = seq
    base = cm[s, START] + cm[s, HEAD]
    first = evi[base + j, 0]
    ctl[STAMP] = _features(
        k, j, base, first, in_f, evi, evf, wins, extras, cfg[C_PROFILE] != 0, hkeys, hstamp, ctl[STAMP], X
    )


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
