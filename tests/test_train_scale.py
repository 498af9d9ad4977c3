"""What keeps training fast at scale, against single-node XGBoost on the same rows: the
early-stopped model kept as it is (``model.refit=false``) and the genuine rows sampled with
weights above ``model.max_rows``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from test_train import PARAMS, conf, make_frame, to_dask

from fraud_dask.train import train
from fraud_dask.train.balance import genuine_rate, sample_genuine
from fraud_dask.train.encode import encode_partition

SINGLE = {"objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1}


def _split(pdf: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    day = pdf["ts"].dt.floor("D")
    last = day.max()
    return pdf[day < last], pdf[day >= last]


def test_kept_early_stopped_model_equals_single_node_with_its_rounds(client):
    """``refit=false``: the model early stopping chose is the model, trained on the rows before
    the early-stopping day only; it equals ``xgboost.train`` with the same parameters and round
    count on those rows, and the early-stopping rows change nothing but the round count."""
    pdf = make_frame(n=10_000, seed=21)
    fit_rows, valid_rows = _split(pdf)
    params = PARAMS | {"learning_rate": 0.5}
    c = conf(num_boost_round=200, early_stopping_rounds=5, refit=False, params=params)
    model = train(client, to_dask(fit_rows, 3), to_dask(valid_rows, 2), c, "cpu", seed=2)
    assert "refit" not in model.info and "early_stopping" not in model.info
    assert model.info["rows"] == len(fit_rows)
    best = model.best_iteration
    assert best is not None and model.info["rounds_trained"] == best + 1 + 5

    x = encode_partition(fit_rows, model.columns, {})
    dm = xgb.QuantileDMatrix(x, fit_rows["is_fraud"], max_bin=params["max_bin"])
    single = xgb.train(SINGLE | params | {"seed": 2}, dm, num_boost_round=best + 1)
    want = single.predict(xgb.DMatrix(encode_partition(pdf, model.columns, {})))
    got = model.score(to_dask(pdf, 2)).compute().sort_values("tx_id")["score"].to_numpy()
    # every input has fewer distinct values than max_bin: both sketches are exact
    np.testing.assert_allclose(got, want, atol=1e-5)

    # the early-stopping rows are watched as a plain DMatrix (predicted 4-6x faster): their
    # metric every round is the one single-node XGBoost gives them as a quantile matrix
    watched: dict = {}
    vx = encode_partition(valid_rows, model.columns, {})
    xgb.train(
        SINGLE | params | {"seed": 2},
        dm,
        num_boost_round=model.info["rounds_trained"],
        evals=[
            (
                xgb.QuantileDMatrix(vx, valid_rows["is_fraud"], ref=dm, max_bin=params["max_bin"]),
                "valid",
            )
        ],
        evals_result=watched,
        verbose_eval=False,
    )
    metric = params.get("eval_metric", "aucpr")
    np.testing.assert_allclose(
        model.info["history"]["valid"][metric], watched["valid"][metric], rtol=1e-6
    )


def test_refit_applies_up_to_refit_max_rows(client):
    """``refit=true`` with ``refit_max_rows``: a training period above it keeps its early-stopped
    model (the same trees as ``refit=false``, and says why); at or below it, the model is
    retrained on the whole period with the best round count."""
    pdf = make_frame(n=6_000, seed=23)
    fit_rows, valid_rows = _split(pdf)
    params = PARAMS | {"learning_rate": 0.5}
    base = dict(num_boost_round=100, early_stopping_rounds=5, params=params)
    fit, valid = to_dask(fit_rows, 2), to_dask(valid_rows, 1)
    kept = train(client, fit, valid, conf(refit=False, **base), "cpu", seed=3)
    over = train(
        client, fit, valid, conf(refit=True, refit_max_rows=len(pdf) - 1, **base), "cpu", seed=3
    )
    assert over.info["refit"] is False and "refit_max_rows" in over.info["refit_skipped"]
    assert over.info["rounds_trained"] == kept.info["rounds_trained"]
    x = encode_partition(pdf, kept.columns, {}).to_numpy()
    np.testing.assert_array_equal(over.predict_matrix(x, None), kept.predict_matrix(x, None))

    at = train(client, fit, valid, conf(refit=True, refit_max_rows=len(pdf), **base), "cpu", seed=3)
    assert at.info["refit"] is True and at.info["rows"] == len(pdf)
    assert at.info["rounds_trained"] == kept.best_iteration + 1


def test_sampled_genuine_rows_with_weights_equal_single_node_on_the_same_rows(client):
    """Above ``max_rows`` every fraud and a share of the genuine rows are fitted, each genuine
    row weighing 1 / share: the same as ``xgboost.train`` on those rows with those weights."""
    pdf = make_frame(n=20_000, seed=22)
    y = pdf["is_fraud"].to_numpy()
    frauds = int(y.sum())
    max_rows = frauds + (len(pdf) - frauds) // 4
    frame = to_dask(pdf, 4)
    model = train(client, frame, None, conf(max_rows=max_rows), "cpu", seed=9)
    rate = genuine_rate(len(pdf), frauds, max_rows)
    assert model.info["genuine_sampled"] == pytest.approx(rate) == pytest.approx(0.25, abs=1e-3)
    assert model.info["rows"] == len(pdf) and model.info["frauds"] == frauds

    # the same draw: each input partition sampled with its number as the stream
    kept = pd.concat(
        [
            sample_genuine(frame.partitions[i].compute(), "is_fraud", rate, 9, {"number": i})
            for i in range(frame.npartitions)
        ]
    )
    assert model.info["rows_fitted"] == len(kept)
    assert int(kept["is_fraud"].sum()) == frauds  # every fraud kept
    assert abs(len(kept) - max_rows) < 0.05 * max_rows
    x = encode_partition(kept, model.columns, {})
    weight = np.where(kept["is_fraud"].to_numpy() == 1, 1.0, 1.0 / rate)
    dm = xgb.QuantileDMatrix(x, kept["is_fraud"], weight=weight, max_bin=PARAMS["max_bin"])
    single = xgb.train(SINGLE | PARAMS | {"seed": 9}, dm, num_boost_round=20)
    want = single.predict(xgb.DMatrix(encode_partition(pdf, model.columns, {})))
    got = model.score(to_dask(pdf, 3)).compute().sort_values("tx_id")["score"].to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the weights keep the scores probabilities of the whole population
    assert got.mean() == pytest.approx(y.mean(), rel=0.15)


def test_no_sampling_at_or_below_max_rows():
    assert genuine_rate(1000, 10, None) == 1.0
    assert genuine_rate(1000, 10, 1000) == 1.0
    assert genuine_rate(1000, 10, 505) == pytest.approx(0.5)
    assert genuine_rate(1000, 600, 500) == pytest.approx(1e-6)  # frauds alone exceed it


def test_baseline_in_one_task_equals_scikit_learn_on_the_same_sample(client):
    """``local_rows``: the baseline's sampled rows are fitted by scikit-learn in one worker task;
    the coefficients are scikit-learn's on the same rows, standardized the same way, and the
    intercept carries the sampling's log(share)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    pdf = make_frame(n=30_000, seed=23)
    y = pdf["is_fraud"].to_numpy()
    frauds = int(y.sum())
    max_rows = frauds + (len(pdf) - frauds) // 3
    frame = to_dask(pdf, 3)
    params = {"C": 0.5, "max_iter": 300, "tol_per_row": 1e-8}
    c = conf(kind="logistic", params=params | {"max_rows": max_rows, "local_rows": 10**6})
    model = train(client, frame, None, c, "cpu", seed=4)
    assert model.info["solver"] == "scikit-learn in one task"
    rate = model.info["genuine_sampled"]
    assert rate == pytest.approx(genuine_rate(len(pdf), frauds, max_rows))

    kept = pd.concat(
        [
            sample_genuine(frame.partitions[i].compute(), "is_fraud", rate, 4, {"number": i})
            for i in range(frame.npartitions)
        ]
    )
    assert model.info["rows"] == len(kept) and model.info["frauds"] == frauds
    x = kept[model.columns].to_numpy(dtype=np.float32).astype(np.float64)  # the model matrix
    mean, scale = x.mean(axis=0), x.std(axis=0)
    np.testing.assert_allclose(model.coef["mean"], mean, rtol=1e-9)
    np.testing.assert_allclose(model.coef["scale"], scale, rtol=1e-9)
    sk = LogisticRegression(C=0.5, max_iter=300, tol=1e-8).fit((x - mean) / scale, kept["is_fraud"])
    np.testing.assert_allclose(model.coef["coef"], sk.coef_.ravel(), rtol=1e-4, atol=1e-6)
    assert model.coef["intercept"] == pytest.approx(sk.intercept_[0] + np.log(rate), abs=1e-5)
    got = model.predict_partition(pdf)
    assert roc_auc_score(y, got) > 0.7
    assert got.mean() == pytest.approx(y.mean(), rel=0.1)  # probabilities of all rows


