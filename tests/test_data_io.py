"""Parquet I/O: Spark layouts, CSV, atomic and idempotent writes, pushdown of date ranges."""

from __future__ import annotations

import uuid
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_dask.data import count_rows, load_transactions, open_source, read_dataset, write_dataset

MAPPING = {
    "id": "tx_id",
    "event_time": "ts",
    "card": "card_id",
    "value": "amount",
    "merchant": "merchant_id",
    "label": "is_fraud",
}


def raw_frame(n: int = 2000, days: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-05-01") + pd.to_timedelta(
        np.sort(rng.integers(0, days * 86400, n)), unit="s"
    )
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype="int64") + 10_000,
            "event_time": ts,
            "card": rng.integers(0, 50, n),
            "value": rng.gamma(2.0, 30.0, n).round(2),
            "merchant": [f"m{i}" for i in rng.integers(0, 20, n)],
            "label": (rng.random(n) < 0.05).astype("int64"),
        }
    )


def _cfg(path: Path | str, **extra: object) -> dict:
    return {"name": "t", "path": str(path), "columns": MAPPING, **extra}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("tx_id").reset_index(drop=True)


def write_spark_layout(frame: pd.DataFrame, root: Path) -> None:
    """What Spark's ``df.write.partitionBy("dt").parquet(root)`` leaves on disk."""
    day = frame["event_time"].dt.strftime("%Y-%m-%d")
    for value, part in frame.groupby(day):
        folder = root / f"dt={value}"
        folder.mkdir(parents=True)
        name = f"part-00000-{uuid.uuid4()}.c000.snappy.parquet"
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        pq.write_table(
            table, folder / name, compression="snappy", use_deprecated_int96_timestamps=True
        )
        (folder / f".{name}.crc").write_bytes(b"\x00crc garbage")
    (root / "_SUCCESS").write_bytes(b"")
    (root / "._SUCCESS.crc").write_bytes(b"\x00")


def test_spark_layout_reads_like_pandas(client, tmp_path: Path) -> None:
    frame = raw_frame()
    pandas_dir = tmp_path / "pandas"
    pandas_dir.mkdir()
    frame.to_parquet(pandas_dir / "data.parquet", index=False)
    write_spark_layout(frame, tmp_path / "spark")

    meta = pq.read_schema(next((tmp_path / "spark").glob("dt=*/*.parquet")))
    assert meta.field("event_time").type == pa.timestamp("ns")  # INT96 read back
    a = _sorted(load_transactions(_cfg(pandas_dir)).compute())
    b = _sorted(load_transactions(_cfg(tmp_path / "spark")).compute())
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(frame)
    np.testing.assert_allclose(a["amount"].sum(), frame["value"].sum())


def test_csv_is_read_and_converted(client, tmp_path: Path) -> None:
    frame = raw_frame(500)
    (tmp_path / "csv").mkdir()
    frame.to_csv(tmp_path / "csv" / "part-1.csv", index=False)
    got = _sorted(load_transactions(_cfg(tmp_path / "csv", format="csv")).compute())
    want = _sorted(load_transactions(_cfg(_parquet(tmp_path, frame))).compute())
    assert pd.api.types.is_string_dtype(got["tx_id"].dtype)  # CSV identifiers are strings
    assert got["tx_id"].tolist() == want["tx_id"].astype("str").tolist()
    for col in ("ts", "amount", "is_fraud", "label_ts", "merchant_id"):
        pd.testing.assert_series_equal(got[col], want[col])


def _parquet(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "flat"
    path.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path / "data.parquet", index=False)
    return path


def _canonical(tmp_path: Path, n: int = 3000, partitions: int = 4) -> dd.DataFrame:
    frame = load_transactions(_cfg(_parquet(tmp_path, raw_frame(n))))
    return frame.repartition(npartitions=partitions)


def test_write_is_day_partitioned_and_round_trips(client, tmp_path: Path) -> None:
    frame = _canonical(tmp_path)
    want = _sorted(frame.compute())
    rows = write_dataset(frame, str(tmp_path / "out"))
    assert rows == len(want) == count_rows(str(tmp_path / "out"))
    days = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert days == [f"day={d}" for d in sorted(want["ts"].dt.strftime("%Y-%m-%d").unique())]
    back = load_transactions({"name": "o", "path": str(tmp_path / "out")})
    got = _sorted(back.compute())
    pd.testing.assert_frame_equal(got, want[got.columns])  # the day column is not data
    assert "day" not in got.columns
    plain = read_dataset(str(tmp_path / "out")).compute()
    assert pd.api.types.is_string_dtype(plain["day"].dtype) and len(plain) == len(want)


