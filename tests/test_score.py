"""Batch scoring: complete windows from a cut history, scores, SHAP reason codes, task=score."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from omegaconf import OmegaConf
from scoring_world import FEATURES, SCORE_START, build_world

from fraud_dask.registry import Registry
from fraud_dask.score.reasons import reason_catalog, reason_code, top_reasons
from fraud_dask.train.encode import encode_partition


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("score-world"))


def _expected(world, bundle):
    """Scores and SHAP values of the period from features over the WHOLE history (pandas)."""
    feats = world.features
    period = feats[feats["ts"] >= SCORE_START].sort_values("tx_id").reset_index(drop=True)
    model = bundle.model
    matrix = encode_partition(period, model.columns, model.categories)
    dm = xgb.DMatrix(matrix, feature_types=model.booster.feature_types, enable_categorical=True)
    score = model.booster.predict(dm, iteration_range=model.iteration_range)
    shap = model.booster.predict(dm, pred_contribs=True, iteration_range=model.iteration_range)
    return period, score, shap


def test_score_period_matches_full_history_features(world, client):
    from fraud_dask.score.batch import load_period, score_period

    reg = Registry(world.registry)
    bundle = reg.load("fraud")
    frame, cut = load_period(world.data, FEATURES, SCORE_START)
    # the plan's horizon is 14 days (risk 7d + 7d delay, 14d windows): the history is cut
    assert cut == SCORE_START - pd.Timedelta(days=14)
    n_read = int(frame.map_partitions(len).sum().compute())
    assert n_read < len(world.features)

    scored, _ = score_period(world.data, bundle, SCORE_START, top=3, threshold=0.5)
    got = scored.compute().sort_values("tx_id").reset_index(drop=True)
    period, score, shap = _expected(world, bundle)
    assert len(got) == len(period) > 0
    np.testing.assert_array_equal(got["tx_id"].to_numpy(), period["tx_id"].to_numpy())
    # same features from a cut history => the same float32 scores, bit for bit
    np.testing.assert_array_equal(got["score"].to_numpy(), score)
    assert (got["alert"] == (got["score"] >= np.float32(0.5))).all()
    assert (got["model_version"] == bundle.version).all()

    # SHAP additivity: contributions + bias are the logit of the score
    logit = np.log(score.astype(np.float64) / (1 - score.astype(np.float64)))
    np.testing.assert_allclose(shap.sum(axis=1), logit, rtol=1e-4, atol=1e-4)
    # reason 1..3: the inputs with the largest positive SHAP values, by a plain loop
    codes = [reason_code(c) for c in bundle.model.columns]
    for i in range(0, len(period), max(1, len(period) // 50)):
        contrib = shap[i, :-1]
        ranked = [codes[j] for j in np.argsort(-contrib, kind="stable") if contrib[j] > 0][:3]
        ranked += [None] * (3 - len(ranked))
        row = got.iloc[i]
        assert [None if pd.isna(row[f"reason_{k}"]) else row[f"reason_{k}"] for k in (1, 2, 3)] == (
            ranked
        )


def test_scoring_in_row_chunks_changes_nothing(world, client):
    """A partition scored a few rows at a time (bounded memory) gives XGBoost's own answer."""
    import dask.dataframe as dd

    from fraud_dask.score.batch import score_features

    bundle = Registry(world.registry).load("fraud")
    period, score, shap = _expected(world, bundle)
    frame = dd.from_pandas(period, npartitions=3)
    whole = score_features(frame, bundle.model, top=3, chunk_rows=len(period)).compute()
    # 97 rows per chunk: the last chunk of each partition is a short one
    chunked = score_features(frame, bundle.model, top=3, chunk_rows=97).compute()
    pd.testing.assert_frame_equal(chunked, whole)
    got = chunked.sort_values("tx_id").reset_index(drop=True)
    np.testing.assert_array_equal(got["tx_id"].to_numpy(), period["tx_id"].to_numpy())
    np.testing.assert_array_equal(got["score"].to_numpy(), score)
    codes = [reason_code(c) for c in bundle.model.columns]
    for i in range(0, len(period), max(1, len(period) // 50)):
        contrib = shap[i, :-1]
        ranked = [codes[j] for j in np.argsort(-contrib, kind="stable") if contrib[j] > 0][:3]
        ranked += [None] * (3 - len(ranked))
        reasons = [got.at[i, f"reason_{k}"] for k in (1, 2, 3)]
        assert [None if pd.isna(r) else r for r in reasons] == ranked
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        score_features(frame, bundle.model, chunk_rows=0)


def test_exact_recency_reads_the_last_row_before_the_history(client, tmp_path):
    """A card silent for 40 days: its time-since-previous needs a row far before the horizon."""
    import dask.dataframe as dd

    from fraud_dask.data.io import write_dataset
    from fraud_dask.features.batch import features_frame
    from fraud_dask.score.batch import load_period

    rng = np.random.default_rng(0)
    n = 600
    ts = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 60 * 86400, n)), unit="s"
    )
    df = pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": ts,
            "card_id": rng.integers(0, 20, n).astype("int64"),
            "amount": rng.gamma(2.0, 30.0, n),
            "terminal_id": rng.integers(0, 15, n).astype("int64"),
            "merchant_id": rng.integers(0, 5, n).astype("int64"),
            "device_id": rng.integers(0, 30, n).astype("int64"),
            "ip": rng.integers(0, 40, n).astype(str),
            "is_fraud": (rng.uniform(size=n) < 0.05).astype("int8"),
        }
    )
    silent = (df["card_id"] == 3) & (df["ts"] > "2025-01-10") & (df["ts"] < "2025-02-20")
    df = df[~silent].reset_index(drop=True)
    path = tmp_path / "tx"
    write_dataset(dd.from_pandas(df, npartitions=3), str(path))
    data = {"name": "t", "path": str(path), "format": "parquet", "label_delay_days": 7}
    start = pd.Timestamp("2025-02-20", tz="UTC")

    frame, cut = load_period(data, FEATURES, start)
    history = frame.compute()
    assert cut == start - pd.Timedelta(days=14)
    assert (history["ts"] < cut).sum() > 0  # the last rows of earlier cards and devices

    from fraud_dask.data import load_transactions

    full = load_transactions(data).compute()
    expected = features_frame(full, FEATURES)
    got = features_frame(history, FEATURES)
    exp = expected[expected["ts"] >= start].set_index("tx_id").sort_index()
    got = got[got["ts"] >= start].set_index("tx_id").sort_index()
    gap = exp.loc[exp["card_id"] == 3, "card_id_secs_since_prev"].iloc[0]
    assert gap > 40 * 86400  # the case under test is in the data
    cols = [c for c in exp.columns if c.startswith(("card_id_", "device_id_", "terminal_id_"))]
    np.testing.assert_allclose(got[cols].to_numpy(), exp[cols].to_numpy(), rtol=1e-12, atol=0)

    frame, _ = load_period(data, FEATURES, start, exact_recency=False)
    without = features_frame(frame.compute(), FEATURES)
    without = without[without["ts"] >= start].set_index("tx_id").sort_index()
    assert np.isnan(without.loc[exp["card_id"] == 3, "card_id_secs_since_prev"].iloc[0])


