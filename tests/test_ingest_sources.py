"""``task=ingest`` on every shipped data config, and on extra columns of every storage kind.

The shipped configs are composed as the CLI would (``configs/data/*.yaml``): the synthetic source
(generated small first), the handbook's raw files (a week of them) and the generic ``parquet``
source pointed at files whose extra columns are pandas categories, dictionary-encoded strings,
null in every row, missing from a file, or integers with nulls in one file only. Each ingest must
write its outputs, keep rows in = kept + quarantined, and give back the source's values (compared
with pandas on the raw files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_dask.config import CONFIG_DIR, compose
from fraud_dask.tasks import generate, ingest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRAUD_DASK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FRAUD_DASK_PAN_KEY", "test-key")
    return tmp_path / "home"


def _check_counts(report: dict, rows: int | None = None) -> None:
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    assert report["rows_quarantined"] == sum(report["by_reason"].values())
    if rows is not None:
        assert report["rows_in"] == rows


def test_every_shipped_data_config_is_covered() -> None:
    shipped = {p.stem for p in (CONFIG_DIR / "data").glob("*.yaml")}
    assert shipped == {"synthetic", "handbook", "parquet"}, "add a test for the new config"


def test_ingest_synthetic(client, tmp_path: Path, home: Path) -> None:
    cfg = compose(["data.synthetic.n_rows=4000", "data.synthetic.n_days=20"], run_dir=tmp_path)
    assert generate.run(cfg, client)["rows_written"] == 4000
    report = ingest.run(cfg, client)
    _check_counts(report, 4000)
    assert report["rows_kept"] == 4000

    raw = pd.read_parquet(cfg.data.path).sort_values("tx_id").reset_index(drop=True)
    kept = pd.read_parquet(report["output"]).sort_values("tx_id").reset_index(drop=True)
    assert isinstance(raw["category"].dtype, pd.CategoricalDtype)  # dictionary-encoded
    assert isinstance(kept["category"].dtype, pd.CategoricalDtype)
    for col in ("category", "client_id", "email", "ip"):
        pd.testing.assert_series_equal(
            kept[col].astype(str), raw[col].astype(str), check_names=False
        )
    np.testing.assert_array_equal(kept["device_id"], raw["device_id"])
    assert len(pd.read_parquet(report["quarantine"])) == 0


def test_ingest_handbook(client, tmp_path: Path, home: Path, handbook_dir: Path) -> None:
    cfg = compose(
        [
            "data=handbook",
            f"data.path={handbook_dir / 'raw'}",
            "data.start=2018-04-01",
            "data.end=2018-04-08",
        ],
        run_dir=tmp_path,
    )
    report = ingest.run(cfg, client)
    _check_counts(report)
    files = sorted((handbook_dir / "raw").glob("2018-04-0[1-7].parquet"))
    raw = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert report["rows_in"] == len(raw)
    kept = pd.read_parquet(report["output"]).sort_values("tx_id").reset_index(drop=True)
    raw = raw.sort_values("TRANSACTION_ID").reset_index(drop=True)
    np.testing.assert_array_equal(kept["tx_id"], raw["TRANSACTION_ID"])
    np.testing.assert_array_equal(kept["scenario"], raw["TX_FRAUD_SCENARIO"])


def _canonical(n: int, first: int, day: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tx_id": np.arange(first, first + n, dtype="int64"),
            "ts": pd.date_range(day, periods=n, freq="min", tz="UTC"),
            "card_id": rng.integers(0, 40, n),
            "amount": rng.gamma(2.0, 20.0, n).round(2),
            "merchant_id": rng.integers(0, 9, n),
            "is_fraud": (rng.random(n) < 0.1).astype("int8"),
        }
    )


def write_extra_columns_source(root: Path) -> pd.DataFrame:
    """Three files with awkward extra columns; returns every row with the expected values."""
    root.mkdir(parents=True)
    n = 400
    parts = []
    for i in range(3):
        frame = _canonical(n, i * n, f"2025-02-0{i + 1}", seed=i)
        # a pandas category with more than 127 values (Arrow picks int16 indices for it)
        frame["shop"] = pd.Categorical([f"shop {(j * 7 + i) % 300}" for j in range(n)])
        frame["nothing"] = pd.Series([None] * n, dtype=object)  # Arrow null type
        frame["note"] = pd.Series([None] * n, dtype="str")  # a string column, all null
        frame["score"] = np.arange(n, dtype="int64")
        parts.append(frame)
    parts[1].loc[5, "score"] = None  # integers with a null in one file only
    parts[1]["score"] = parts[1]["score"].astype("Int64")
    parts[2]["note"] = [f"n{j % 3}" for j in range(n)]
    for i, frame in enumerate(parts):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # "channel": dictionary-encoded strings with few values, as Spark and pyarrow write them
        channel = pa.array([("web", "pos", "app")[j % 3] for j in range(n)]).dictionary_encode()
        if i != 1:  # and missing from one file
            table = table.append_column("channel", channel)
        pq.write_table(table, root / f"part-{i}.parquet")
    every = pd.concat(parts, ignore_index=True)
    every["channel"] = [("web", "pos", "app")[j % 3] if i != 1 else None
                        for i in range(3) for j in range(n)]  # fmt: skip
    return every


@pytest.mark.parametrize("rows_per_partition", ["null", "100000"], ids=["file-each", "grouped"])
def test_ingest_parquet_with_categorical_dictionary_and_null_columns(
    client, tmp_path: Path, home: Path, rows_per_partition: str
) -> None:
    raw = write_extra_columns_source(tmp_path / "src")
    cfg = compose(
        [
            "data=parquet",
            f"data.path={tmp_path / 'src'}",
            f"data.rows_per_partition={rows_per_partition}",
        ],
        run_dir=tmp_path / "run",
    )
    report = ingest.run(cfg, client)
    _check_counts(report, len(raw))
    assert report["rows_kept"] == len(raw)

    kept = pd.read_parquet(report["output"]).sort_values("tx_id").reset_index(drop=True)
    assert isinstance(kept["shop"].dtype, pd.CategoricalDtype)
    assert kept["shop"].astype(str).tolist() == raw["shop"].astype(str).tolist()
    assert kept["channel"].tolist() == [None if v is None else v for v in raw["channel"]]
    assert kept["nothing"].isna().all() and kept["note"].isna().sum() == 2 * 400
    assert kept["note"].dropna().tolist() == raw["note"].dropna().tolist()
    assert kept["score"].dtype == "Int64" and kept["score"].isna().sum() == 1
    assert kept["score"].fillna(-1).tolist() == raw["score"].fillna(-1).tolist()
