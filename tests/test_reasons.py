"""Reasons of flagged decisions: the rules that fired and the features that pushed the score up.

The identity (`fraud/core/explain_kernel.py`): model_score = base + sum of every feature's
contribution, where the boosted trees' path steps (log-odds) are carried into score units by the
sigmoid's secant slope and the forest's steps are averaged as its leaves are. Checked on every
flagged decision of a stream, against a pure-Python walk of the model file's own trees.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import orjson
import pytest

from fraud.core.detector import open_detector, runs_of
from fraud.core.records import iter_transactions
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES


def _expect(tree: dict, i: int) -> float:
    """Mean leaf value under node i weighted by cover (equal halves without one): recursive."""
    if tree["feature"][i] < 0:
        return tree["value"][i]
    lc, rc = tree["left"][i], tree["right"][i]
    cover = tree.get("cover")
    wl, wr = (cover[lc], cover[rc]) if cover else (1.0, 1.0)
    return (wl * _expect(tree, lc) + wr * _expect(tree, rc)) / (wl + wr)


def _steps(tree: dict, x: list[float], out: dict[int, float], scale: float) -> float:
    """Walk one tree as scikit-learn does; add each step to its feature; return E[root]."""
    i = 0
    while tree["feature"][i] >= 0:
        f, thr = tree["feature"][i], float(tree["threshold"][i])
        v = x[f]
        left = (v <= thr) if not math.isnan(v) else bool(tree["missing_left"][i])
        child = tree["left"][i] if left else tree["right"][i]
        out[f] = out.get(f, 0.0) + scale * (_expect(tree, child) - _expect(tree, i))
        i = child
    return _expect(tree, 0)


def reference(spec: dict, x: list[float]) -> tuple[float, dict[int, float]]:
    """(base, contribution per model feature index), straight from the model file."""
    boosted: dict[int, float] = {}
    raw0 = spec["boosted"]["baseline"] + sum(_steps(t, x, boosted, 1.0) for t in spec["boosted"]["trees"])
    raw = raw0 + sum(boosted.values())
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    slope = (sig(raw) - sig(raw0)) / (raw - raw0) if abs(raw - raw0) > 1e-12 else sig(raw0) * (1 - sig(raw0))
    forest = spec.get("forest")
    out: dict[int, float] = {}
    base = 0.0
    share = 1.0
    if forest:
        w, trees = forest["weight"], forest["trees"]
        base = w * sum(_steps(t, x, out, w / len(trees)) for t in trees) / len(trees)
        share = 1.0 - w
    for f, c in boosted.items():
        out[f] = out.get(f, 0.0) + share * slope * c
    return base + share * sig(raw0), out


@pytest.fixture(scope="module")
def flagged(small_stream):
    """(detector, feature rows, decision records) of every flagged decision of the small stream."""
    model, rules = load_model(DEFAULT_MODEL), load_rules(DEFAULT_RULES)
    rows, recs, all_recs = [], [], []
    with open_detector(model=model, rules=rules) as det:
        for run in runs_of(iter_transactions(str(small_stream["tx"])), 8):
            res = det.run(run)
            out = det.records(run, res, [0] * len(run), lambda: 0)
            all_recs += out
            for k, d in enumerate(out):
                if d["decision"] != "allow":
                    rows.append((res.X[k].copy(), float(res.out_f[k, 1])))
                    recs.append(d)
        yield det, model, rows, recs, all_recs


def test_every_flagged_decision_has_reasons_and_allows_have_none(flagged):
    _, _, rows, recs, all_recs = flagged
    assert len(recs) > 50
    for d in all_recs:
        if d["decision"] == "allow":
            assert "reasons" not in d
        else:
            r = d["reasons"]
            assert r["rules"] == d["rules"]
            assert r["model_base"] is not None and 1 <= len(r["features"]) <= 3
            contribs = [f["contribution"] for f in r["features"]]
            assert contribs == sorted(contribs, reverse=True) and contribs[-1] > 0


def test_contributions_add_up_to_the_model_score(flagged):
    det, _, rows, recs, _ = flagged
    worst = 0.0
    for (x, model_score), d in zip(rows, recs, strict=True):
        base, contrib = det.explainer.contributions(x)
        worst = max(worst, abs(base + contrib.sum() - model_score))
        top = np.argsort(-contrib, kind="stable")[: len(d["reasons"]["features"])]
        assert [det.plan.names[s] for s in top] == [f["feature"] for f in d["reasons"]["features"]]
        assert d["reasons"]["model_base"] == round(base, 6)
    assert worst < 1e-9


def test_the_kernel_matches_a_pure_python_walk_of_the_model_file(flagged):
    det, model, rows, _, _ = flagged
    spec = model.spec
    slots = [det.plan.index[f] for f in model.features]
    for x, _ in rows[:200]:
        xm = [float(x[s]) for s in slots]
        base, ref = reference(spec, xm)
        kbase, contrib = det.explainer.contributions(x)
        assert kbase == pytest.approx(base, abs=1e-9)
        for i, s in enumerate(slots):
            assert contrib[s] == pytest.approx(ref.get(i, 0.0), abs=1e-9)


def test_fraud_explain_tells_one_decision(flagged, tmp_path):
    _, _, _, recs, all_recs = flagged
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in all_recs))
    blocked = next(d for d in recs if d["decision"] == "block" and d["rules"])
    run = [sys.executable, "-m", "fraud.cli", "explain", "--decisions", str(path), "--tx-id"]
    out = subprocess.run([*run, blocked["tx_id"]], capture_output=True, text=True, check=True).stdout
    assert "decision: BLOCK" in out and blocked["rules"][0] in out
    assert blocked["reasons"]["features"][0]["feature"] in out
    allowed = next(d for d in all_recs if d["decision"] == "allow")
    out = subprocess.run([*run, allowed["tx_id"]], capture_output=True, text=True, check=True).stdout
    assert "no reasons recorded" in out
    missing = subprocess.run([*run, "no-such-tx"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no decision for tx_id" in missing.stderr and "Traceback" not in missing.stderr
