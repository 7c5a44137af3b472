"""Keep the garbage collector's long pauses off the hot path.

numba, llvmlite, numpy and the model leave hundreds of thousands of long-lived objects behind at
start-up; every full (generation 2) collection walks them all. Measured in a Kafka worker at 5,000
tx/s: 35-56 ms per full collection, one of them in the middle of the stream, which alone set the
run's p99.9. `gc.freeze()` (CPython's advice for long-running services) moves what exists once
start-up is over into a generation that is never scanned: later collections walk only what the
stream itself keeps, a few milliseconds at most. Cyclic garbage made later is still collected;
settling again (a Kafka worker does on each assignment) first thaws what was frozen, so the stores
and detectors of revoked partitions are collected too rather than kept frozen forever.

Replays (training, backtests) make a few hundred thousand objects in a second: 1-2 full collections
of 60-85 ms each, a sixth of a replay of the demo stream, until `frozen_heap` kept the heap they
found out of them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def settle() -> None:
    """Collect everything once (what an earlier `settle` froze included), then exclude every
    surviving object from later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """For a batch job inside a process that goes on after it: what exists on entry (and at each
    `gc.freeze()` inside) is left out of collections while it runs, and handed back on exit, so
    the process's garbage is collected as before (unless someone had frozen it already)."""
    was_frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not was_frozen:
            gc.unfreeze()
