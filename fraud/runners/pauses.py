"""Keep the garbage collector's long pauses off the hot path.

numba, llvmlite, numpy and the model leave hundreds of thousands of long-lived objects behind at
start-up; every full (generation 2) collection walks them all. Measured in a Kafka worker at 5,000
tx/s: 35-56 ms per full collection, one of them in the middle of the stream, which alone set the
run's p99.9. `gc.freeze()` (CPython's advice for long-running services) moves what exists once
start-up is over into a generation that is never scanned: later collections walk only what the
stream itself keeps, a few milliseconds at most. Cyclic garbage made later is still collected;
settling again (a Kafka worker does on each assignment) first thaws what was frozen, so the stores
and detectors of revoked partitions are collected too rather than kept frozen forever.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect everything once (what an earlier `settle` froze included), then exclude every
    surviving object from later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
