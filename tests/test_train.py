"""Distributed training against single-node XGBoost and scikit-learn on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_dask.train import Model, ModelConf, feature_columns, train
from fraud_dask.train.encode import encode_partition

CATS = ["food", "fuel", "games", "travel"]


def make_frame(n: int = 12_000, seed: int = 0, days: int = 10) -> pd.DataFrame:
    """Transactions whose fraud odds depend on amount, two counters and a category."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, days * 86400, n)), unit="s"
    )
    amount = np.round(rng.gamma(2.0, 40.0, n))  # integer amounts: few distinct values
    n_tx = rng.integers(0, 30, n).astype(float)
    risk = rng.integers(0, 20, n) / 20.0
    noise = rng.integers(0, 50, n).astype(float)
    category = rng.choice(CATS, n)
    logit = -5.0 + 0.012 * amount + 0.05 * n_tx + 3.0 * risk + 1.5 * (category == "games")
    is_fraud = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": ts,
            "card_id": rng.integers(0, 500, n).astype("int64"),
            "terminal_id": rng.integers(0, 300, n).astype("int64"),
            "amount": amount,
            "n_tx": n_tx,
            "risk": risk,
            "noise": noise,
            "category": pd.array(category, dtype="str"),
            "is_fraud": is_fraud,
            "label_ts": ts + pd.Timedelta(days=7),
        }
    )


def to_dask(pdf: pd.DataFrame, npartitions: int = 5):
    import dask.dataframe as dd

    return dd.from_pandas(pdf, npartitions=npartitions, sort=False)


PARAMS = {"max_depth": 4, "learning_rate": 0.3, "max_bin": 64, "eval_metric": "logloss"}


def conf(**kw) -> ModelConf:
    base = dict(params=dict(PARAMS), num_boost_round=20, early_stopping_rounds=None, refit=False)
    return ModelConf(**(base | kw))


def check_train(client, device: str) -> None:
    """Distributed hist on 2 workers equals single-node hist on the same matrix."""
    import xgboost as xgb

    pdf = make_frame()
    c = conf(categorical=["category"], categories={"category": CATS})
    model = train(client, to_dask(pdf, 7), None, c, device, seed=3)
    assert model.kind == "xgboost" and model.device == device
    assert model.columns == ["amount", "n_tx", "risk", "noise", "category"]
    assert model.best_iteration == 19

    scored = model.score(to_dask(pdf, 3)).compute().sort_values("tx_id")
    assert len(scored) == len(pdf)

    x = encode_partition(pdf, model.columns, {"category": CATS})
    params = {"objective": "binary:logistic", "tree_method": "hist", "seed": 3, "device": device}
    params |= {k: v for k, v in PARAMS.items()} | {"max_cat_to_onehot": 1}
    dm = xgb.QuantileDMatrix(
        x, pdf["is_fraud"], max_bin=64, feature_types=["q"] * 4 + ["c"], enable_categorical=True
    )
    single = xgb.train(params, dm, num_boost_round=20)
    expected = single.predict(
        xgb.DMatrix(x, feature_types=["q"] * 4 + ["c"], enable_categorical=True)
    )
    # Every input has fewer distinct values than max_bin, so both sketches are exact.
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, atol=1e-5)
    ap = average_precision_score(pdf["is_fraud"], scored["score"])
    assert ap == pytest.approx(average_precision_score(pdf["is_fraud"], expected), abs=1e-6)
    assert ap > 2 * pdf["is_fraud"].mean()  # the model learned something real


def test_train_cpu(client):
    check_train(client, "cpu")


@pytest.mark.gpu
def test_train_gpu(client):
    from fraud_dask.cluster import resolve_device

    if resolve_device(client, "auto") != "cuda":
        pytest.skip("the workers have no CUDA device")
    check_train(client, "cuda")