def test_features_held_as_float32_train_the_same_model(client):
    """The persisted feature frame holds its float64 features as float32 (half the memory),
    the canonical source columns as they are: the model matrices are the same bits, so the
    same fit (rounds, trees) and the same scores to the last bit."""
    from fraud_dask.train.frame import model_precision

    pdf = make_frame(n=8_000, seed=5)
    rng = np.random.default_rng(5)
    pdf["ratio"] = rng.lognormal(0.0, 1.0, len(pdf)) / 3.0  # not exact in float32
    pdf.loc[::11, "ratio"] = np.nan
    fit_rows, valid_rows = _split(pdf)
    wide = to_dask(fit_rows, 3)
    narrow = model_precision(wide)
    assert narrow["ratio"].dtype == np.float32 and narrow["n_tx"].dtype == np.float32
    assert narrow["amount"].dtype == np.float64 and narrow["ts"].dtype == pdf["ts"].dtype
    assert narrow["category"].dtype == wide["category"].dtype
    assert narrow["is_fraud"].dtype == np.int8 and narrow["tx_id"].dtype == np.int64

    c = conf(num_boost_round=40, early_stopping_rounds=5, refit=False)
    wide_model = train(client, wide, to_dask(valid_rows, 2), c, "cpu", seed=4)
    narrow_model = train(client, narrow, model_precision(to_dask(valid_rows, 2)), c, "cpu", seed=4)
    assert narrow_model.info["rounds_trained"] == wide_model.info["rounds_trained"]
    x = encode_partition(valid_rows, wide_model.columns, wide_model.categories).to_numpy()
    np.testing.assert_array_equal(
        narrow_model.predict_matrix(x, None), wide_model.predict_matrix(x, None)
    )


