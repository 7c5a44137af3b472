"""One compiled call per run: each event's merchant and report features, then its card kernel.

A run crosses from Python into compiled code once. Each call has a fixed cost (numba checks and
unpacks every argument, then Python creates the run's arrays), which runs of a few events pay once
instead of three times over (merchant table, reports, card kernel). Per event, in arrival order:

1. read the merchant's delayed windows (`merchant_kernel.read`) and the fraud reports known at its
   time (`report_kernel.event`) into the event's input row;
2. look for it in its card's history (`kernel.find`, by transaction key); unless it is a repeat
   of an event already there (an upstream retry), make room in its card's block (`kernel.room`);
3. count it in the merchant table (`merchant_kernel.add`), a repeat too: on Kafka the merchant
   table is a global table fed by the whole topic, where nothing knows a card's history, and
   embedded runs count the same way. Steps 2 and 3 can find an arena full: the call then returns
   before anything of that event has changed, so the caller makes room and calls again from it;
4. a repeat is decided as the event it repeats was (`kernel.repeat`), never inserted twice; any
   other event is inserted into its card's history, its card features computed (`kernel.event`).

Then the rules, trees and decision of every event done (`kernel.score`), row by row.

The merchant table and the card histories do not read each other, so this gives exactly the
results of filling every input row first and running the card kernel after.
"""

from __future__ import annotations

import numpy as np

from fraud.core import merchant_kernel as MK
from fraud.core import report_kernel as RK
from fraud.core import window_kernel as K
from fraud.core.jit import njit

# ev_i columns: event time, card slot, merchant slot, card key (merchant table), report rows of
# the card and of the merchant (-1: no report about it), transaction key (the caller puts the
# amount's bits there; `tx_keys` mixes in the tx_id and the merchant)
V_TS, V_CARD, V_MERCHANT, V_CARD_KEY, V_REPORT_CARD, V_REPORT_MERCHANT, V_TX_KEY = range(7)
EV_I_COLS = 7
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def _mix(h):
    """splitmix64's finaliser: every input bit moves about half the output bits."""
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    return h ^ (h >> np.uint64(31))


@njit(cache=True)
def tx_keys(ids, ev_i, mkeys):
    """Each event's transaction key: a 64-bit hash of its tx_id (the bytes of `ids`, the run's
    tx_ids in UTF-8 joined by NUL, which ids never hold), its merchant and its amount. Stable across
    processes and versions: keys are saved with the card's history."""
    pos = 0
    for k in range(ev_i.shape[0]):
        h = _FNV_OFFSET
        while pos < ids.shape[0] and ids[pos] != 0:
            h = (h ^ np.uint64(ids[pos])) * _FNV_PRIME
            pos += 1
        pos += 1
        h = _mix(h ^ np.uint64(mkeys[ev_i[k, V_MERCHANT]]))
        h = _mix(h ^ np.uint64(ev_i[k, V_TX_KEY]))
        ev_i[k, V_TX_KEY] = np.int64(h)


# mcfg: read the merchant windows, feed the table, hours of counts and of cards kept, sweep as fed
M_READ, M_FEED, M_KEEP_H, M_KEEP_CARDS_H, M_AUTO_SWEEP = range(5)
MCFG_SIZE = 5
# which arena was full when a call returns early
FULL_CARDS, FULL_MERCHANTS = 0, 1


@njit(cache=True)
def run(
    k0,
    ev_i,
    ids,
    fixed,
    in_f,
    cm,
    evi,
    evf,
    ctl,
    cfg,
    fcfg,
    wins,
    extras,
    prog_i,
    prog_f,
    spans,
    sev,
    trees,
    hkeys,
    hstamp,
    mm,
    mev,
    mctl,
    mkeys,
    mcfg,
    mcols,
    mhkeys,
    mhstamp,
    rev,
    rrp,
    roff,
    rcols,
    rdefaults,
    windows,
    X,
    out_i,
    out_f,
    fired,
):
    """Decide events k0.. of the run in order; returns (events done, which arena was full if not all).
    The transaction keys are computed on the first call of a run (k0 = 0) and kept in ev_i.
    fixed[k] = event k's amount, lat, lon, card_present: copied into its input row in_f[k], whose
    other columns the merchant and report kernels fill."""
    read = mcfg[M_READ] != 0
    feed = mcfg[M_FEED] != 0
    reports = rcols.shape[0] > 0
    ctl[K.SEQ] += 1
    seq = ctl[K.SEQ]
    n = ev_i.shape[0]
    if k0 == 0:
        tx_keys(ids, ev_i, mkeys)
    done, full = n, FULL_CARDS
    for k in range(k0, n):
        t = ev_i[k, V_TS]
        s = ev_i[k, V_CARD]
        m = ev_i[k, V_MERCHANT]
        key = ev_i[k, V_TX_KEY]
        for c in range(K.IN_F_FIXED):
            in_f[k, c] = fixed[k, c]
        if read:
            MK.read(k, mm, mev, m, t, mhkeys, mhstamp, mctl, windows, in_f, mcols)
        if reports:
            RK.event(
                k,
                ev_i[k, V_REPORT_CARD],
                ev_i[k, V_REPORT_MERCHANT],
                t,
                rev,
                rrp,
                roff,
                windows,
                in_f,
                rcols,
                rdefaults,
            )
        j = K.find(cm, evi, s, key, K.cutoff(ctl, cfg, t))
        if j < 0 and not K.room(cm, evi, evf, ctl, cfg, s, t):
            done, full = k, FULL_CARDS
            break
        if feed and not MK.add(
            mm, mev, mctl, m, ev_i[k, V_CARD_KEY], t, mcfg[M_KEEP_H], mcfg[M_KEEP_CARDS_H], mcfg[M_AUTO_SWEEP] != 0
        ):
            done, full = k, FULL_MERCHANTS
            break
        if j >= 0:
            K.repeat(k, j, t, s, in_f, cm, evi, evf, ctl, cfg, wins, extras, hkeys, hstamp, X, out_i, seq)
        else:
            K.event(k, t, s, mkeys[m], key, in_f, cm, evi, evf, ctl, cfg, wins, extras, hkeys, hstamp, X, out_i, seq)
    K.score(k0, done, X, cfg, fcfg, prog_i, prog_f, spans, sev, trees, out_i, out_f, fired)
    return done, full
