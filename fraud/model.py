"""The fraud model at scoring time: tree ensembles exported to plain arrays.

Why not `predict_proba` per event: scikit-learn validates its input on every call (tens of
microseconds). The trees of a fitted `HistGradientBoostingClassifier` (boosted, log-odds leaves) and,
optionally, of an `ExtraTreesClassifier` (forest, probability leaves) are exported once to lists and
walked in pure Python; the model's probability is a fixed blend of the two. `tests/test_model.py`
proves the result equals scikit-learn's probabilities. The saved form is JSON (`model.json`), so
loading a model never runs code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson

from .errors import UserError

FORMAT = "fraudstream-trees/2"
FORMAT_V1 = "fraudstream-gbt/1"  # boosted trees only; still read
# Fewer rows than this are walked one by one: numpy's fixed cost per pass would dominate.
ROWS_AT_ONCE_FROM = 8


def _tree(t: dict) -> tuple:
    # JSON has no infinity: exported thresholds may be the strings "inf"/"-inf".
    return (t["feature"], [float(x) for x in t["threshold"]], t["left"], t["right"], t["missing_left"],
            t["value"])


def _compile(trees: list, remap: list[int] | None = None) -> list[list[tuple]]:
    """Per tree, one tuple per node: (feature slot, threshold, left, right, child for NaN); a leaf has
    feature -1 and its value in place of the threshold. One list index and one unpack per step."""
    out = []
    for feat, thr, left, right, mleft, value in trees:
        out.append([(-1, value[i], 0, 0, 0) if f < 0 else
                    (remap[f] if remap else f, thr[i], left[i], right[i], left[i] if mleft[i] else right[i])
                    for i, f in enumerate(feat)])
    return out


def _walk(trees: list[list[tuple]], x: list[float]) -> float:
    """Sum of the leaf values the feature vector reaches (NaN compares false both ways: it takes the
    child scikit-learn sends missing values to)."""
    total = 0.0
    for nodes in trees:
        f, t, left, right, missing = nodes[0]
        while f >= 0:
            v = x[f]
            f, t, left, right, missing = nodes[left if v <= t else right if v > t else missing]
        total += t
    return total


def _flatten(compiled: list[list[tuple]]) -> tuple:
    """All trees of one part as flat node arrays, for scoring many rows at once: feature slot,
    threshold (a leaf's value for a leaf), the three children as global node numbers (a leaf points
    to itself, so extra steps stay put), the roots, and the deepest path."""
    feat, thr, left, right, miss, roots = [], [], [], [], [], []
    depth = 0
    for nodes in compiled:
        o = len(feat)
        roots.append(o)
        for i, (f, t, lc, rc, mc) in enumerate(nodes):
            feat.append(f)
            thr.append(t)
            if f < 0:
                lc = rc = mc = i
            left.append(o + lc)
            right.append(o + rc)
            miss.append(o + mc)
        stack = [(0, 0)]
        while stack:
            i, d = stack.pop()
            if nodes[i][0] < 0:
                depth = max(depth, d)
            else:
                stack += [(nodes[i][2], d + 1), (nodes[i][3], d + 1)]
    return (np.array(feat, dtype=np.intp), np.array(thr, dtype=np.float64), np.array(left, dtype=np.intp),
            np.array(right, dtype=np.intp), np.array(miss, dtype=np.intp), np.array(roots, dtype=np.intp), depth)


def _walk_rows(flat: tuple, X: np.ndarray) -> np.ndarray:
    """`_walk` for every row of X at once: all trees step together, one level per pass. The leaf
    values are added tree by tree in the same order as `_walk`, so each row's sum is bitwise equal."""
    feat, thr, left, right, miss, roots, depth = flat
    n = X.shape[0]
    idx = np.repeat(roots[:, None], n, axis=1)
    rows = np.arange(n)[None, :]
    for _ in range(depth):
        v = X[rows, feat[idx]]  # a leaf's slot -1 reads some column: its children are itself
        t = thr[idx]
        idx = np.where(v <= t, left[idx], np.where(v > t, right[idx], miss[idx]))
    leaves = thr[idx]
    total = np.zeros(n)
    for row in leaves:
        total += row
    return total


