"""Training that cannot silently degenerate: each guard prevents the failure or reports it.

- frauds dealt evenly over worker partitions (no single-class partition while frauds suffice);
- fewer frauds than partitions: flagged;
- an early-stopping period without frauds: early stopping off, flagged, all rows trained on;
- early stopping at round 1: flagged;
- a test fold without frauds: left out of the means and flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_train import PARAMS, conf, make_frame, to_dask


def _kinds(model) -> list[str]:
    return [w["kind"] for w in model.info.get("warnings", [])]


def test_frauds_are_dealt_evenly_over_worker_partitions(client):
    from fraud_dask.train.balance import balance_stratified

    pdf = make_frame(4000, seed=1)
    # every fraud in the last tenth of the rows (as a late, short fraud burst would be)
    pdf["is_fraud"] = np.int8(0)
    pdf.loc[pdf.index[-40:], "is_fraud"] = np.int8(1)
    frame = to_dask(pdf, npartitions=6)
    out, sizes, frauds = balance_stratified(client, frame, "is_fraud", parts_per_worker=2)
    parts = [p.compute() for p in out.to_delayed()]
    n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
    assert len(parts) == 2 * n_workers
    assert [len(p) for p in parts] == sizes
    assert max(sizes) - min(sizes) <= 1
    got = [int(p["is_fraud"].sum()) for p in parts]
    assert got == frauds and sum(got) == 40 and max(got) - min(got) <= 1
    # no row lost or repeated
    together = pd.concat(parts).sort_values("tx_id")
    assert together["tx_id"].tolist() == pdf["tx_id"].tolist()
    pd.testing.assert_frame_equal(
        together.reset_index(drop=True),
        pdf.reset_index(drop=True),
        check_like=True,
        check_dtype=False,  # dask holds text as pyarrow strings
    )


def test_fewer_frauds_than_partitions_is_flagged(client):
    from fraud_dask.train import train

    pdf = make_frame(3000, seed=2)
    pdf["is_fraud"] = np.int8(0)
    pdf.loc[pdf.index[100], "is_fraud"] = np.int8(1)
    model = train(client, to_dask(pdf, 3), None, conf(num_boost_round=3), "cpu")
    assert "single_class_partition" in _kinds(model)
    message = next(w["message"] for w in model.info["warnings"])
    assert "1 frauds" in message


def test_early_stopping_period_without_frauds_trains_all_rounds_on_every_row(client):
    from fraud_dask.train import train

    pdf = make_frame(6000, seed=3)
    fit, valid = pdf.iloc[:4000], pdf.iloc[4000:].assign(is_fraud=np.int8(0))
    model = train(
        client,
        to_dask(fit, 3),
        to_dask(valid, 2),
        conf(num_boost_round=12, early_stopping_rounds=5, params=PARAMS | {"eval_metric": "aucpr"}),
        "cpu",
    )
    assert "validation_frauds" in _kinds(model)
    assert model.booster.num_boosted_rounds() == 12
    assert model.info["rows"] == 6000  # the period without frauds was not thrown away
    assert model.info["frauds"] == int(fit["is_fraud"].sum())


def test_best_round_1_is_flagged(client):
    from fraud_dask.train import train

    pdf = make_frame(8000, seed=4)
    fit, valid = pdf.iloc[:6000], pdf.iloc[6000:].copy()
    # the later period's labels run against everything the model learns
    score = valid["amount"] * 0.012 + valid["risk"] * 3 + valid["n_tx"] * 0.05
    valid["is_fraud"] = (score < score.quantile(0.05)).astype("int8")
    model = train(
        client,
        to_dask(fit, 3),
        to_dask(valid, 2),
        conf(num_boost_round=30, early_stopping_rounds=5, params=PARAMS | {"eval_metric": "aucpr"}),
        "cpu",
    )
    assert model.best_iteration == 0
    assert "best_round_1" in _kinds(model)
    assert "single tree" in next(
        w["message"] for w in model.info["warnings"] if w["kind"] == "best_round_1"
    )


def test_test_fold_without_frauds_is_left_out_of_the_means_and_flagged(client):
    import dask.dataframe as dd

    from fraud_dask.metrics import evaluate
    from fraud_dask.train.evaluate import aggregate, fold_warnings

    rng = np.random.default_rng(5)

    def scored(n: int, frauds: int) -> dd.DataFrame:
        y = np.zeros(n, dtype="int8")
        y[:frauds] = 1
        pdf = pd.DataFrame(
            {
                "ts": pd.Timestamp("2024-01-01", tz="UTC")
                + pd.to_timedelta(rng.uniform(0, 86400 * 7, n), unit="s"),
                "card_id": rng.integers(0, 100, n),
                "amount": rng.gamma(2, 30, n),
                "is_fraud": y,
                "score": rng.uniform(size=n) + y * 0.5,
            }
        )
        return dd.from_pandas(pdf, npartitions=2)

    per_fold = {
        "test-0": evaluate(scored(2000, 40), by_day=False, by_client=False, curves=False),
        "test-1": evaluate(scored(2000, 0), by_day=False, by_client=False, curves=False),
        "test-2": evaluate(scored(2000, 8), by_day=False, by_client=False, curves=False),
    }
    agg = aggregate(per_fold)
    aps = [per_fold["test-0"]["average_precision"], per_fold["test-2"]["average_precision"]]
    assert agg["average_precision"] == np.mean(aps)
    assert agg["average_precision_folds"] == 2
    warnings = fold_warnings(per_fold, min_frauds=30)
    assert [(w["fold"], w["kind"]) for w in warnings] == [
        ("test-1", "test_frauds"),
        ("test-2", "test_frauds"),
    ]
    assert "no fraud" in warnings[0]["message"] and "left out" in warnings[0]["message"]
    assert "8 frauds" in warnings[1]["message"]