def test_reason_catalog_and_top_reasons():
    catalog = reason_catalog(FEATURES, ["amount", "card_id_count_1h", "terminal_id_risk_7d"])
    assert catalog["card_id_count_1h"] == {
        "code": "CARD_ID_COUNT_1H",
        "description": "number of transactions of the card_id in 1h",
    }
    assert catalog["terminal_id_risk_7d"]["description"].startswith("fraud rate of the terminal")
    assert catalog["amount"]["code"] == "AMOUNT"
    contribs = np.array([[0.5, -1.0, 2.0], [-0.1, -0.2, -0.3], [0.0, 0.3, 0.3]])
    got = top_reasons(contribs, ["A", "B", "C"], 2)
    assert list(got[0]) == ["C", None, "B"]
    assert list(got[1]) == ["A", None, "C"]


def test_score_task_writes_day_partitions(world, client, tmp_path):
    from fraud_dask.data.io import read_dataset
    from fraud_dask.tasks import score as task

    cfg = OmegaConf.create(
        {
            "data": world.data,
            "run_dir": str(tmp_path / "run"),
            "registry": {
                "path": world.registry,
                "name": "fraud",
                "version": "2",
                "storage_options": {},
            },
            "score": {
                "start": None,
                "end": None,
                "output": None,
                "threshold": 0.2,
                "top_reasons": 2,
                "exact_recency": True,
            },
        }
    )
    out = task.run(cfg, client)
    last_day = world.features["ts"].max().floor("D")
    expected = world.features[world.features["ts"] >= last_day]
    assert out["start"] == last_day.isoformat()
    assert out["rows"] == len(expected)
    assert out["model"] == {"name": "fraud", "version": 2}
    days = sorted(p.name for p in (tmp_path / "run" / "scores").iterdir())
    assert days == [f"day={last_day.date().isoformat()}"]
    back = read_dataset(out["output"]).compute()
    assert sorted(back["tx_id"]) == sorted(expected["tx_id"])
    assert {"score", "alert", "reason_1", "reason_2", "model_version"} <= set(back.columns)
    assert int(back["alert"].sum()) == out["alerts"] == int((back["score"] >= 0.2).sum())
    assert not any(c.startswith("card_id_count") for c in back.columns)  # features stay out

    cfg.score.start, cfg.score.end = "2025-01-20", "2025-01-19"
    with pytest.raises(ValueError, match=r"score.end .* must be after score.start"):
        task.run(cfg, client)


