"""The fraud model at scoring time: tree ensembles exported to plain arrays.

Why not `predict_proba` per event: scikit-learn validates its input on every call (tens of
microseconds). The trees of a fitted `HistGradientBoostingClassifier` (boosted, log-odds leaves) and,
optionally, of an `ExtraTreesClassifier` (forest, probability leaves) are exported once to flat node
arrays that the compiled kernel scores in the same call that computes the features (`core/run_kernel.py`;
the boosted trees as bit vectors, `bitvector_trees.py`);
the model's probability is a fixed blend of the two. `tests/test_model.py`
proves the result equals scikit-learn's probabilities. The saved form is JSON (`model.json`), so
loading a model never runs code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson

from fraud.core import score_kernel as KS
from fraud.core import window_kernel as K
from fraud.errors import UserError
from fraud.scoring import bitvector_trees

FORMAT = "fraudstream-trees/2"
FORMAT_V1 = "fraudstream-gbt/1"  # boosted trees only; still read


def _tree(t: dict) -> tuple:
    # JSON has no infinity: exported thresholds may be the strings "inf"/"-inf".
    cover = t.get("cover")
    if cover is not None and (len(cover) != len(t["feature"]) or any(c < 0 for c in cover)):
        raise ValueError("a tree's cover must give a count >= 0 for each node")
    return (
        t["feature"],
        [float(x) for x in t["threshold"]],
        t["left"],
        t["right"],
        t["missing_left"],
        t["value"],
        cover,
    )


def expected_values(feat: list, left: list, right: list, value: list, cover: list | None) -> list[float]:
    """Per node, the mean leaf value under it, weighted by the training rows that reached each
    leaf (`cover`; models saved before it was exported weigh a node's two children equally): what
    the tree predicts before it has looked at the features its path below that node reads."""
    expect = [0.0] * len(feat)
    for i in range(len(feat) - 1, -1, -1):  # children come after their parent
        if feat[i] < 0:
            expect[i] = float(value[i])
            continue
        lc, rc = left[i], right[i]
        wl, wr = (float(cover[lc]), float(cover[rc])) if cover is not None else (1.0, 1.0)
        if wl + wr <= 0.0:
            wl = wr = 1.0
        expect[i] = (wl * expect[lc] + wr * expect[rc]) / (wl + wr)
    return expect


def _flatten(trees: list, remap: list[int]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """All trees as kernel node records (`score_kernel.NODE`), each tree renumbered depth-first
    (a node's left child right after it), children as global node numbers; the roots; and each
    node's expected value (`expected_values`, for the reasons of a decision)."""
    out: list[tuple] = []
    roots: list[int] = []
    expects: list[float] = []
    for feat, thr, left, right, mleft, value, cover in trees:
        o = len(out)
        roots.append(o)
        order: list[int] = []  # old node numbers in depth-first order
        stack = [0]
        while stack:
            i = stack.pop()
            order.append(i)
            if feat[i] >= 0:
                stack += [right[i], left[i]]
        new = {old: o + k for k, old in enumerate(order)}
        expect = expected_values(feat, left, right, value, cover)
        for i in order:
            expects.append(expect[i])
            if feat[i] < 0:
                out.append((float(value[i]), 0, -1, 0, 0))
            else:
                out.append((thr[i], new[right[i]], remap[feat[i]], 1 if mleft[i] else 0, 0))
    return np.array(out, dtype=KS.NODE), roots, np.array(expects, dtype=np.float64)


class FastModel:
    """P(fraud | features) = forest_weight * mean(forest leaves) + (1 - forest_weight) * sigmoid(baseline
    + sum(boosted leaves)); without a forest, the boosted part alone. Walked by the compiled kernel."""

    def __init__(self, spec: dict) -> None:
        fmt = spec.get("format")
        if fmt == FORMAT_V1:
            spec = {
                "format": FORMAT,
                "features": spec["features"],
                "thresholds": spec.get("thresholds"),
                "boosted": {"baseline": spec["baseline"], "trees": spec["trees"]},
            }
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
        for feat, _, left, right, _, _, _ in self._boosted + self._forest:
            n = len(feat)
            if any(f >= len(self.features) for f in feat):
                raise ValueError("a tree splits on a feature the model does not list")
            # children after their parent (as scikit-learn numbers them): every walk ends at a leaf
            children = [c for f, lc, rc in zip(feat, left, right) if f >= 0 for c in (lc, rc)]
            if any(not i < c < n for i, (f, lc, rc) in enumerate(zip(feat, left, right)) if f >= 0 for c in (lc, rc)):
                raise ValueError("a tree node's child is not a later node of the same tree")
            if len(set(children)) != len(children):  # a tree, not a graph: every node has one parent
                raise ValueError("a tree node is the child of two nodes")
        self._forest_scale = self.forest_weight / len(self._forest) if self._forest else 0.0
        self.bind({f: i for i, f in enumerate(self.features)})

    def bind(self, index: dict[str, int]) -> None:
        """Re-point tree feature numbers at a feature plan's slots, so scoring reads the plan's rows."""
        remap = [index[f] for f in self.features]
        if max(remap, default=0) > np.iinfo(np.int16).max:
            raise ValueError("more features than a tree node can name")
        self.nodes, roots, self.expect = _flatten(self._boosted + self._forest, remap)
        self.roots = np.array(roots, dtype=np.int64)
        # the boosted raw score before any feature is read (`explain_kernel`)
        self.base_raw = self.baseline + float(sum(self.expect[roots[: len(self._boosted)]]))
        # what the kernel reads: the walked nodes and the boosted trees as bit vectors
        self.trees = (self.nodes, self.roots, *bitvector_trees.pack(self.nodes, roots, len(self._boosted)))
        self.width = max(remap, default=-1) + 1
        # the kernel's model settings (kernel.C_* / kernel.F_* positions)
        self.cfg = np.zeros(K.CFG_SIZE, dtype=np.int64)
        self.cfg[K.C_NBOOST] = len(self._boosted)
        self.cfg[K.C_NFOREST] = len(self._forest)
        self.cfg[K.C_MODEL] = 1
        self.fcfg = np.zeros(K.FCFG_SIZE, dtype=np.float64)
        self.fcfg[K.F_BASE] = self.baseline
        self.fcfg[K.F_FSCALE] = self._forest_scale
        self.fcfg[K.F_FWEIGHT] = self.forest_weight

    def score(self, x) -> float:
        """P(fraud) for one feature vector (NaN = missing)."""
        return self.score_rows(np.asarray(x, dtype=np.float64).reshape(1, -1))[0]

    def score_rows(self, X: np.ndarray) -> list[float]:
        """`score` of every row of X, in the kernel (the same code that scores live events)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"score_rows needs a 2-D array of rows, got shape {X.shape}")
        if X.shape[1] < self.width:
            raise ValueError(f"rows have {X.shape[1]} features, the model reads {self.width}")
        out = np.empty(len(X))
        self.score_into(X, out)
        return out.tolist()

    def score_into(self, X: np.ndarray, out: np.ndarray) -> None:
        """`score_rows` into `out`, unchecked: rows the detector's kernel just wrote (a shadow model)."""
        KS.score_rows(X, *self.trees, self.cfg, self.fcfg, out)


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
        trees.append(
            {
                "feature": [-1 if lf else int(f) for f, lf in zip(nodes["feature_idx"], leaf)],
                "threshold": [_threshold(t) for t in nodes["num_threshold"]],
                "left": [int(v) for v in nodes["left"]],
                "right": [int(v) for v in nodes["right"]],
                "missing_left": [int(v) for v in nodes["missing_go_to_left"]],
                "value": [float(v) for v in nodes["value"]],
                "cover": [int(v) for v in nodes["count"]],
            }
        )
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
        trees.append(
            {
                "feature": [-1 if lf else int(f) for f, lf in zip(t.feature, leaf)],
                "threshold": [
                    0.0 if lf else _threshold(_float64_bound(float(th))) for th, lf in zip(t.threshold, leaf)
                ],
                "left": [int(v) for v in t.children_left],
                "right": [int(v) for v in t.children_right],
                "missing_left": [int(v) for v in missing],
                "value": [float(v) if lf else 0.0 for v, lf in zip(p, leaf)],
                "cover": [float(v) for v in t.weighted_n_node_samples],
            }
        )
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


def load_model(directory: str | Path, served: bool = True) -> FastModel:
    path = Path(directory) / "model.json"
    try:
        spec = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: model file not found (train one with `fraud train`)") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read model ({exc})") from None
    try:
        model = FastModel(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: invalid model file ({exc})") from None
    if served:  # a model the detector serves reads features of the catalogue
        from fraud.scoring.features import is_known

        unknown = [f for f in model.features if not isinstance(f, str) or not is_known(f)]
        if unknown:
            raise UserError(f"{path}: invalid model file (unknown feature(s) {unknown[:5]}, see docs/features.md)")
    return model
