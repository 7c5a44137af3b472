"""Compiled fraud-report features (`feedback.py` defines them): counts and ages of confirmed frauds
known at each event's time, per card and per merchant, and the merchant fraud rates.

The reports are few and change rarely, so Python packs them (`FeedbackIndex.packed`) into one sorted
table: rows off[key] .. off[key + 1] of (fraud event time, reported_at), sorted like the Python lists
(by time, then report time); keys are cards and merchants, found by dictionary per event.
"""

from __future__ import annotations

import numpy as np

from fraud.core.jit import njit
from fraud.core.merchant_kernel import DELAY_MS
from fraud.core.units import DAY_MS, HOUR_MS
from fraud.core.window_kernel import PROFILE_MS

_BIG = 1 << 62
# cols: card_frauds_known_30d, merchant_frauds_known_7d, merchant_frauds_known_30d,
# merchant_days_since_known_fraud, card_days_since_known_fraud, merchant_fraud_rate_1d/7d/30d


@njit(cache=True)
def _after(ev, rp, lo, hi, e0, r0):
    """bisect_right of (e0, r0) in the (time, reported_at) pairs [lo, hi): first pair > (e0, r0)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if e0 < ev[mid] or (e0 == ev[mid] and r0 < rp[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def count_between(ev, rp, lo, hi, lo_ts, hi_ts, t):
    """Reports known at t (reported_at <= t) about frauds with event time in [lo_ts, hi_ts)."""
    a = _after(ev, rp, lo, hi, lo_ts, -1)
    b = _after(ev, rp, lo, hi, hi_ts, -1)
    n = 0
    for k in range(a, b):
        if rp[k] <= t:
            n += 1
    return n


@njit(cache=True)
def days_since_latest(ev, rp, lo, hi, t):
    k = _after(ev, rp, lo, hi, t, _BIG) - 1
    while k >= lo:
        if rp[k] <= t:
            return (t - ev[k]) / DAY_MS
        k -= 1
    return np.nan


@njit(cache=True)
def event(k, c, m, t, ev, rp, off, windows, out, cols, defaults):
    """Event k's report features into out[k, cols[j]] (cols[j] >= 0): the defaults (no known fraud),
    then what the reports about card row c and merchant row m say (rows < 0: no report about that
    key; the merchant rates then stay as the merchant kernel wrote them)."""
    for j in range(5):
        if cols[j] >= 0:
            out[k, cols[j]] = defaults[j]
    if c >= 0:
        if cols[0] >= 0:
            out[k, cols[0]] = count_between(ev, rp, off[c], off[c + 1], t - PROFILE_MS + 1, t + 1, t)
        if cols[4] >= 0:
            out[k, cols[4]] = days_since_latest(ev, rp, off[c], off[c + 1], t)
    if m >= 0:
        lo = off[m]
        hi = off[m + 1]
        if cols[1] >= 0:
            out[k, cols[1]] = count_between(ev, rp, lo, hi, t - 7 * DAY_MS + 1, t + 1, t)
        if cols[2] >= 0:
            out[k, cols[2]] = count_between(ev, rp, lo, hi, t - PROFILE_MS + 1, t + 1, t)
        if cols[3] >= 0:
            out[k, cols[3]] = days_since_latest(ev, rp, lo, hi, t)
        cut = (t - DELAY_MS) // HOUR_MS * HOUR_MS
        for j in range(3):
            col = cols[5 + j]
            n = windows[k, j]
            if col >= 0 and n > 0:
                d = (1, 7, 30)[j] * DAY_MS
                out[k, col] = count_between(ev, rp, lo, hi, cut - d, cut, t) / n
