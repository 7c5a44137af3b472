"""Compiled scoring of one feature row: the rule program, the trees, the decision.

Called by the per-event kernel (`kernel.run`) for each event, and by `FastModel.score_rows`. Rules are
a postfix program (`rules.RuleProgram`); trees are 16-byte node records (`NODE`), walked; the boosted
trees are also bit vectors (`BITCOND`, `scoring/bitvector_trees.py`), which score the same leaves 3x
faster and are used whenever the model has them.
"""

from __future__ import annotations

import math

import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from fraud.core.jit import njit

OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_ALL, OP_ANY, OP_NOT = range(9)
C_NBOOST, C_NFOREST = 3, 4  # kernel.cfg positions read here
F_BASE, F_FSCALE, F_FWEIGHT = 0, 1, 2  # kernel.fcfg positions read here


@njit(cache=True)
def rules(k, X, prog_i, prog_f, spans, sev, stack, fired):
    """Evaluate every rule's program on row k; return (most severe action, rules fired)."""
    severity = 0
    nfired = 0
    for r in range(sev.shape[0]):
        top = 0
        for p in range(spans[r], spans[r + 1]):
            op = prog_i[p, 0]
            arg = prog_i[p, 1]
            if op <= OP_NE:
                x = X[k, arg]
                v = prog_f[p]
                if op == OP_LT:
                    b = x < v
                elif op == OP_LE:
                    b = x <= v
                elif op == OP_GT:
                    b = x > v
                elif op == OP_GE:
                    b = x >= v
                elif op == OP_EQ:
                    b = x == v
                else:
                    b = x == x and x != v  # a missing value (NaN) fails every comparison, != included
                stack[top] = b
                top += 1
            elif op == OP_NOT:
                stack[top - 1] = not stack[top - 1]
            else:
                acc = op == OP_ALL
                for q in range(top - arg, top):
                    if op == OP_ALL:
                        acc = acc and stack[q]
                    else:
                        acc = acc or stack[q]
                top -= arg
                stack[top] = acc
                top += 1
        hit = stack[0]
        fired[k, r] = hit
        if hit:
            nfired += 1
            if sev[r] > severity:
                severity = sev[r]
    return severity, nfired


# One tree node in 16 bytes, nodes of a tree in depth-first order so that a node's left child is the
# next node: a step reads one record, four to a cache line. A leaf has feature -1, its value in thr.
NODE = np.dtype(
    [("thr", np.float64), ("right", np.int32), ("feat", np.int16), ("miss_left", np.int8), ("pad", np.int8)]
)


@njit(cache=True, inline="always")
def child(x_row, nd, node):
    """The child of split node `node` (record `nd`) that row x_row goes to (NaN compares false both
    ways: it takes the child scikit-learn sends missing values to)."""
    v = x_row[nd.feat]
    if v <= nd.thr:
        return node + 1
    if v > nd.thr:
        return nd.right
    return node + 1 if nd.miss_left else nd.right


@njit(cache=True)
def _trees(x_row, nodes, roots, lo, hi):
    """Sum of the leaf values reached in trees roots[lo:hi], tree by tree."""
    total = 0.0
    for r in range(lo, hi):
        node = roots[r]
        nd = nodes[node]
        while nd.feat >= 0:
            node = child(x_row, nd, node)
            nd = nodes[node]
        total += nd.thr
    return total


# One boosted-tree split point as a bit-vector condition: when the row's value is above `thr` (or
# missing, for the slot's missing-goes-right list) the tree's bit vector of leaves loses `mask`'s zeros.
BITCOND = np.dtype([("thr", np.float64), ("mask", np.uint64), ("tree", np.int64)])
Q_COLS = 3  # bit-vector index rows: feature slot, first condition, first missing-value condition


@njit(cache=True)
def _bitvector_trees(x_row, qcond, qidx, qleaf, bits):
    """Sum of the boosted trees' leaf values, tree by tree, by QuickScorer (`bitvector_trees.py`)."""
    bits[:] = np.uint64(0xFFFFFFFFFFFFFFFF)
    for f in range(qidx.shape[0] - 1):
        v = x_row[qidx[f, 0]]
        if v != v:
            for i in range(qidx[f, 2], qidx[f + 1, 1]):
                c = qcond[i]
                bits[c.tree] &= c.mask
        else:
            for i in range(qidx[f, 1], qidx[f, 2]):  # ascending thresholds: stop at the first not below v
                c = qcond[i]
                if v > c.thr:
                    bits[c.tree] &= c.mask
                else:
                    break
    total = 0.0
    for t in range(qleaf.shape[0]):
        total += qleaf[t, trailing_zeros(bits[t])]
    return total


@njit(cache=True)
def model_score(x_row, nodes, roots, qcond, qidx, qleaf, bits, cfg, fcfg):
    """P(fraud) of one feature row: forest weight x mean forest leaf + (1 - weight) x sigmoid(baseline
    + boosted leaves); without a forest the boosted part alone. `bits`: scratch, one word a tree."""
    nb = cfg[C_NBOOST]
    if nb and qleaf.shape[0] == nb:
        raw = fcfg[F_BASE] + _bitvector_trees(x_row, qcond, qidx, qleaf, bits)
    else:
        raw = fcfg[F_BASE] + _trees(x_row, nodes, roots, 0, nb)
    p = 0.0 if raw < -700.0 else 1.0 / (1.0 + math.exp(-raw))
    if cfg[C_NFOREST]:
        return fcfg[F_FSCALE] * _trees(x_row, nodes, roots, nb, nb + cfg[C_NFOREST]) + (1.0 - fcfg[F_FWEIGHT]) * p
    return p


@njit(cache=True)
def score_rows(X, nodes, roots, qcond, qidx, qleaf, cfg, fcfg, out):
    bits = np.empty(qleaf.shape[0], np.uint64)
    for k in range(X.shape[0]):
        out[k] = model_score(X[k], nodes, roots, qcond, qidx, qleaf, bits, cfg, fcfg)


@njit(cache=True)
def decide(severity, has_model, mscore, review, block):
    """(decision, score): the most severe of the rules' action and the score's threshold decision;
    a fired rule lifts the score to its action's threshold so the two never contradict."""
    score = mscore if has_model else 0.0
    if severity == 2 and score < block:
        score = block
    elif severity == 1 and score < review:
        score = review
    if score >= block:
        return 2, score
    if score >= review:
        return 1, score
    return severity, score
