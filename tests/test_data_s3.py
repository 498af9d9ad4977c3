"""S3 for real: read, ingest and atomic writes through a moto server on 127.0.0.1."""

from __future__ import annotations

import fsspec
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fraud_dask.data import count_rows, load_transactions, read_dataset, write_dataset
from fraud_dask.tasks import ingest


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": pd.Timestamp("2024-06-01", tz="UTC")
            + pd.to_timedelta(np.sort(rng.integers(0, 3 * 86400, n)), unit="s"),
            "card_id": rng.integers(0, 30, n),
            "amount": rng.gamma(2.0, 20.0, n),
            "terminal_id": rng.integers(0, 10, n),
            "is_fraud": (rng.random(n) < 0.1).astype("int64"),
        }
    )


@pytest.fixture()
def bucket(make_bucket, request) -> tuple[str, dict]:
    name = "t-" + request.node.name.replace("_", "-")[:50].lower()
    return name, make_bucket(name)


def _boom(pdf: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    if partition_info and partition_info["number"] == 1:
        raise RuntimeError("simulated crash while writing to S3")
    return pdf


def test_s3_ingest_and_atomic_rewrite(client, bucket, tmp_path) -> None:
    name, options = bucket
    fs = fsspec.filesystem("s3", **options)
    raw = _frame(1500, 1)
    with fs.open(f"{name}/raw/part-0.parquet", "wb") as f:
        raw.iloc[:700].to_parquet(f, index=False)
    with fs.open(f"{name}/raw/part-1.parquet", "wb") as f:
        raw.iloc[700:].to_parquet(f, index=False)
    fs.pipe(f"{name}/raw/_SUCCESS", b"")

    data = {"name": "s3", "path": f"s3://{name}/raw", "storage_options": options}
    cfg = OmegaConf.create(
        {
            "data": {**data, "quarantine_path": f"s3://{name}/quarantine"},
            "run_dir": str(tmp_path),
            "task": {"output": f"s3://{name}/clean"},
        }
    )
    report = ingest.run(cfg, client)
    assert report["rows_in"] == report["rows_kept"] == 1500
    assert count_rows(f"s3://{name}/clean", options) == 1500

    clean = {"name": "clean", "path": f"s3://{name}/clean", "storage_options": options}
    got = load_transactions(clean).compute().sort_values("tx_id").reset_index(drop=True)
    np.testing.assert_array_equal(got["tx_id"], raw["tx_id"])
    np.testing.assert_allclose(got["amount"], raw["amount"])
    assert (got["ts"] == raw["ts"].astype(got["ts"].dtype)).all()

    before = sorted(fs.find(f"{name}/clean"))
    frame = load_transactions(data).repartition(npartitions=3)
    failing = frame.map_partitions(_boom, meta=frame._meta)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_dataset(failing, f"s3://{name}/clean", storage_options=options)
    fs.invalidate_cache()
    assert sorted(fs.find(f"{name}/clean")) == before
    assert not [p for p in fs.ls(name) if p.rsplit("/", 1)[1].startswith(".")]

    half = load_transactions(data, end="2024-06-02")
    for _ in range(2):
        n = write_dataset(half, f"s3://{name}/clean", storage_options=options)
    assert n == count_rows(f"s3://{name}/clean", options) == int((raw["ts"] < "2024-06-02").sum())
    back = read_dataset(f"s3://{name}/clean", storage_options=options).compute()
    assert sorted(back["tx_id"]) == sorted(raw.loc[raw["ts"] < "2024-06-02", "tx_id"])