def _boom(pdf: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    if partition_info and partition_info["number"] == 2:
        raise RuntimeError("simulated crash while writing")
    return pdf


def test_crash_mid_write_leaves_previous_output(client, tmp_path: Path) -> None:
    target = tmp_path / "out"
    first = _canonical(tmp_path, 1000)
    write_dataset(first, str(target))
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}

    second = _canonical(tmp_path / "b", 2000)
    failing = second.map_partitions(_boom, meta=second._meta)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_dataset(failing, str(target))
    after = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    for _ in range(2):  # rerun: replaces, never duplicates
        assert write_dataset(second, str(target)) == 2000
    assert count_rows(str(target)) == 2000
    got = _sorted(read_dataset(str(target)).compute())
    assert got["tx_id"].tolist() == sorted(second["tx_id"].compute())
    with pytest.raises(FileExistsError):
        write_dataset(second, str(target), overwrite=False)


def test_interrupted_commit_is_restored(client, tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_dataset(_canonical(tmp_path, 500), str(target))
    # A crash between the commit's two moves leaves only the moved-aside copy.
    target.rename(tmp_path / ".out.old-deadbeef")
    write_dataset(_canonical(tmp_path / "c", 700), str(target))
    assert count_rows(str(target)) == 700
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_date_range_is_pushed_down(client, tmp_path: Path) -> None:
    frame = _canonical(tmp_path)
    write_dataset(frame, str(tmp_path / "out"))
    # Corrupt a day far outside the range: a reader that opened it would fail.
    victim = next((tmp_path / "out" / "day=2024-05-01").glob("*.parquet"))
    victim.write_bytes(b"not parquet at all")
    cfg = {"name": "o", "path": str(tmp_path / "out")}
    source = open_source(cfg, start="2024-05-04", end="2024-05-05 12:00")
    assert not any("day=2024-05-01" in f for f in source.files)
    assert source.filters is not None and source.filters[0][0] == "ts"
    got = load_transactions(cfg, start="2024-05-04", end="2024-05-05 12:00").compute()
    all_rows = frame.compute()
    lo = pd.Timestamp("2024-05-04", tz="UTC")
    hi = pd.Timestamp("2024-05-05 12:00", tz="UTC")
    want = all_rows[(all_rows["ts"] >= lo) & (all_rows["ts"] < hi)]
    assert sorted(got["tx_id"]) == sorted(want["tx_id"]) and len(want) > 0
    with pytest.raises(ValueError, match=r"day=2024-05-01/.*unreadable or corrupt"):
        load_transactions(cfg)


@pytest.mark.parametrize(
    ("sizes", "target", "groups"),
    [
        ([100] * 10, 250, 4),  # 1,000 rows at 250 -> 4 groups of ~250
        ([3000] + [10] * 20, 1000, 2),  # a large file is never split (nor joined)
        ([0, 5, 0, 5], 1000, 1),  # empty files are left out
        ([7] * 5, None, 5),  # None: one partition per file
        ([400_000] * 3, 500_000, 3),  # 1.2 M rows at 500k -> 3 x 400k, not 500k+500k+200k
    ],
)
def test_group_files_are_consecutive_and_balanced(sizes, target, groups) -> None:
    from fraud_dask.data.io import FileInfo, group_files

    infos = [FileInfo(f"f{i}", {}, pa.schema([]), n) for i, n in enumerate(sizes)]
    got = group_files(infos, target)
    assert len(got) == groups
    flat = [i for g in got for i, _, _ in g]
    assert flat == [i for i, n in enumerate(sizes) if n]  # every non-empty file once, in order
    rows = [sum(sizes[i] for i, _, _ in g) for g in got]
    if target is not None:
        even = sum(sizes) / groups
        assert all(abs(r - even) <= max(sizes) for r in rows), rows
    csv = [FileInfo(f"c{i}", {}, pa.schema([]), None) for i in range(3)]
    assert [len(g) for g in group_files(csv, 10)] == [1, 1, 1]  # unknown row counts


def test_grouped_and_per_file_reads_are_identical(client, tmp_path: Path) -> None:
    """Reading consecutive files into one partition changes no value, order or position."""
    rng = np.random.default_rng(3)
    for day in range(6):
        n = int(rng.integers(5, 40))
        frame = pd.DataFrame({
            "tx_id": np.arange(n) + 1000 * day,
            "ts": pd.Timestamp("2024-05-01") + pd.Timedelta(days=day)
            + pd.to_timedelta(rng.integers(0, 86_000, n), unit="s"),
            "card_id": rng.integers(1, 9, n),
            "terminal_id": rng.integers(1, 5, n),
            "amount": rng.gamma(2.0, 30.0, n),
            "is_fraud": rng.integers(0, 2, n),
        })  # fmt: skip
        folder = tmp_path / "src" / f"day=2024-05-0{day + 1}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part.parquet")
    base = {"name": "g", "path": str(tmp_path / "src")}
    per_file = load_transactions({**base, "rows_per_partition": None})
    grouped = load_transactions({**base, "rows_per_partition": 100})
    assert per_file.npartitions == 6 and grouped.npartitions < 6
    pd.testing.assert_frame_equal(
        per_file.compute().reset_index(drop=True), grouped.compute().reset_index(drop=True)
    )
