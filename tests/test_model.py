"""The scoring fast path equals scikit-learn's probabilities (boosted trees, forest, blend), and the model
file runs no code."""

import json

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier

from fraud.scoring.model import FastModel, _float64_bound, load_model, model_spec, save_model


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 6))
    X[rng.random((n, 6)) < 0.15] = np.nan  # missing values, routed per node
    X[:, 5] = np.round(X[:, 5])  # ties on thresholds
    logit = 2 * np.nan_to_num(X[:, 0]) - 1.5 * np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) - 3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(X, y)
    forest = ExtraTreesClassifier(n_estimators=20, min_samples_leaf=2, max_features=0.5, random_state=0).fit(X, y)
    return clf, forest, X, [f"f{i}" for i in range(6)]


def test_fast_path_equals_predict_proba(fitted):
    clf, _, X, names = fitted
    fast = FastModel(model_spec(names, clf))
    want = clf.predict_proba(X)[:, 1]
    got = np.array([fast.score(list(row)) for row in X])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_blend_with_forest_equals_predict_proba(fitted):
    clf, forest, X, names = fitted
    fast = FastModel(model_spec(names, clf, forest, 0.7))
    # Rows sitting on the forest's float32 split points, and just either side of them, too.
    thresholds = [t for est in forest.estimators_ for t, f in zip(est.tree_.threshold, est.tree_.feature) if f == 0]
    edge = np.repeat(X[:1], 3 * len(thresholds), axis=0)
    edge[:, 0] = np.concatenate([thresholds, np.nextafter(thresholds, -np.inf), np.nextafter(thresholds, np.inf)])
    rows = np.vstack([X, edge])
    want = 0.7 * forest.predict_proba(rows)[:, 1] + 0.3 * clf.predict_proba(rows)[:, 1]
    got = np.array([fast.score(list(row)) for row in rows])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_float64_bound_matches_float32_comparison():
    rng = np.random.default_rng(1)
    for t in np.concatenate([rng.normal(size=2000) * 100, rng.normal(size=200) * 1e-30, [0.0, 1.0, -2.0, 0.1]]):
        b = _float64_bound(float(t))
        assert np.float64(np.float32(b)) <= t
        assert not np.float64(np.float32(np.nextafter(b, np.inf))) <= t


def test_fast_path_after_save_load_and_rebinding(fitted, tmp_path):
    clf, forest, X, names = fitted
    save_model(model_spec(names, clf, forest, 0.5), {"note": "test"}, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())  # plain JSON: no code on load
    assert spec["format"] == "fraudstream-trees/2"
    fast = load_model(tmp_path / "m", served=False)  # its features are made-up names
    # The detector puts features in its own order: bind() re-points the trees.
    order = list(reversed(names)) + ["unused"]
    fast.bind({n: i for i, n in enumerate(order)})
    want = 0.5 * forest.predict_proba(X[:500])[:, 1] + 0.5 * clf.predict_proba(X[:500])[:, 1]
    got = [fast.score([row[names.index(n)] if n in names else 0.0 for n in order]) for row in X[:500]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_shipped_default_model_loads():
    from fraud.settings.pipeline import DEFAULT_MODEL

    model = load_model(DEFAULT_MODEL)
    assert model.features and 0 < model.thresholds["review"] <= model.thresholds["block"] < 1
    assert 0.0 <= model.score([0.0] * len(model.features)) <= 1.0


def test_boosted_only_v1_model_files_still_load(fitted):
    clf, _, X, names = fitted
    spec = model_spec(names, clf)
    v1 = {
        "format": "fraudstream-gbt/1",
        "features": names,
        "baseline": spec["boosted"]["baseline"],
        "trees": spec["boosted"]["trees"],
        "thresholds": {"review": 0.1, "block": 0.5},
    }
    fast = FastModel(v1)
    np.testing.assert_allclose(
        [fast.score(list(r)) for r in X[:200]], clf.predict_proba(X[:200])[:, 1], rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("forest_weight", [0.0, 0.7])
def test_scoring_rows_together_is_bitwise_equal_to_one_by_one(fitted, forest_weight):
    """What a Kafka batch uses (`score_rows`) gives exactly the floats of `score`, after rebinding,
    on rows with missing values and rows sitting on split points, whatever the batch size."""
    clf, forest, X, names = fitted
    fast = FastModel(model_spec(names, clf, forest if forest_weight else None, forest_weight))
    order = ["unused"] + list(reversed(names))
    fast.bind({n: i for i, n in enumerate(order)})
    thresholds = [t for est in forest.estimators_ for t, f in zip(est.tree_.threshold, est.tree_.feature) if f == 0]
    edge = np.repeat(X[:1], 2 * len(thresholds), axis=0)
    edge[:, 0] = np.concatenate([thresholds, np.nextafter(thresholds, np.inf)])
    rows = np.vstack([X, edge])
    R = np.column_stack([np.full(len(rows), 7.0)] + [rows[:, names.index(n)] for n in order[1:]])
    want = [fast.score(list(r)) for r in R]
    assert fast.score_rows(R) == want
    assert fast.score_rows(R[:1]) == want[:1]
    assert sum((fast.score_rows(R[i : i + 37]) for i in range(0, len(R), 37)), []) == want


def test_shipped_model_scores_rows_as_one_by_one():
    from fraud.settings.pipeline import DEFAULT_MODEL

    model = load_model(DEFAULT_MODEL)
    rng = np.random.default_rng(3)
    R = rng.lognormal(size=(300, len(model.features))) * rng.choice(
        [0.0, 1.0, 10.0, 1000.0], size=(300, len(model.features))
    )
    R[rng.random(R.shape) < 0.2] = np.nan
    assert model.score_rows(R) == [model.score(list(r)) for r in R]


def _walked(fast: FastModel) -> FastModel:
    """The same model with its boosted trees walked node by node instead of scored as bit vectors."""
    from fraud.scoring import bitvector_trees

    walked = FastModel(fast.spec)
    walked.trees = (walked.nodes, walked.roots, *bitvector_trees.empty())
    return walked


@pytest.mark.parametrize("leaves", [2, 15, 64])
def test_bit_vectors_give_the_walks_floats(leaves):
    """QuickScorer's exit leaves are the walk's, on missing values and on values equal to split
    points (ties go left), for trees from a stump up to the 64 leaves a word holds."""
    rng = np.random.default_rng(leaves)
    n = 3000
    X = np.round(rng.normal(size=(n, 5)), 1)  # many values equal to thresholds
    X[rng.random((n, 5)) < 0.2] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 - 1))).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=leaves, random_state=0).fit(X, y)
    fast = FastModel(model_spec([f"f{i}" for i in range(5)], clf))
    assert fast.trees[4].shape[0] == len(fast._boosted)  # scored as bit vectors
    assert fast.score_rows(X) == _walked(fast).score_rows(X)
    np.testing.assert_allclose(fast.score_rows(X), clf.predict_proba(X)[:, 1], rtol=1e-12, atol=1e-15)


def test_trees_wider_than_a_word_are_walked():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 4))
    y = (rng.random(4000) < 1 / (1 + np.exp(-X[:, 0] * X[:, 1]))).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=100, min_samples_leaf=5, random_state=0).fit(X, y)
    fast = FastModel(model_spec([f"f{i}" for i in range(4)], clf))
    assert max(len(t[0]) for t in fast._boosted) > 2 * 64  # more than 64 leaves
    assert fast.trees[4].shape[0] == 0  # no bit vectors: walked
    np.testing.assert_allclose(fast.score_rows(X), clf.predict_proba(X)[:, 1], rtol=1e-12, atol=1e-15)
