"""TreeShap (numba path-dependent TreeSHAP) against XGBoost's own pred_contribs, on real models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fraud_dask.score.treeshap import TreeShap, _parse_number

TOL = {"rtol": 1e-5, "atol": 1e-5}
BASE = {"objective": "binary:logistic", "tree_method": "hist", "nthread": 1}


def _numeric(n: int, n_features: int, seed: int, nan: float = 0.1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    x[rng.random(x.shape) < nan] = np.nan
    filled = np.nan_to_num(x)
    logit = filled[:, :6] @ np.linspace(1.5, 0.3, 6) + filled[:, 6] * filled[:, 7]
    y = (logit + rng.normal(size=n) > 0.3).astype(int)
    return x, y


def _check(ts: TreeShap, booster: xgb.Booster, x, dmatrix: xgb.DMatrix, **predict) -> None:
    """Contributions, margin and their sum against XGBoost on the same rows."""
    expected = booster.predict(dmatrix, pred_contribs=True, **predict)
    margin = booster.predict(dmatrix, output_margin=True, **predict)
    got = ts.contributions(x)
    assert got.shape == expected.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, **TOL)
    np.testing.assert_allclose(got.sum(axis=1), margin, **TOL)
    np.testing.assert_allclose(ts.margin(x), margin, **TOL)
    np.testing.assert_allclose(got[:, -1], ts.expected_value, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def numeric():
    x, y = _numeric(3000, 12, seed=0)
    booster = xgb.train({**BASE, "max_depth": 5}, xgb.DMatrix(x[:2500], y[:2500]), 30)
    held_out = x[2500:].copy()
    held_out[:5] = np.nan  # all-missing rows go the default way everywhere
    return booster, held_out


def test_numerical_with_missing_matches_xgboost(numeric):
    booster, x = numeric
    ts = TreeShap(booster)
    assert ts.n_features == 12 and ts.n_trees == 30 and ts.max_depth == 5
    _check(ts, booster, x, xgb.DMatrix(x))
    # float32 input, and a 1-D row
    np.testing.assert_allclose(
        ts.contributions(x.astype(np.float32)), ts.contributions(x), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(ts.contributions(x[7]), ts.contributions(x[7:8]), rtol=0, atol=0)
    assert ts.contributions(x[:0]).shape == (0, 13)


def test_values_at_float32_thresholds_route_like_xgboost(numeric):
    """float64 values just below a float32 threshold round onto it: XGBoost goes right."""
    booster, x = numeric
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    rows = np.tile(x[10], (40, 1))
    for i, tree in enumerate(trees[:40]):
        f, thr = tree["split_indices"][0], np.float32(tree["split_conditions"][0])
        rows[i, f] = np.nextafter(np.float64(thr), -np.inf)  # == thr once in float32
    assert np.any(rows != rows.astype(np.float32).astype(np.float64))
    _check(TreeShap(booster), booster, rows, xgb.DMatrix(rows))


CAT_A = pd.CategoricalDtype(list(range(14)))  # 12 and 13 never occur in training
CAT_B = pd.CategoricalDtype(["x", "y", "z", "w", "v"])


def _categorical_frame(n: int, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 12, n)
    b = rng.integers(0, 5, n)
    num = rng.normal(size=(n, 3))
    frame = pd.DataFrame(
        {
            "a": pd.Categorical(a, dtype=CAT_A),
            "n0": num[:, 0],
            "b": pd.Categorical(np.array(list("xyzwv"))[b], dtype=CAT_B),
            "n1": num[:, 1],
            "n2": num[:, 2],
        }
    )
    frame.loc[rng.random(n) < 0.05, "a"] = np.nan
    frame.loc[rng.random(n) < 0.05, "n0"] = np.nan
    logit = 1.5 * np.isin(a, [1, 4, 7, 9]) - 1.0 * (b == 2) + num[:, 0] + 0.5 * num[:, 1]
    y = (logit + rng.normal(size=n) > 0.5).astype(int)
    return frame, y


def _codes(frame: pd.DataFrame) -> np.ndarray:
    """Category codes (NaN for missing) and numbers, as TreeShap takes them."""
    cols = []
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy(np.float64)
            cols.append(np.where(codes < 0, np.nan, codes))
        else:
            cols.append(col.to_numpy(np.float64))
    return np.column_stack(cols)


@pytest.fixture(scope="module")
def categorical_data():
    frame, y = _categorical_frame(3000, seed=1)
    test = frame.iloc[2500:].reset_index(drop=True).copy()
    # unseen categories, missing categories, an all-missing row
    test.loc[:9, "a"] = [12, 13, 12, np.nan, 0, 5, 13, np.nan, 11, 3]
    test.loc[0:4, "b"] = np.nan
    test.loc[20, :] = np.nan
    return frame.iloc[:2500], y[:2500], test


@pytest.mark.parametrize("max_cat_to_onehot", [1, 64], ids=["partition", "one-hot"])
def test_categorical_splits_match_xgboost(categorical_data, max_cat_to_onehot):
    train, y, test = categorical_data
    params = {**BASE, "max_depth": 4, "max_cat_to_onehot": max_cat_to_onehot}
    booster = xgb.train(params, xgb.DMatrix(train, y, enable_categorical=True), 30)
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    sizes = [size for tree in trees for size in tree["categories_sizes"]]
    assert sizes, "no categorical split was learnt"
    if max_cat_to_onehot == 1:
        assert max(sizes) > 1  # partition splits
    else:
        assert max(sizes) == 1  # one-hot style: one category against the rest
    ts = TreeShap(booster)
    _check(ts, booster, _codes(test), xgb.DMatrix(test, enable_categorical=True))

    # raw codes, including ones outside the dtype, negative and fractional values
    x = _codes(test)
    x[:4, 0] = [40.0, -3.0, 2.7, 1e9]
    x[4, 2] = 17.0
    names = list(test.columns)
    dm = xgb.DMatrix(
        x, feature_names=names, feature_types=["c", "q", "c", "q", "q"], enable_categorical=True
    )
    _check(ts, booster, x, dm)


def test_category_in_the_set_goes_right(categorical_data):
    """A stump on a categorical feature: categories in the node's set get the right leaf."""
    train, y, _ = categorical_data
    only_a = train[["a"]]
    params = {**BASE, "max_depth": 1, "max_cat_to_onehot": 1}
    booster = xgb.train(params, xgb.DMatrix(only_a, y, enable_categorical=True), 1)
    tree = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"][0]
    assert tree["split_type"][0] == 1
    in_set = set(tree["categories"])
    left_value = tree["split_conditions"][tree["left_children"][0]]
    right_value = tree["split_conditions"][tree["right_children"][0]]
    codes = np.arange(14, dtype=np.float64)[:, None]
    ts = TreeShap(booster)
    leaf = ts.margin(codes) - ts.base_margin
    for code, value in zip(range(14), leaf, strict=True):
        want = right_value if code in in_set else left_value
        assert value == pytest.approx(want, abs=1e-6), code
    dm = xgb.DMatrix(codes, feature_names=["a"], feature_types=["c"], enable_categorical=True)
    np.testing.assert_allclose(ts.margin(codes), booster.predict(dm, output_margin=True), **TOL)


