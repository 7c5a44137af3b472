"""The boosted trees as bit vectors (QuickScorer, Lucchese et al., SIGIR 2015) for the kernel.

Why: walking 150 shallow trees node by node is a chain of dependent loads and unpredictable
branches (about 4 ns a step, 2.4 µs an event on the default model). QuickScorer turns it around: per
feature, the split points of every tree sorted by threshold; a row's value goes right of a prefix of
them, and each of those clears the leaves of its left subtree from its tree's bit vector of leaves.
The exit leaf of each tree is then the leftmost bit left (`trailing_zeros`). The same leaves, so the
same sum, in the same tree order: bit-identical to the walk (`tests/test_model.py`), 3x faster.

Missing values (NaN) go where scikit-learn sends them: per feature, the nodes whose missing values
go right are listed apart and all applied when the value is NaN.

A tree of more than 64 leaves does not fit a word: then the kernel walks the boosted trees instead
(`empty()` here). The forest's trees (up to hundreds of leaves each, 30 of them) are walked always.
"""

from __future__ import annotations

import numpy as np

from fraud.core.score_kernel import BITCOND, Q_COLS

WORD = 64


def empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """No bit vectors: the kernel walks the boosted trees."""
    return np.zeros(0, BITCOND), np.zeros((0, Q_COLS), np.int64), np.zeros((0, 1))


def pack(nodes: np.ndarray, roots: list[int], n_trees: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conditions, feature index, leaf values) of the first `n_trees` trees of a flattened node
    array (`model._flatten`: depth-first, a node's left child right after it, so its left subtree is
    the nodes before its right child).

    conditions: split points by feature slot, each slot's sorted by threshold, then the slot's
    missing-goes-right split points; index rows (slot, first split point, first missing one), and a
    last row with the ends; leaf values [tree, leaf from the left].
    """
    ends = list(roots[1:]) + [len(nodes)]
    is_leaf = nodes["feat"] < 0
    leaves_per_tree = [int(is_leaf[roots[t] : ends[t]].sum()) for t in range(n_trees)]
    if not n_trees or max(leaves_per_tree) > WORD:
        return empty()
    leaf_values = np.zeros((n_trees, max(leaves_per_tree)))
    by_slot: dict[int, list[tuple[float, int, int, bool]]] = {}
    for t in range(n_trees):
        lo, hi = roots[t], ends[t]
        leaf_no = np.cumsum(is_leaf[lo:hi]) - 1  # leaf number of each leaf, left to right
        leaf_values[t, : leaves_per_tree[t]] = nodes["thr"][lo:hi][is_leaf[lo:hi]]
        for i in range(lo, hi):
            if is_leaf[i]:
                continue
            right = int(nodes["right"][i])
            left = [int(leaf_no[j - lo]) for j in range(i + 1, right) if is_leaf[j]]
            mask = (1 << WORD) - 1
            for b in left:
                mask &= ~(1 << b)
            split = (float(nodes["thr"][i]), t, mask, not nodes["miss_left"][i])
            by_slot.setdefault(int(nodes["feat"][i]), []).append(split)
    conds: list[tuple[float, int, int]] = []
    index: list[tuple[int, int, int]] = []
    for slot in sorted(by_slot):
        splits = sorted(by_slot[slot], key=lambda s: s[0])  # stable: equal thresholds keep node order
        start = len(conds)
        conds += [(thr, mask, t) for thr, t, mask, _ in splits]
        index.append((slot, start, len(conds)))
        conds += [(thr, mask, t) for thr, t, mask, nan_right in splits if nan_right]
    index.append((-1, len(conds), len(conds)))
    return np.array(conds, dtype=BITCOND), np.array(index, dtype=np.int64), leaf_values