class FastModel:
    """P(fraud | features) = forest_weight * mean(forest leaves) + (1 - forest_weight) * sigmoid(baseline
    + sum(boosted leaves)); without a forest, the boosted part alone."""

    def __init__(self, spec: dict) -> None:
        fmt = spec.get("format")
        if fmt == FORMAT_V1:
            spec = {"format": FORMAT, "features": spec["features"], "thresholds": spec.get("thresholds"),
                    "boosted": {"baseline": spec["baseline"], "trees": spec["trees"]}}
        elif fmt != FORMAT:
            raise ValueError(f"unsupported model format {fmt!r}, expected {FORMAT}")
        self.spec = spec
        self.features: list[str] = list(spec["features"])
        self.thresholds: dict[str, float] = dict(spec.get("thresholds") or {})
        self.baseline = float(spec["boosted"]["baseline"])
        self._boosted = [_tree(t) for t in spec["boosted"]["trees"]]
        forest = spec.get("forest")
        self._forest = [_tree(t) for t in forest["trees"]] if forest else []
        self.forest_weight = float(forest["weight"]) if forest else 0.0
        if not 0.0 <= self.forest_weight <= 1.0:
            raise ValueError(f"forest weight {self.forest_weight} outside [0, 1]")
        self._forest_scale = self.forest_weight / len(self._forest) if self._forest else 0.0
        self._bound = (_compile(self._boosted), _compile(self._forest))
        self._flat: tuple | None = None

    def bind(self, index: dict[str, int]) -> None:
        """Re-point tree feature numbers at a feature plan's slots, so scoring reads the plan's vector."""
        remap = [index[f] for f in self.features]
        self._bound = (_compile(self._boosted, remap), _compile(self._forest, remap))
        self._flat = None

    def score(self, x: list[float]) -> float:
        """P(fraud) for one feature vector (NaN = missing)."""
        boosted, forest = self._bound
        raw = self.baseline + _walk(boosted, x)
        p = 0.0 if raw < -700.0 else 1.0 / (1.0 + math.exp(-raw))
        if forest:
            return self._forest_scale * _walk(forest, x) + (1.0 - self.forest_weight) * p
        return p

    def score_rows(self, X: np.ndarray) -> list[float]:
        """`score` of every row of X (rows of float feature vectors as `score` reads them), bitwise
        equal to calling it row by row; many times faster on a few hundred rows (a Kafka batch): the
        trees are walked by numpy, one level of all trees and rows per step."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"score_rows needs a 2-D array of rows, got shape {X.shape}")
        if len(X) < ROWS_AT_ONCE_FROM:
            return [self.score(row) for row in X.tolist()]
        if self._flat is None:
            boosted, forest = self._bound
            self._flat = (_flatten(boosted), _flatten(forest) if forest else None)
        flat_boosted, flat_forest = self._flat
        raw = (self.baseline + _walk_rows(flat_boosted, X)).tolist()
        exp = math.exp
        p = [0.0 if r < -700.0 else 1.0 / (1.0 + exp(-r)) for r in raw]
        if flat_forest is None:
            return p
        blended = self._forest_scale * _walk_rows(flat_forest, X) + (1.0 - self.forest_weight) * np.array(p)
        return blended.tolist()


def _threshold(t: float) -> float | str:
    return float(t) if math.isfinite(t) else ("inf" if t > 0 else "-inf")


def export_hgb(clf) -> dict:
    """The boosted part from a fitted binary HistGradientBoostingClassifier (numeric features only).

    Reads `_predictors` and `_baseline_prediction`: private but stable attributes; the equality
    test against `predict_proba` catches any change in a new scikit-learn release.
    """
    if len(getattr(clf, "classes_", [])) != 2:
        raise ValueError("only binary classifiers can be exported")
    trees = []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported by the fast path")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append({
            "feature": [-1 if lf else int(f) for f, lf in zip(nodes["feature_idx"], leaf)],
            "threshold": [_threshold(t) for t in nodes["num_threshold"]],
            "left": [int(v) for v in nodes["left"]],
            "right": [int(v) for v in nodes["right"]],
            "missing_left": [int(v) for v in nodes["missing_go_to_left"]],
            "value": [float(v) for v in nodes["value"]],
        })
    return {"baseline": float(clf._baseline_prediction.ravel()[0]), "trees": trees}


def _float64_bound(threshold: float) -> float:
    """scikit-learn's decision trees compare float32(x) <= threshold; the largest float64 x for which
    that holds, so the fast path compares plain Python floats with the same outcome."""
    with np.errstate(over="ignore"):
        t32 = np.float32(threshold)
        if np.float64(t32) > threshold:
            t32 = np.nextafter(t32, np.float32(-np.inf))
        if np.isinf(t32):
            return float(t32)
        up = np.nextafter(t32, np.float32(np.inf))
        if np.isinf(up):  # the largest float32: the gap above it is the gap below it
            up = np.float64(t32) + (np.float64(t32) - np.float64(np.nextafter(t32, np.float32(0))))
        mid = (np.float64(t32) + np.float64(up)) / 2.0  # exact in float64; ties round to even
        return float(mid) if np.float32(mid) == t32 else float(np.nextafter(mid, -np.inf))


def export_forest(clf, weight: float) -> dict:
    """The forest part from a fitted binary ExtraTreesClassifier / RandomForestClassifier: leaves hold
    P(fraud) of the tree, the forest's probability is their mean (as `predict_proba` computes it)."""
    if len(getattr(clf, "classes_", [])) != 2:
        raise ValueError("only binary classifiers can be exported")
    trees = []
    for est in clf.estimators_:
        t = est.tree_
        leaf = t.children_left < 0
        counts = t.value[:, 0, :]
        p = counts[:, 1] / np.maximum(counts.sum(axis=1), 1e-300)
        missing = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8))
        trees.append({
            "feature": [-1 if lf else int(f) for f, lf in zip(t.feature, leaf)],
            "threshold": [0.0 if lf else _threshold(_float64_bound(float(th))) for th, lf in zip(t.threshold, leaf)],
            "left": [int(v) for v in t.children_left],
            "right": [int(v) for v in t.children_right],
            "missing_left": [int(v) for v in missing],
            "value": [float(v) if lf else 0.0 for v, lf in zip(p, leaf)],
        })
    return {"weight": float(weight), "trees": trees}


def model_spec(features: list[str], boosted, forest=None, forest_weight: float = 0.0) -> dict:
    """The saved model: the boosted classifier, and optionally a forest blended in with `forest_weight`."""
    spec = {"format": FORMAT, "features": list(features), "boosted": export_hgb(boosted)}
    if forest is not None and forest_weight > 0:
        spec["forest"] = export_forest(forest, forest_weight)
    return spec


def save_model(spec: dict, card: dict, directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_bytes(orjson.dumps(spec))
    (directory / "model_card.json").write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2))


def load_model(directory: str | Path) -> FastModel:
    path = Path(directory) / "model.json"
    try:
        spec = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: model file not found (train one with `fraud train`)") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read model ({exc})") from None
    try:
        return FastModel(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: invalid model file ({exc})") from None


def load_card(directory: str | Path) -> dict:
    path = Path(directory) / "model_card.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}