def test_early_stopping_iteration_range():
    x, y = _numeric(3000, 10, seed=2, nan=0.05)
    y = np.where(np.random.default_rng(3).random(y.size) < 0.1, 1 - y, y)  # noisy labels
    dtrain, dvalid = xgb.DMatrix(x[:1500], y[:1500]), xgb.DMatrix(x[1500:2500], y[1500:2500])
    booster = xgb.train(
        {**BASE, "max_depth": 6, "eta": 0.3},
        dtrain,
        num_boost_round=50,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=3,
        verbose_eval=False,
    )
    assert 3 < booster.best_iteration + 1 < booster.num_boosted_rounds()
    best = (0, booster.best_iteration + 1)
    test = x[2500:]
    ts = TreeShap(booster, iteration_range=best)
    assert ts.n_trees == booster.best_iteration + 1
    _check(ts, booster, test, xgb.DMatrix(test), iteration_range=best)
    # all rounds differ from the best ones
    full = TreeShap(booster, iteration_range=(0, 0))
    assert full.n_trees == booster.num_boosted_rounds()
    assert not np.allclose(full.contributions(test), ts.contributions(test))
    # a range not starting at 0 is the sliced model (pred_contribs refuses such ranges)
    _check(TreeShap(booster, iteration_range=(1, 3)), booster[1:3], test, xgb.DMatrix(test))


