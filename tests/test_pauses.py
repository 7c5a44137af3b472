"""`settle()`: start-up objects frozen out of full collections, and nothing leaked by freezing."""

from __future__ import annotations

import gc
import weakref

from fraud.runners.pauses import settle


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
