"""The scoring fast path equals scikit-learn's probabilities, and the model file runs no code."""

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from fraud.model import FastModel, export_hgb, load_model, save_model


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 6))
    X[rng.random((n, 6)) < 0.15] = np.nan          # missing values, routed per node
    X[:, 5] = np.round(X[:, 5])                      # ties on thresholds
    logit = 2 * np.nan_to_num(X[:, 0]) - 1.5 * np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) - 3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(X, y)
    return clf, X, [f"f{i}" for i in range(6)]


def test_fast_path_equals_predict_proba(fitted):
    clf, X, names = fitted
    fast = FastModel(export_hgb(clf, names))
    want = clf.predict_proba(X)[:, 1]
    got = np.array([fast.score(list(row)) for row in X])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_fast_path_after_save_load_and_rebinding(fitted, tmp_path):
    clf, X, names = fitted
    save_model(export_hgb(clf, names), {"note": "test"}, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())  # plain JSON: no code on load
    assert spec["format"] == "fraudstream-gbt/1"
    fast = load_model(tmp_path / "m")
    # The detector puts features in its own order: bind() re-points the trees.
    order = list(reversed(names)) + ["unused"]
    fast.bind({n: i for i, n in enumerate(order)})
    want = clf.predict_proba(X[:500])[:, 1]
    got = [fast.score([row[names.index(n)] if n in names else 0.0 for n in order]) for row in X[:500]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_shipped_default_model_loads():
    from fraud.config import DEFAULT_MODEL
    model = load_model(DEFAULT_MODEL)
    assert model.features and 0 < model.thresholds["review"] <= model.thresholds["block"] < 1
    assert 0.0 <= model.score([0.0] * len(model.features)) <= 1.0