def _score_cfg(world, run_dir, registry=None, **score):
    return OmegaConf.create(
        {
            "data": world.data,
            "run_dir": str(run_dir),
            "registry": {
                "path": registry or world.registry,
                "name": "fraud",
                "version": "2",
                "storage_options": {},
            },
            "score": {
                "start": SCORE_START.isoformat(),
                "end": None,
                "output": str(run_dir / "scores"),
                "threshold": 0.2,
                "top_reasons": 2,
                "exact_recency": True,
            }
            | score,
        }
    )


def test_staged_features_round_trip_and_are_removed(world, client, tmp_path):
    """The staged features read back as built (dtypes included); the folder goes on an interrupt."""
    from fraud_dask.data.io import read_dataset
    from fraud_dask.score.batch import CARRY, period_features, staged_features

    bundle = Registry(world.registry).load("fraud")
    lazy, _ = period_features(world.data, bundle.features, SCORE_START)
    columns = list(dict.fromkeys([*(c for c in CARRY if c in lazy.columns), *bundle.model.columns]))
    expected = lazy[columns].compute().sort_values("tx_id").reset_index(drop=True)
    near = str(tmp_path / "out" / "scores")
    with pytest.raises(KeyboardInterrupt):
        with staged_features(world.data, bundle, SCORE_START, near=near) as staged:
            assert staged.path.startswith((tmp_path / "out").as_uri())
            assert [
                p.name.startswith(".scores.features-") for p in (tmp_path / "out").iterdir()
            ] == [True]
            # Parquet itself keeps every dtype: nothing is cast back by _same_dtypes
            raw = read_dataset(staged.path, storage_options=None)
            assert raw._meta.dtypes.to_dict() == lazy[columns]._meta.dtypes.to_dict()
            got = staged.frame.compute().sort_values("tx_id").reset_index(drop=True)
            pd.testing.assert_frame_equal(got, expected)
            assert staged.rows == len(expected) > 0
            assert isinstance(expected["client_id"].dtype, pd.CategoricalDtype | pd.StringDtype)
            raise KeyboardInterrupt  # the caller's block ends badly: the staging still goes
    assert list((tmp_path / "out").iterdir()) == []