def test_continuous_inputs_match_single_node_closely(client):
    import xgboost as xgb

    pdf = make_frame(seed=5)
    pdf["amount"] = pdf["amount"] + np.random.default_rng(1).uniform(0, 1, len(pdf))
    params = PARAMS | {"max_bin": 256}
    model = train(client, to_dask(pdf, 4), None, conf(params=params), "cpu")
    got = model.score(to_dask(pdf, 2)).compute()["score"].to_numpy()
    x = encode_partition(pdf, model.columns, {})
    single = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist"} | params,
        xgb.QuantileDMatrix(x, pdf["is_fraud"], max_bin=256),
        num_boost_round=20,
    )
    want = single.predict(xgb.DMatrix(x))
    y = pdf["is_fraud"]
    # Merged quantile sketches differ slightly from one machine's; the models must agree.
    # Measured here: correlation 0.989, AP 0.562 vs 0.565.
    assert np.corrcoef(got, want)[0, 1] > 0.98
    assert average_precision_score(y, got) == pytest.approx(
        average_precision_score(y, want), abs=0.01
    )


@pytest.mark.parametrize("imbalance", ["weights", "scale_pos_weight"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_class_imbalance_matches_single_node_with_the_same_weights(client, imbalance, device):
    """Both ways of weighting the frauds equal single-node XGBoost given the same weights."""
    import xgboost as xgb

    from fraud_dask.cluster import resolve_device

    if device == "cuda" and resolve_device(client, "auto") != "cuda":
        pytest.skip("the workers have no CUDA device")
    pdf = make_frame(seed=4)
    c = conf(categorical=["category"], categories={"category": CATS}, imbalance=imbalance)
    model = train(client, to_dask(pdf, 6), None, c, device, seed=1)
    y = pdf["is_fraud"].to_numpy()
    pos_weight = (y == 0).sum() / (y == 1).sum()
    assert model.info["pos_weight"] == pytest.approx(pos_weight)
    got = model.score(to_dask(pdf, 3)).compute()["score"].to_numpy()

    x = encode_partition(pdf, model.columns, {"category": CATS})
    types = ["q"] * 4 + ["c"]
    params = {"objective": "binary:logistic", "tree_method": "hist", "seed": 1, "device": device}
    params |= PARAMS | {"max_cat_to_onehot": 1}
    weight = None
    if imbalance == "weights":
        weight = np.where(y == 1, pos_weight, 1.0)
    else:
        params["scale_pos_weight"] = pos_weight
    dm = xgb.QuantileDMatrix(
        x, y, weight=weight, max_bin=64, feature_types=types, enable_categorical=True
    )
    single = xgb.train(params, dm, num_boost_round=20)
    want = single.predict(xgb.DMatrix(x, feature_types=types, enable_categorical=True))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # balancing the classes pulls the mean score from the fraud rate (0.24) towards 0.5
    assert got.mean() > 1.5 * y.mean()


def test_early_stopping_picks_best_iteration_and_predictions_use_it(client):
    import xgboost as xgb

    pdf = make_frame(n=15_000, seed=2)
    day = pdf["ts"].dt.floor("D")
    last = day.max()
    train_pdf, valid_pdf = (
        pdf[day < last - pd.Timedelta(days=1)],
        pdf[day >= last - pd.Timedelta(days=1)],
    )
    c = conf(
        num_boost_round=400,
        early_stopping_rounds=5,
        params=PARAMS | {"learning_rate": 0.5, "max_depth": 6, "eval_metric": "logloss"},
    )
    model = train(client, to_dask(train_pdf, 3), to_dask(valid_pdf, 2), c, "cpu")
    history = model.info["history"]["valid"]["logloss"]
    best = model.best_iteration
    assert best is not None and best < 400 - 1
    assert model.info["rounds_trained"] == best + 1 + 5
    assert best == int(np.argmin(history))
    assert model.iteration_range == (0, best + 1)

    got = model.score(to_dask(valid_pdf, 2)).compute()["score"].to_numpy()
    dm = xgb.DMatrix(encode_partition(valid_pdf, model.columns, {}))
    at_best = model.booster.predict(dm, iteration_range=(0, best + 1))
    every_round = model.booster.predict(dm, iteration_range=(0, model.info["rounds_trained"]))
    np.testing.assert_allclose(got, at_best, rtol=1e-6)
    assert np.abs(got - every_round).max() > 1e-4


def test_refit_trains_on_the_whole_period_with_the_best_round_count(client):
    pdf = make_frame(n=8_000, seed=4)
    day = pdf["ts"].dt.floor("D")
    cut = day.max()
    c = conf(
        num_boost_round=200,
        early_stopping_rounds=5,
        refit=True,
        params=PARAMS | {"learning_rate": 0.5},
    )
    model = train(client, to_dask(pdf[day < cut]), to_dask(pdf[day >= cut]), c, "cpu")
    stopped = model.info["early_stopping"]
    assert model.info["refit"] is True
    assert model.info["rows"] == len(pdf)
    assert model.info["rounds_trained"] == stopped["rounds_trained"] - 5
    assert model.best_iteration == model.info["rounds_trained"] - 1


def test_categories_are_fixed_and_unseen_values_score_as_missing(client):
    pdf = make_frame(n=6_000, seed=7)
    model = train(client, to_dask(pdf), None, conf(categorical=["category"]), "cpu")
    assert model.categories == {"category": sorted(CATS)}
    assert model.feature_importance()["category"] > 0
    rows = pdf.head(50).copy()
    unseen = rows.assign(category=pd.array(["crypto"] * 50, dtype="str"))
    missing = rows.assign(category=pd.array([None] * 50, dtype="str"))
    np.testing.assert_array_equal(model.predict_partition(unseen), model.predict_partition(missing))
    assert not np.array_equal(model.predict_partition(rows), model.predict_partition(missing))


def test_saved_model_is_ubjson_and_reloads_to_identical_predictions(client, tmp_path):
    import xgboost as xgb

    pdf = make_frame(n=5_000, seed=9)
    model = train(client, to_dask(pdf), None, conf(categorical=["category"]), "cpu")
    written = model.save(str(tmp_path / "model"))
    raw = (tmp_path / "model" / "model.ubj").read_bytes()
    assert written["model"].endswith("model.ubj") and raw[:1] == b"{"  # UBJSON object
    assert not raw.startswith(b"\x80")  # not a pickle
    again = Model.load(str(tmp_path / "model"))
    assert again.columns == model.columns and again.categories == model.categories
    a = model.score(to_dask(pdf, 3)).compute()["score"].to_numpy()
    b = again.score(to_dask(pdf, 2)).compute()["score"].to_numpy()
    np.testing.assert_array_equal(a, b)
    # XGBoost itself reads the file (no fraud_dask needed to use the model).
    plain = xgb.Booster(model_file=str(tmp_path / "model" / "model.ubj"))
    assert plain.num_boosted_rounds() == model.booster.num_boosted_rounds()


def test_balance_spreads_rows_evenly_over_workers(client):
    import dask.dataframe as dd

    from fraud_dask.train.balance import balance

    pdf = make_frame(n=3_001, seed=1)
    lopsided = dd.concat(
        [to_dask(pdf.iloc[:0], 1), to_dask(pdf.iloc[:2900], 1), to_dask(pdf.iloc[2900:], 3)]
    )
    lopsided = lopsided[lopsided["amount"] >= 0]  # a filter keeps empty partitions empty
    out, sizes = balance(client, lopsided, parts_per_worker=2)
    futures = client.futures_of(out)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    assert len(sizes) == 2 * len(workers) and max(sizes) - min(sizes) <= 1
    held = {w: 0 for w in workers}
    assert len(futures) == len(sizes)
    rows = client.gather([client.submit(len, f) for f in futures])
    for future, n in zip(futures, rows, strict=True):
        (where,) = client.who_has(future)[future.key]
        held[where] += n
    assert sorted(rows) == sorted(sizes)
    assert max(held.values()) - min(held.values()) <= 2
    assert min(held.values()) > 0
    got = out.compute()
    want = pdf.astype({"category": got["category"].dtype})  # dask stores text as pyarrow strings
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


@pytest.mark.parametrize("tolerance", [{}, {"tol_per_row": 1e-5}])
def test_logistic_baseline_matches_scikit_learn(client, tmp_path, tolerance):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    pdf = make_frame(n=10_000, seed=11)
    c = conf(kind="logistic", params={"C": 1.0, "max_iter": 200} | tolerance)
    model = train(client, to_dask(pdf, 4), None, c, "cpu")
    assert model.kind == "logistic" and model.columns == ["amount", "n_tx", "risk", "noise"]
    got = model.score(to_dask(pdf, 3)).compute()["score"].to_numpy()
    x = StandardScaler().fit_transform(pdf[model.columns])
    sk = LogisticRegression(C=1.0, max_iter=500).fit(x, pdf["is_fraud"])
    want = sk.predict_proba(x)[:, 1]
    y = pdf["is_fraud"]
    assert roc_auc_score(y, got) == pytest.approx(roc_auc_score(y, want), abs=2e-3)
    np.testing.assert_allclose(model.coef["coef"], sk.coef_.ravel(), rtol=0.05, atol=0.02)
    model.save(str(tmp_path / "lr"))
    again = Model.load(str(tmp_path / "lr"))
    np.testing.assert_array_equal(again.predict_partition(pdf), model.predict_partition(pdf))


def test_logistic_on_sampled_genuine_rows_keeps_ranking_and_calibration(client):
    """Above ``max_rows`` the baseline fits every fraud and a share of the genuine rows; the
    intercept correction keeps its scores probabilities of the whole population."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    pdf = make_frame(n=40_000, seed=12)
    y = pdf["is_fraud"].to_numpy()
    params = {"C": 1.0, "max_iter": 200, "tol_per_row": 1e-6}
    frauds = int(y.sum())
    max_rows = frauds + (len(y) - frauds) // 4
    c = conf(kind="logistic", params=params | {"max_rows": max_rows})
    sampled = train(client, to_dask(pdf, 4), None, c, "cpu")
    rate = sampled.info["genuine_sampled"]
    assert rate == pytest.approx(0.25, abs=1e-3)
    assert sampled.info["frauds"] == frauds  # every fraud kept
    assert abs(sampled.info["rows"] - max_rows) < max_rows * 0.05
    got = sampled.predict_partition(pdf)
    x = StandardScaler().fit_transform(pdf[sampled.columns])
    want = LogisticRegression(C=1.0, max_iter=500).fit(x, y).predict_proba(x)[:, 1]
    assert roc_auc_score(y, got) == pytest.approx(roc_auc_score(y, want), abs=5e-3)
    # calibrated: the mean score is the fraud rate of all rows, not of the sample
    assert got.mean() == pytest.approx(y.mean(), rel=0.1)
    assert got.mean() < frauds / sampled.info["rows"] * 0.8


def test_logistic_tolerance_given_twice_is_an_error(client):
    c = conf(kind="logistic", params={"tol": 1e-4, "tol_per_row": 1e-5})
    with pytest.raises(ValueError, match="tol=0.0001 and tol_per_row=1e-05"):
        train(client, to_dask(make_frame(n=2_000)), None, c, "cpu")


def test_feature_selection_never_takes_identifiers_or_the_label():
    dtypes = make_frame(n=10).dtypes
    assert feature_columns(dtypes, ModelConf()) == ["amount", "n_tx", "risk", "noise"]
    assert feature_columns(dtypes, ModelConf(exclude=["noise"], categorical=["category"])) == [
        "amount",
        "n_tx",
        "risk",
        "category",
    ]
    with pytest.raises(ValueError, match=r"model.features: \['tx_id'\] can never be"):
        feature_columns(dtypes, ModelConf(features=["amount", "tx_id"]))
    with pytest.raises(ValueError, match="not in the frame"):
        feature_columns(dtypes, ModelConf(features=["amount", "velocity"]))
    with pytest.raises(ValueError, match=r"category \(str\)"):
        feature_columns(dtypes, ModelConf(features=["amount", "category"]))


def test_one_class_training_period_is_a_clear_error(client):
    pdf = make_frame(n=2_000).assign(is_fraud=np.int8(0))
    with pytest.raises(ValueError, match="0 fraud"):
        train(client, to_dask(pdf), None, conf(), "cpu")