def test_scale_pos_weight_and_base_score():
    x, y = _numeric(2000, 10, seed=4)
    params = {**BASE, "max_depth": 4, "scale_pos_weight": 5.0, "base_score": 0.2}
    booster = xgb.train(params, xgb.DMatrix(x[:1500], y[:1500]), 20)
    stored = json.loads(booster.save_raw("json"))["learner"]["learner_model_param"]
    assert _parse_number(stored["base_score"]) == pytest.approx(0.2)
    ts = TreeShap(booster)
    assert ts.base_margin == pytest.approx(np.log(0.2 / 0.8))
    _check(ts, booster, x[1500:], xgb.DMatrix(x[1500:]))


def test_deep_trees_and_stumps():
    """Leaves with more than 8 distinct path features; trees that are a single leaf."""
    x, y = _numeric(2000, 20, seed=5)
    deep = xgb.train(
        {**BASE, "max_depth": 11, "min_child_weight": 0.2}, xgb.DMatrix(x[:1600], y[:1600]), 4
    )
    ts = TreeShap(deep)
    assert np.diff(ts._feat_ptr).max() > 8
    assert set(np.diff(ts._feat_ptr)) & {7, 8}
    _check(ts, deep, x[1600:], xgb.DMatrix(x[1600:]))

    stumps = xgb.train({**BASE, "gamma": 1e9}, xgb.DMatrix(x[:1600], y[:1600]), 3)
    ts = TreeShap(stumps)
    assert ts.max_depth == 0
    _check(ts, stumps, x[1600:], xgb.DMatrix(x[1600:]))


@pytest.mark.parametrize(
    "objective",
    ["binary:logitraw", "reg:logistic", "reg:squarederror", "count:poisson", "reg:absoluteerror"],
)
def test_other_objectives_base_margin(objective):
    x, y = _numeric(1500, 8, seed=6)
    target = np.nan_to_num(x[:, 0]) + y if objective.startswith("reg:sq") else y
    if objective == "reg:absoluteerror":
        target = np.nan_to_num(x[:, 1]) * 3 + 1
    booster = xgb.train(
        {**BASE, "objective": objective, "max_depth": 3}, xgb.DMatrix(x[:1200], target[:1200]), 5
    )
    _check(TreeShap(booster), booster, x[1200:], xgb.DMatrix(x[1200:]))


def test_random_forest_rounds():
    x, y = _numeric(1500, 8, seed=7)
    params = {**BASE, "max_depth": 3, "num_parallel_tree": 3, "subsample": 0.7}
    booster = xgb.train(params, xgb.DMatrix(x[:1200], y[:1200]), 4)
    ts = TreeShap(booster, iteration_range=(0, 2))
    assert ts.n_trees == 6
    _check(ts, booster, x[1200:], xgb.DMatrix(x[1200:]), iteration_range=(0, 2))


@pytest.mark.parametrize(
    "params, labels",
    [
        ({"booster": "gblinear"}, 2),
        ({"booster": "dart"}, 2),
        ({"objective": "multi:softprob", "num_class": 3}, 3),
        ({"objective": "reg:quantileerror", "quantile_alpha": np.array([0.2, 0.8])}, 0),
    ],
    ids=["gblinear", "dart", "multiclass", "multi-quantile"],
)
def test_unsupported_models_are_rejected(params, labels):
    x, y = _numeric(300, 8, seed=8)
    target = np.random.default_rng(9).integers(0, labels, y.size) if labels else x[:, 0]
    params = {**BASE, **params}
    if params.get("booster") == "gblinear":
        del params["tree_method"]
    booster = xgb.train(params, xgb.DMatrix(x, np.nan_to_num(target)), 2)
    with pytest.raises(ValueError, match="TreeShap supports"):
        TreeShap(booster)


def test_bad_inputs_are_rejected(numeric):
    booster, x = numeric
    with pytest.raises(ValueError, match="outside the model's 30 rounds"):
        TreeShap(booster, iteration_range=(0, 31))
    with pytest.raises(ValueError, match="outside"):
        TreeShap(booster, iteration_range=(5, 3))
    ts = TreeShap(booster)
    with pytest.raises(ValueError, match=r"\(rows, 12\)"):
        ts.contributions(x[:, :11])
    with pytest.raises(ValueError, match=r"\(rows, 12\)"):
        ts.margin(x[None])


@pytest.mark.parametrize(
    "text, value", [("5E-1", 0.5), ("[5E-1]", 0.5), ("[2.5E-1]", 0.25), (0.7, 0.7), ("1", 1.0)]
)
def test_parse_base_score(text, value):
    assert _parse_number(text) == value


def test_parse_base_score_vector_is_rejected():
    with pytest.raises(ValueError, match="single-output"):
        _parse_number("[1E-1,2E-1]")