def test_score_task_staged_equals_the_lazy_path(world, client, tmp_path):
    """task=score through staged features writes what the one-graph lazy path computes."""
    import pyarrow.parquet as pq

    from fraud_dask.data.io import read_dataset
    from fraud_dask.score.batch import score_period_read
    from fraud_dask.tasks import score as task

    bundle = Registry(world.registry).load("fraud", "2")
    lazy, _ = score_period_read(world.data, bundle, SCORE_START, top=2, threshold=0.2)
    expected = lazy.compute().sort_values("tx_id").reset_index(drop=True)

    staged_dir, direct_dir = tmp_path / "staged", tmp_path / "direct"
    staged = task.run(_score_cfg(world, staged_dir), client)
    direct = task.run(_score_cfg(world, direct_dir, stage_features=False), client)

    back = read_dataset(staged["output"]).compute()
    days = back.pop("day")
    assert (days == back["ts"].dt.strftime("%Y-%m-%d")).all()
    got = back.sort_values("tx_id").reset_index(drop=True)
    # Parquet strings read back as pandas' NA-backed strings (the files' own schema is compared
    # with the one-graph run's below); every other dtype as computed
    text = [c for c in got.columns if isinstance(got[c].dtype, pd.StringDtype)]
    got = got.astype({c: expected[c].dtype for c in text})
    pd.testing.assert_frame_equal(got, expected)  # every column, every row
    assert staged["rows"] == len(expected) > 0
    assert staged["alerts"] == int(expected["alert"].sum()) > 0
    # the same files as the one-graph run: schema and rows
    a, b = pq.read_table(staged["output"]), pq.read_table(direct["output"])
    assert a.schema == b.schema
    assert a.sort_by("tx_id").equals(b.sort_by("tx_id"))
    # the reads' counts, computed with the staging write, are those of the one-graph run
    counts = ("rows_in", "rows_kept", "rows_quarantined", "by_reason", "dedupe", "history_from")
    assert {k: staged[k] for k in counts} == {k: direct[k] for k in counts}
    assert staged["rows_in"] == staged["rows_kept"] + staged["rows_quarantined"] > staged["rows"]
    # nothing but the scores is left beside them
    assert [p.name for p in staged_dir.iterdir()] == ["scores"]


def test_score_task_failure_after_staging_leaves_no_trace(world, client, tmp_path, caplog):
    """A model that cannot score the staged features: the scores stay as they were, no staging.

    Version 2 takes ``client_id`` as a numeric input (no category list), as a model trained
    where client ids were numbers would; the source's ids are text. Staging the features never
    encodes them, so the failure comes from the scoring tasks of the second pass.
    """
    import dataclasses

    from fraud_dask.tasks import score as task

    good = Registry(world.registry).load("fraud")
    assert "client_id" in good.model.categories
    registry = str(tmp_path / "registry")
    mine = Registry(registry)
    for model in (good.model, dataclasses.replace(good.model, categories={})):
        mine.register("fraud", model, features=good.features, config={}, metrics={})

    run_dir = tmp_path / "run"
    cfg = _score_cfg(world, run_dir, registry)
    cfg.registry.version = "1"
    first = task.run(cfg, client)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert first["rows"] > 0 and len(before) > 0

    cfg.registry.version = "2"
    with (
        caplog.at_level(logging.INFO, logger="fraud_dask.score.batch"),
        pytest.raises(ValueError, match="Unable to parse string 'client_"),  # encode_partition
    ):
        task.run(cfg, client)
    assert "rows of features staged in" in caplog.text  # the first pass was written
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # the previous scores, untouched
    assert [p.name for p in run_dir.iterdir()] == ["scores"]  # no staging, no partial write


def test_staged_features_on_an_object_store(world, client, make_bucket):
    """Scores going to S3: the features are staged beside them in the bucket, then removed."""
    import fsspec

    from fraud_dask.score.batch import staged_features

    options = make_bucket("score-staging")
    fs = fsspec.filesystem("s3", **options)
    bundle = Registry(world.registry).load("fraud", "2")
    near = "s3://score-staging/run/scores"
    with staged_features(
        world.data, bundle, SCORE_START, near=near, storage_options=options
    ) as staged:
        assert staged.path.startswith("s3://score-staging/run/.scores.features-")
        assert len(staged.frame.compute()) == staged.rows > 0
        fs.invalidate_cache()
        assert fs.find(staged.path.removeprefix("s3://"))  # the files are in the bucket
    fs.invalidate_cache()
    assert fs.find("score-staging") == []
