"""Why the model scored a payment high: per-feature path contributions, in compiled code.

Called once per run, only for the flagged (review, block) decisions, so an `allow` costs nothing.
Each tree's walk is split into its steps (Saabas): the step from a node to its child adds
`expect[child] - expect[node]` to the feature the node splits on, where `expect` is the mean leaf
value under a node weighted by the training rows that reached it (`model.expected_values`). Along one
path these telescope: leaf value = expect[root] + sum of the steps. Summed over the trees:

    boosted raw score  = baseline + sum_t expect[root_t] + sum_f c_f          (log-odds)
    forest probability = mean_t expect[root_t] + sum_f d_f / n_trees

The model's score blends sigmoid(raw) with the forest (`score_kernel.model_score`); the boosted
log-odds steps are carried into score units by the secant slope of the sigmoid between the base and
the row's raw score, which keeps the identity exact:

    model_score = base + sum_f contribution_f

with base = weight x forest base + (1 - weight) x sigmoid(baseline + sum_t expect[root_t]).
`tests/test_reasons.py` checks it on every flagged decision of a run.
"""

from __future__ import annotations

import math

import numpy as np

from fraud.core.jit import njit
from fraud.core.score_kernel import child


@njit(cache=True)
def _sigmoid(x):
    return 0.0 if x < -700.0 else 1.0 / (1.0 + math.exp(-x))


@njit(cache=True)
def _paths(x_row, nodes, expect, roots, lo, hi, scale, out):
    """Add each step of the walks of trees roots[lo:hi] to its split feature, times `scale`."""
    for r in range(lo, hi):
        node = roots[r]
        nd = nodes[node]
        while nd.feat >= 0:
            nxt = child(x_row, nd, node)
            out[nd.feat] += scale * (expect[nxt] - expect[node])
            node = nxt
            nd = nodes[node]


@njit(cache=True)
def contributions(x_row, nodes, expect, roots, nb, nf, base_raw, fscale, fweight, boosted, out):
    """Each feature's contribution to the model score of one row (`out`, score units); `boosted`
    is scratch of the same width. Returns the base (the score with every contribution removed)."""
    boosted[:] = 0.0
    out[:] = 0.0
    _paths(x_row, nodes, expect, roots, 0, nb, 1.0, boosted)
    forest_base = 0.0
    if nf:
        _paths(x_row, nodes, expect, roots, nb, nb + nf, fscale, out)
        for r in range(nb, nb + nf):
            forest_base += expect[roots[r]]
        forest_base *= fscale
    raw = base_raw
    for f in range(boosted.shape[0]):
        raw += boosted[f]
    share = 1.0 - fweight if nf else 1.0
    if abs(raw - base_raw) > 1e-12:
        slope = (_sigmoid(raw) - _sigmoid(base_raw)) / (raw - base_raw)
    else:
        p = _sigmoid(base_raw)
        slope = p * (1.0 - p)
    for f in range(boosted.shape[0]):
        out[f] += share * slope * boosted[f]
    return forest_base + share * _sigmoid(base_raw)


@njit(cache=True)
def top_reasons(X, rows, nodes, expect, roots, nb, nf, base_raw, fscale, fweight, top_slot, top_value):
    """For each row X[rows[i]]: the `top_slot.shape[1]` features with the largest positive
    contributions, largest first (slot -1: fewer than that pushed the score up). Returns the bases."""
    width = X.shape[1]
    boosted = np.empty(width)
    contrib = np.empty(width)
    bases = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        bases[i] = contributions(X[rows[i]], nodes, expect, roots, nb, nf, base_raw, fscale, fweight, boosted, contrib)
        for j in range(top_slot.shape[1]):
            best = -1
            for f in range(width):
                if contrib[f] > 0.0 and (best < 0 or contrib[f] > contrib[best]):
                    best = f
            top_slot[i, j] = best
            if best < 0:
                top_value[i, j] = 0.0
            else:
                top_value[i, j] = contrib[best]
                contrib[best] = 0.0
    return bases
