"""`settle()` and `frozen_heap()`: objects frozen out of full collections, and nothing leaked by freezing."""

from __future__ import annotations

import gc
import weakref

from fraud.runners.pauses import frozen_heap, settle


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_freezes_survivors_and_a_later_settle_frees_their_cycles():
    try:
        node = _Node()
        gone = weakref.ref(node)
        settle()
        assert gc.get_freeze_count() > 0  # survivors are out of the collector's way
        del node
        gc.collect()
        assert gone() is not None  # frozen: a full collection no longer looks at it
        settle()  # e.g. a revocation: what was frozen and is garbage now goes
        assert gone() is None
        later = _Node()
        gone_later = weakref.ref(later)
        del later
        gc.collect()
        assert gone_later() is None  # garbage made after a settle is collected as usual
    finally:
        gc.unfreeze()


def test_frozen_heap_hands_the_heap_back_after_a_replay():
    gc.unfreeze()
    try:
        node = _Node()
        gone = weakref.ref(node)
        with frozen_heap():
            assert gc.get_freeze_count() > 0
            del node
            gc.collect()
            assert gone() is not None  # frozen while the batch job runs
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert gone() is None  # and collected once it is over
        settle()  # a process that froze its heap itself keeps it frozen
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