def test_fold_periods_are_counted_from_the_day_counts_not_read_again(client):
    """The fold loop notes the rows and frauds of each period it cuts (training, fit and
    early-stopping rows, the rows after training) from the frame's day counts: what the fits
    and the registration are told equals pandas' count of the same rows, and a frame that
    was not noted is still counted."""
    import datetime as dt

    from fraud_dask.split import Fold, select_train
    from fraud_dask.split.folds import select_after_train
    from fraud_dask.train import frame as frames
    from fraud_dask.train.folds import early_stopping_split
    from fraud_dask.train.frame import label_counts, note_period

    pdf = make_frame(n=9_000, seed=31, days=12)
    frame = to_dask(pdf, 4).persist()
    start = dt.date(2024, 1, 1)
    fold = Fold(
        "t0",
        train_start=start + dt.timedelta(days=1),
        train_end=start + dt.timedelta(days=7),
        test_start=start + dt.timedelta(days=9),
        test_end=start + dt.timedelta(days=11),
    )
    rows = select_train(frame, fold)
    after = select_after_train(frame, fold)
    note_period(rows, frame, fold.train_start, fold.train_end)
    note_period(after, frame, fold.train_end + dt.timedelta(days=1), fold.test_end)
    conf_ = {"valid_days": 2, "valid_min_frauds": 0, "valid_max_share": 0.5}
    fit_rows, valid_rows, days = early_stopping_split(frame, rows, fold, conf_, [])
    assert days == 2

    day = pdf["ts"].dt.tz_convert("UTC").dt.date
    y = pdf["is_fraud"]

    def want(first: dt.date, last: dt.date) -> tuple[int, int]:
        inside = (day >= first) & (day <= last)
        return int(inside.sum()), int(y[inside].sum())

    cut = fold.train_end - dt.timedelta(days=1)
    expected = [
        want(fold.train_start, fold.train_end),
        want(fold.train_start, cut - dt.timedelta(days=1)),
        want(cut, fold.train_end),
        want(fold.train_end + dt.timedelta(days=1), fold.test_end),
    ]
    # answered from the day counts: nothing of these four periods is read to count them
    for sel, counts in zip([rows, fit_rows, valid_rows, after], expected, strict=True):
        assert frames._COUNTS[(sel._name, "is_fraud")] == counts
    noted = label_counts([rows, fit_rows, valid_rows, after])
    assert noted == expected
    assert all(n > 0 and f > 0 for n, f in noted)
    # the same answers read from the rows (a frame nobody noted is counted in one compute)
    other = frame[frame["amount"] >= 0]
    counted = label_counts([rows[rows["amount"] >= 0], other])
    assert counted == [expected[0], (len(pdf), int(y.sum()))]
