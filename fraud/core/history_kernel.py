"""Card histories in the arena: insert, evict, find and compact, in compiled code.

Card slot s owns the block `evi/evf[start, start+cap)` of the arena (`state/arena.py`); its events,
in event-time order, are at `start + head .. start + head + len`. Columns: evi = (event time ms,
merchant key, transaction key), evf = (amount, lat, lon). cm[s] = (start, head, len, cap, dirty,
last used). The window features over these histories are in `window_kernel.py`.
"""

from __future__ import annotations

from fraud.core.jit import njit

# cm columns
START, HEAD, LEN, CAP, DIRTY, USED = range(6)
CM_COLS = 6
# ctl: arena top, max event time seen, whether one was seen, run counter (for LRU), set stamp
TOP, MAX_TS, HAS_MAX, SEQ, STAMP = range(5)
CTL_SIZE = 5
EVI_COLS = 3
MIN_CAP = 8


@njit(cache=True)
def block_max(maxcap):
    """The largest block a card gets: its cap on events and a quarter more (`make_room`)."""
    return maxcap + (maxcap >> 2)


@njit(cache=True)
def bisect_right(evi, base, lo, hi, x):
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
        evi[dst + j, 2] = evi[src + j, 2]
        evf[dst + j, 0] = evf[src + j, 0]
        evf[dst + j, 1] = evf[src + j, 1]
        evf[dst + j, 2] = evf[src + j, 2]


@njit(cache=True)
def insert(cm, evi, evf, s, t, mer, key, amt, lat, lon):
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
        i = bisect_right(evi, base, 0, n, t)
        for j in range(n, i, -1):
            evi[base + j, 0] = evi[base + j - 1, 0]
            evi[base + j, 1] = evi[base + j - 1, 1]
            evi[base + j, 2] = evi[base + j - 1, 2]
            evf[base + j, 0] = evf[base + j - 1, 0]
            evf[base + j, 1] = evf[base + j - 1, 1]
            evf[base + j, 2] = evf[base + j - 1, 2]
    evi[base + i, 0] = t
    evi[base + i, 1] = mer
    evi[base + i, 2] = key
    evf[base + i, 0] = amt
    evf[base + i, 1] = lat
    evf[base + i, 2] = lon
    cm[s, LEN] = n + 1
    cm[s, DIRTY] = 1
    return i


@njit(cache=True)
def make_room(cm, evi, evf, ctl, s, cutoff, maxcap):
    """Evict the card's events older than `cutoff` (and its oldest at the cap), and grow its block
    so that one more fits. False if the arena is full: nothing was changed then.

    A block grows up to `block_max(maxcap)`, a quarter more than the events it may hold: a card at
    the cap advances its head one event at a time and slides its events back to the block's start
    once per maxcap/4 events (at exactly the cap it slid them on every event, O(cap) each)."""
    base = cm[s, START] + cm[s, HEAD]
    n = cm[s, LEN]
    gone = bisect_left(evi, base, 0, n, cutoff) if n else 0
    if n - gone >= maxcap:  # at the cap: the oldest events make way (documented in features.py)
        gone = n - maxcap + 1
    keep = n - gone
    cap = cm[s, CAP]
    limit = block_max(maxcap)
    if keep >= cap and cap < limit:  # the block is full of live events: a larger one
        newcap = min(max(2 * cap, MIN_CAP), limit)
        top = ctl[TOP]
        if top + newcap > evi.shape[0]:
            return False
        _copy_rows(evi, evf, top, base + gone, keep)
        cm[s, START] = top
        cm[s, HEAD] = 0
        cm[s, LEN] = keep
        cm[s, CAP] = newcap
        cm[s, DIRTY] = 1
        ctl[TOP] = top + newcap
        return True
    if gone:
        cm[s, HEAD] += gone
        cm[s, LEN] = keep
        cm[s, DIRTY] = 1
    return True


@njit(cache=True)
def find(cm, evi, s, key, cutoff):
    """Index of the event with transaction key `key` and a time at or after `cutoff` in card slot
    s's history, -1 if none. Older events are as good as evicted (the next insertion drops them,
    a checkpoint may have deleted the card): never a match, whether or not they are still there.
    A scan, newest first (retries come soon after), bounded by the cap on events kept per card."""
    base = cm[s, START] + cm[s, HEAD]
    for j in range(cm[s, LEN] - 1, -1, -1):
        if evi[base + j, 0] < cutoff:
            return -1
        if evi[base + j, 2] == key:
            return j
    return -1


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
