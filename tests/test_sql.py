"""SQL over the project's data (DuckDB): views against pandas, tokenized cards, S3, outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import fraud_dask
from fraud_dask.errors import UserError

PAN_A = "4111111111111111"
PAN_B = "5500 0000 0000 0004"
KEY = "sql-test-key"


def _pan_source(root) -> dict:
    """A raw source holding card numbers, a bad amount and a repeated tx_id."""
    root.mkdir(parents=True)
    n = 60
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        {
            "tx_id": np.r_[np.arange(n - 1), 5],  # tx_id 5 twice
            "ts": pd.date_range("2024-03-01", periods=n, freq="3h"),
            "card_number": [PAN_A if i % 3 else PAN_B for i in range(n)],
            "amount": np.where(np.arange(n) == 7, -4.0, rng.gamma(2.0, 30.0, n).round(2)),
            "merchant_id": [f"m{i % 4}" for i in range(n)],
            "category": [("grocery", "travel", "online")[i % 3] for i in range(n)],
            "is_fraud": (rng.random(n) < 0.2).astype("int8"),
        }
    )
    rows.to_parquet(root / "a.parquet", index=False)
    return {
        "name": "cards",
        "path": str(root),
        "columns": {
            "tx_id": "tx_id",
            "ts": "ts",
            "card_number": "card_id",
            "amount": "amount",
            "merchant_id": "merchant_id",
            "category": "category",
            "is_fraud": "is_fraud",
        },
        "pan": {"key": KEY},
    }


def _cfg(tmp_path, data, **sql) -> dict:
    return {"data": data, "run_dir": str(tmp_path / "run"), "sql": sql}


def test_transactions_and_quarantine_views_are_the_validated_tokenized_rows(client, tmp_path):
    from fraud_dask.data import read_transactions

    data = _pan_source(tmp_path / "src")
    query = (
        "SELECT category, count(*) AS n, sum(amount) AS amount, avg(is_fraud) AS rate "
        "FROM transactions GROUP BY category ORDER BY category"
    )
    got = fraud_dask.sql(query, _cfg(tmp_path, data), client=client)
    read = read_transactions(OmegaConf.create(data))
    kept = read.kept.compute()
    expected = (
        kept.groupby("category")
        .agg(n=("amount", "size"), amount=("amount", "sum"), rate=("is_fraud", "mean"))
        .reset_index()
        .sort_values("category")
    )
    assert got["category"].tolist() == expected["category"].astype(str).tolist()
    assert got["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(got["amount"], expected["amount"])
    np.testing.assert_allclose(got["rate"], expected["rate"])

    cards = fraud_dask.sql(
        "SELECT DISTINCT card_id FROM transactions ORDER BY 1", _cfg(tmp_path, data), client=client
    )
    assert sorted(cards["card_id"]) == sorted(kept["card_id"].unique())
    for pan in (PAN_A, PAN_B, PAN_B.replace(" ", "")):
        assert pan not in set(cards["card_id"])
    quarantine = fraud_dask.sql(
        "SELECT reason, count(*) AS n FROM quarantine GROUP BY 1 ORDER BY 1",
        _cfg(tmp_path, data),
        client=client,
    )
    expected_q = read.quarantine.compute()["reason"].astype(str).value_counts().sort_index()
    assert dict(zip(quarantine["reason"], quarantine["n"], strict=True)) == expected_q.to_dict()
    assert set(expected_q.index) == {"negative_amount", "duplicate_tx_id"}
    raw = fraud_dask.sql("SELECT * FROM quarantine", _cfg(tmp_path, data), client=client)
    assert not raw.astype(str).apply(lambda c: c.str.contains(PAN_A)).any().any()


def test_other_views_read_task_outputs_and_results_can_be_written(client, tmp_path):
    from fraud_dask.data import write_dataset

    rng = np.random.default_rng(5)
    scores = pd.DataFrame(
        {
            "tx_id": np.arange(500),
            "ts": pd.Timestamp("2025-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 4 * 86400, 500), unit="s"),
            "client_id": rng.choice(["a", "b"], 500),
            "score": rng.random(500).astype("float32"),
            "is_fraud": (rng.random(500) < 0.1).astype("int8"),
        }
    )
    import dask.dataframe as dd

    write_dataset(dd.from_pandas(scores, npartitions=3), str(tmp_path / "scores"))
    cfg = _cfg(tmp_path, {"path": str(tmp_path / "nowhere")}, scores=str(tmp_path / "scores"))
    query = (
        "SELECT client_id, count(*) AS n, avg(score) AS mean_score, "
        "sum(CASE WHEN score >= 0.5 THEN is_fraud ELSE 0 END) AS caught "
        "FROM scores GROUP BY 1 ORDER BY 1"
    )
    got = fraud_dask.sql(query, cfg)
    scores["caught"] = np.where(scores["score"] >= 0.5, scores["is_fraud"], 0)
    expected = scores.groupby("client_id").agg(
        n=("tx_id", "size"), mean_score=("score", "mean"), caught=("caught", "sum")
    )
    assert got["client_id"].tolist() == ["a", "b"]
    assert got["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(got["mean_score"], expected["mean_score"], rtol=1e-6)
    assert got["caught"].tolist() == expected["caught"].tolist()
    days = fraud_dask.sql("SELECT DISTINCT day FROM scores ORDER BY 1", cfg)  # hive column
    assert [str(d) for d in days["day"]] == sorted(scores["ts"].dt.strftime("%Y-%m-%d").unique())

    for suffix in ("parquet", "csv"):
        out = tmp_path / f"out.{suffix}"
        assert fraud_dask.sql(query, cfg, output=str(out)) is None
        back = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
        pd.testing.assert_frame_equal(back, got, check_dtype=False)


def test_views_on_s3(make_bucket, tmp_path):
    import dask.dataframe as dd
    import fsspec

    from fraud_dask.data import write_dataset

    options = make_bucket("sql-views")
    frame = pd.DataFrame(
        {
            "tx_id": np.arange(300),
            "ts": pd.Timestamp("2025-02-01", tz="UTC") + pd.to_timedelta(np.arange(300), unit="h"),
            "amount": np.linspace(1.0, 300.0, 300),
            "category": np.tile(["fuel", "online", "travel"], 100),
        }
    )
    write_dataset(
        dd.from_pandas(frame, npartitions=2), "s3://sql-views/features", storage_options=options
    )
    data = {"path": "s3://sql-views/raw", "storage_options": options}
    cfg = _cfg(tmp_path, data, features="s3://sql-views/features", output=None)
    got = fraud_dask.sql(
        "SELECT category, sum(amount) AS total FROM features GROUP BY 1 ORDER BY 1", cfg
    )
    expected = frame.groupby("category")["amount"].sum()
    assert got["category"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(got["total"], expected.to_numpy())
    fraud_dask.sql("SELECT * FROM features", cfg, output="s3://sql-views/out/all.parquet")
    fs = fsspec.filesystem("s3", **options)
    with fs.open("sql-views/out/all.parquet", "rb") as f:
        assert len(pd.read_parquet(f)) == 300


def test_task_prints_the_table_and_names_mistakes(client, tmp_path, capsys):
    from fraud_dask.tasks import get_task

    data = _pan_source(tmp_path / "src")
    run = get_task("sql")
    out = run(
        _cfg(
            tmp_path, data, query="SELECT merchant_id, count(*) AS n FROM transactions GROUP BY 1"
        ),
        client,
    )
    printed = capsys.readouterr().out
    assert out["rows"] == 4 and out["columns"] == ["merchant_id", "n"]
    assert out["materialized"]["transactions"] == 58  # 60 rows, 2 quarantined
    assert "merchant_id" in printed and "m3" in printed
    json.dumps(out)  # metrics.json can hold it
    with pytest.raises(UserError, match=r"sql\.scores"):
        run(_cfg(tmp_path, data, query="SELECT * FROM scores"), client)
    with pytest.raises(UserError, match=r"sql\.transactions: .* raw source"):
        run(
            _cfg(tmp_path, data, query="SELECT 1 FROM transactions", transactions=data["path"]),
            client,
        )
    with pytest.raises(UserError, match=r"sql\.query"):
        run(_cfg(tmp_path, data, query="SELEC nonsense"), client)
    with pytest.raises(UserError, match=r"sql\.output"):
        run(_cfg(tmp_path, data, query="SELECT 1 AS x", output=str(tmp_path / "x.txt")), client)
