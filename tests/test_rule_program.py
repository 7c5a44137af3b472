"""The kernel's rule program against a literal reading of SPEC 4 (random condition trees).

Rules are compiled to postfix array programs that compiled code evaluates; the reference here walks
the YAML condition tree in plain Python: a comparison with a missing value (NaN) is false, `!=`
included, and `not` negates whatever its condition gave.
"""

from __future__ import annotations

import math
import operator

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.core import score_kernel as K
from fraud.scoring.rules import parse_rules

FEATURES = ["amount", "count_10m", "sum_1h", "speed_kmh"]
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}

leaf = st.builds(
    lambda f, op, v: {"feature": f, "op": op, "value": v},
    st.sampled_from(FEATURES),
    st.sampled_from(list(OPS)),
    st.sampled_from([0, 1, 2.5, 3, 10]),
)
condition = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda c: {"not": c}, inner),
        st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=4)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=4)),
    ),
    max_leaves=12,
)
value = st.sampled_from([math.nan, 0.0, 1.0, 2.5, 3.0, 7.0, 10.0, 11.0])


def reference(cond: dict, x: dict[str, float]) -> bool:
    if "feature" in cond:
        v = x[cond["feature"]]
        return (not math.isnan(v)) and OPS[cond["op"]](v, cond["value"])
    key, arg = next(iter(cond.items()))
    if key == "not":
        return not reference(arg, x)
    parts = [reference(c, x) for c in arg]
    return all(parts) if key == "all" else any(parts)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(condition, st.sampled_from(["allow", "review", "block"])), min_size=1, max_size=5),
    st.lists(st.fixed_dictionaries({f: value for f in FEATURES}), min_size=1, max_size=6),
)
def test_program_equals_reference(rules, rows):
    rs = parse_rules({"rules": [{"name": f"r{i}", "when": c, "action": a} for i, (c, a) in enumerate(rules)]})
    index = {f: i for i, f in enumerate(FEATURES)}
    prog = rs.program(index)
    X = np.array([[row[f] for f in FEATURES] for row in rows])
    fired = np.zeros((len(rows), len(rules)), dtype=np.bool_)
    stack = np.empty(max(len(prog.code), 1), dtype=np.bool_)
    for k, row in enumerate(rows):
        severity, nfired = K.rules(k, X, prog.code, prog.consts, prog.spans, prog.severity, stack, fired)
        want = [reference(c, row) for c, _ in rules]
        assert fired[k].tolist() == want
        assert nfired == sum(want)
        assert severity == max(
            [("allow", "review", "block").index(a) for (_, a), w in zip(rules, want) if w], default=0
        )
