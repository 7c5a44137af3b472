"""The fraud model at scoring time: gradient-boosted trees exported to plain arrays.

Why not `predict_proba` per event: scikit-learn validates its input on every call (tens of
microseconds). The trees of a fitted `HistGradientBoostingClassifier` are exported once to lists
and walked in pure Python; `tests/test_model.py` proves the result equals scikit-learn's
probabilities. The saved form is JSON (`model.json`), so loading a model never runs code.
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from .errors import UserError

FORMAT = "fraudstream-gbt/1"


class FastModel:
    """Sum of regression trees + baseline, through a logistic link: P(fraud | features)."""

    def __init__(self, spec: dict) -> None:
        if spec.get("format") != FORMAT:
            raise ValueError(f"unsupported model format {spec.get('format')!r}, expected {FORMAT}")
        self.spec = spec
        self.features: list[str] = list(spec["features"])
        self.baseline = float(spec["baseline"])
        self.thresholds: dict[str, float] = dict(spec.get("thresholds") or {})
        # JSON has no infinity: exported thresholds may be the strings "inf"/"-inf".
        self._trees = [
            (t["feature"], [float(x) for x in t["threshold"]], t["left"], t["right"], t["missing_left"],
             t["value"])
            for t in spec["trees"]
        ]
        self._bound = self._trees

    def bind(self, index: dict[str, int]) -> None:
        """Re-point tree feature numbers at a feature plan's slots, so scoring reads the plan's vector."""
        remap = [index[f] for f in self.features]
        self._bound = [
            ([remap[f] if f >= 0 else -1 for f in feat], thr, left, right, mleft, value)
            for feat, thr, left, right, mleft, value in self._trees
        ]

    def score(self, x: list[float]) -> float:
        """P(fraud) for one feature vector (NaN = missing, routed as scikit-learn routes it)."""
        raw = self.baseline
        for feat, thr, left, right, mleft, value in self._bound:
            n = 0
            f = feat[0]
            while f >= 0:
                v = x[f]
                if v <= thr[n]:
                    n = left[n]
                elif v > thr[n]:
                    n = right[n]
                else:  # NaN compares false both ways
                    n = left[n] if mleft[n] else right[n]
                f = feat[n]
            raw += value[n]
        if raw < -700.0:
            return 0.0
        return 1.0 / (1.0 + math.exp(-raw))


def export_hgb(clf, features: list[str]) -> dict:
    """Export a fitted binary HistGradientBoostingClassifier (numeric features only) to a spec dict.

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
            "threshold": [float(t) if math.isfinite(t) else ("inf" if t > 0 else "-inf")
                          for t in nodes["num_threshold"]],
            "left": [int(v) for v in nodes["left"]],
            "right": [int(v) for v in nodes["right"]],
            "missing_left": [int(v) for v in nodes["missing_go_to_left"]],
            "value": [float(v) for v in nodes["value"]],
        })
    return {"format": FORMAT, "features": list(features),
            "baseline": float(clf._baseline_prediction.ravel()[0]), "trees": trees}


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
