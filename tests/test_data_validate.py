"""Validation and quarantine: every reason on a deliberately corrupted source, structural errors."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from fraud_dask.data import load_transactions, open_source
from fraud_dask.data.schema import REASONS, TS_DTYPE
from fraud_dask.tasks import ingest

MAPPING = {
    "txn": "tx_id",
    "when": "ts",
    "card": "card_id",
    "amt": "amount",
    "term": "terminal_id",
    "fraud": "is_fraud",
}


def _good(day: str, n: int, first_id: int) -> list[dict]:
    base = pd.Timestamp(day)
    return [
        {
            "txn": first_id + i,
            "when": (base + pd.Timedelta(minutes=7 * i)).strftime("%Y-%m-%d %H:%M:%S"),
            "card": 100 + i % 5,
            "amt": 10.0 + i,
            "term": 7 + i % 3,
            "fraud": i % 4 == 0,
        }
        for i in range(n)
    ]


def corrupted_source(root: Path) -> tuple[dict[str, list[dict]], list[str | None]]:
    """Four daily files; each row's expected reason (None = kept) listed in file order."""
    f0 = _good("2024-03-01", 6, 0)
    f1 = _good("2024-03-02", 6, 100)
    f2 = _good("2024-03-03", 6, 200)
    f3 = _good("2024-03-04", 6, 300)  # amounts written as text by this producer
    expect = [None] * 24
    f0[1]["txn"] = None
    expect[1] = "null_key"
    f0[2]["card"] = None
    expect[2] = "null_key"
    f0[3]["amt"] = -5.0
    expect[3] = "negative_amount"
    f0[4]["amt"] = float("nan")
    expect[4] = "non_finite_amount"
    f1[0]["amt"] = float("inf")
    expect[6] = "non_finite_amount"
    f1[1]["when"] = "2024-02-30 10:00:00"
    expect[7] = "unparseable_timestamp"
    f1[2]["when"] = "1999-12-31 23:00:00"
    expect[8] = "timestamp_out_of_range"
    f1[3]["when"] = "2024-03-02T10:00:00+02:00"
    expect[9] = "mixed_timezone"
    f1[4]["fraud"] = 2
    expect[10] = "label_not_binary"
    # A repeat of a kept tx_id in a later file is a duplicate ...
    f2[0]["txn"] = 5
    expect[12] = "duplicate_tx_id"
    # ... but when the first copy is bad, the first good copy is kept.
    f2[1]["txn"] = 3
    f2[2]["txn"] = 3
    expect[14] = "duplicate_tx_id"
    f2[3]["when"] = None
    expect[15] = "null_key"
    for row in f3:
        row["amt"] = f"{row['amt']:.2f}"
    f3[1]["amt"] = "abc"
    expect[19] = "unparseable_amount"
    f3[2]["amt"] = "9" * 5000
    expect[20] = "oversized_value"
    f3[3]["when"] = "2024-03-04 " + "x" * 2000
    expect[21] = "oversized_value"
    files = {
        "2024-03-01.parquet": f0,
        "2024-03-02.parquet": f1,
        "2024-03-03.parquet": f2,
        "2024-03-04.parquet": f3,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        frame = pd.DataFrame(rows)
        frame["txn"] = frame["txn"].astype("Int64")
        frame["card"] = frame["card"].astype("Int64")
        frame["fraud"] = frame["fraud"].astype("int64")
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / name)
    return files, expect


def _cfg(path: Path, run_dir: Path, **extra: object) -> object:
    data = {
        "name": "corrupt",
        "path": str(path),
        "columns": MAPPING,
        "label_delay_days": 10,
        "timestamp": {"timezone": "Europe/Brussels"},
        **extra,
    }
    return OmegaConf.create({"data": data, "run_dir": str(run_dir), "task": {"dedupe": True}})


@pytest.mark.parametrize("rows_per_partition", [None, 500_000], ids=["file-each", "grouped"])
def test_ingest_quarantines_every_reason(
    client, tmp_path: Path, rows_per_partition: int | None
) -> None:
    # grouped: the three files are read into one partition (one Arrow concat, one check pass)
    files, expect = corrupted_source(tmp_path / "src")
    cfg = _cfg(tmp_path / "src", tmp_path / "run", rows_per_partition=rows_per_partition)
    report = ingest.run(cfg, client)
    json.dumps(report)  # metrics.json must be serialisable

    assert report["rows_in"] == 24 == report["rows_kept"] + report["rows_quarantined"]
    expected_counts = {r: sum(e == r for e in expect) for r in REASONS}
    assert report["by_reason"] == expected_counts
    assert all(report["by_reason"][r] > 0 for r in REASONS), "every reason must be exercised"

    quarantine = pd.read_parquet(tmp_path / "run" / "quarantine")
    got = {
        (f.rsplit("/", 1)[1], int(r)): why
        for f, r, why in quarantine[["source_file", "source_row", "reason"]].itertuples(index=False)
    }
    names = sorted(files)
    want = {(names[i // 6], i % 6): why for i, why in enumerate(expect) if why is not None}
    assert got == want
    dup = quarantine[quarantine["reason"] == "duplicate_tx_id"].sort_values("source_row")
    assert list(dup["detail"]) == [
        f"tx_id=first={tmp_path / 'src' / names[0]}:5",
        f"tx_id=first={tmp_path / 'src' / names[2]}:1",
    ]
    by_row = quarantine.set_index(["reason", "source_row"])["detail"]
    assert by_row[("unparseable_amount", 1)] == "amount=abc"
    # an oversized value is not kept, its length is
    assert by_row[("oversized_value", 2)] == "amount=<5000 characters>"
    assert by_row[("oversized_value", 3)] == "ts=<2011 characters>"
    assert quarantine["detail"].str.len().max() < 300

    kept = pd.read_parquet(tmp_path / "run" / "transactions")
    rows = [row for rs in files.values() for row in rs]
    want_ids = sorted(r["txn"] for r, e in zip(rows, expect, strict=True) if e is None)
    assert sorted(kept["tx_id"]) == want_ids
    assert kept["day"].nunique() >= 3


def test_kept_rows_are_canonical_and_match_pandas(client, tmp_path: Path) -> None:
    files, expect = corrupted_source(tmp_path / "src")
    frame = load_transactions(_cfg(tmp_path / "src", tmp_path / "run").data, dedupe=True)
    got = frame.compute().sort_values("tx_id").reset_index(drop=True)

    rows = [row for rs in files.values() for row in rs]
    want = pd.DataFrame([r for r, e in zip(rows, expect, strict=True) if e is None])
    want_ts = (
        pd.to_datetime(want["when"]).dt.tz_localize("Europe/Brussels").dt.tz_convert("UTC")
    ).astype(TS_DTYPE)
    want = want.assign(ts=want_ts).sort_values("txn").reset_index(drop=True)

    assert got["ts"].dtype == TS_DTYPE and got["label_ts"].dtype == TS_DTYPE
    assert got["is_fraud"].dtype == np.int8 and got["amount"].dtype == np.float64
    assert got["tx_id"].dtype == np.int64 and got["card_id"].dtype == np.int64
    assert list(got["client_id"].astype(str).unique()) == ["default"]
    np.testing.assert_array_equal(got["tx_id"], want["txn"].astype("int64"))
    np.testing.assert_array_equal(got["amount"], want["amt"].astype("float64"))
    pd.testing.assert_series_equal(got["ts"], want["ts"], check_names=False)
    pd.testing.assert_series_equal(
        got["label_ts"], want["ts"] + pd.Timedelta(days=10), check_names=False
    )
    # Without the duplicate pass the later copies stay (documented fast path).
    fast = load_transactions(_cfg(tmp_path / "src", tmp_path / "run").data, dedupe=False).compute()
    assert len(fast) == len(got) + 2


def test_date_range_and_projection(client, tmp_path: Path) -> None:
    corrupted_source(tmp_path / "src")
    data = _cfg(tmp_path / "src", tmp_path / "run").data
    # the duplicate check covers the rows read (a range keeps a repeat of an earlier row
    # outside it): only the range and the projection are under test here
    full = load_transactions(data, dedupe=False).compute()
    part = load_transactions(
        data, columns=["tx_id", "ts"], start="2024-03-02", end="2024-03-03", dedupe=False
    ).compute()
    assert list(part.columns) == ["tx_id", "ts"]
    lo, hi = pd.Timestamp("2024-03-02", tz="UTC"), pd.Timestamp("2024-03-03", tz="UTC")
    want = full[(full["ts"] >= lo) & (full["ts"] < hi)]
    assert sorted(part["tx_id"]) == sorted(want["tx_id"])


def _write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _plain(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": np.arange(n),
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "card_id": np.arange(n) % 2,
            "amount": np.linspace(1, 2, n),
            "merchant_id": ["m1"] * n,
        }
    )


def test_missing_required_column_names_file_and_column(client, tmp_path: Path) -> None:
    _write(tmp_path / "src" / "a.parquet", _plain())
    _write(tmp_path / "src" / "b.parquet", _plain().drop(columns=["amount"]))
    with pytest.raises(ValueError, match=r"b\.parquet: missing required column 'amount'"):
        load_transactions({"name": "x", "path": str(tmp_path / "src")})


def test_uncastable_type_names_file_and_column(client, tmp_path: Path) -> None:
    _write(tmp_path / "src" / "a.parquet", _plain())
    bad = _plain().assign(ts=[[1]] * 5)
    _write(tmp_path / "src" / "b.parquet", bad)
    with pytest.raises(TypeError, match=r"b\.parquet: column 'ts' \(ts\) has type list"):
        load_transactions({"name": "x", "path": str(tmp_path / "src")})


def test_unparseable_amount_text_is_quarantined_not_fatal(client, tmp_path: Path) -> None:
    text = _plain().assign(tx_id=np.arange(5, 10), amount=["1.5", "2", "3 EUR", "4", "abc"])
    _write(tmp_path / "src" / "b.parquet", _plain().assign(amount=["1", "2", "3", "4", "5"]))
    _write(tmp_path / "src" / "c.parquet", text)  # same schema: read in one group with b
    read = open_source({"name": "x", "path": str(tmp_path / "src")}).frames()
    kept, quarantine, *counts = dask.compute(read.kept, read.quarantine, *read.lazy_counts())
    assert read.counts(counts).by_reason["unparseable_amount"] == 2
    assert sorted(kept["tx_id"]) == [0, 1, 2, 3, 4, 5, 6, 8]
    assert sorted(quarantine["detail"]) == ["amount=3 EUR", "amount=abc"]
    assert list(quarantine["source_file"].str.rsplit("/", n=1).str[1]) == ["c.parquet"] * 2


def test_corrupt_and_empty_sources(client, tmp_path: Path) -> None:
    _write(tmp_path / "src" / "a.parquet", _plain())
    (tmp_path / "src" / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match=r"b\.parquet: unreadable or corrupt parquet file"):
        load_transactions({"name": "x", "path": str(tmp_path / "src")})
    _write(tmp_path / "empty" / "a.parquet", _plain(0))
    with pytest.raises(ValueError, match="empty dataset"):
        load_transactions({"name": "x", "path": str(tmp_path / "empty")})
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match="no parquet files"):
        load_transactions({"name": "x", "path": str(tmp_path / "none")})
    _write(tmp_path / "ok" / "a.parquet", _plain())
    with pytest.raises(ValueError, match="no column maps to required"):
        load_transactions({"name": "x", "path": str(tmp_path / "ok"), "columns": {"a": "b"}})


def test_missing_optional_integer_id_is_kept_as_missing_id(client, tmp_path: Path) -> None:
    """A good row may lack its terminal when its merchant is given; with integer ids the column
    keeps its dtype and marks the gap with MISSING_ID (no crash, no row lost)."""
    from fraud_dask.data.schema import MISSING_ID

    src = tmp_path / "src"
    src.mkdir()
    n = 50
    raw = pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": pd.date_range("2024-05-01", periods=n, freq="h", tz="UTC"),
            "card_id": np.arange(n, dtype="int64") % 7,
            "amount": np.linspace(1, 50, n),
            "terminal_id": pd.array([None if i % 10 == 3 else i % 4 for i in range(n)], "Int64"),
            "merchant_id": pd.array([None if i == 5 else i % 3 for i in range(n)], "Int64"),
        }
    )
    raw.loc[13, "merchant_id"] = pd.NA  # with terminal 13 % 10 == 3 missing too: no point of sale
    raw.to_parquet(src / "a.parquet")
    data = {"name": "pos", "path": str(src), "dedupe": False}
    read = open_source(data).frames(dedupe=False)
    kept, by_reason = dask.compute(read.kept, read.by_reason)
    assert len(kept) == n - 1 and by_reason.to_dict() == {"null_key": 1}
    kept = kept.set_index("tx_id")
    assert kept["terminal_id"].dtype == np.int64 and kept["merchant_id"].dtype == np.int64
    assert (kept.loc[[3, 23, 33, 43], "terminal_id"] == MISSING_ID).all()
    assert kept.loc[5, "merchant_id"] == MISSING_ID and kept.loc[4, "terminal_id"] == 0


def test_duplicate_pre_pass_reads_ids_alone_and_agrees_with_pandas(client, tmp_path: Path) -> None:
    """The cheap ``tx_id`` pass finds no repeat in a clean source (no second read), and finds the
    repeats of a dirty one: a repeat across files, a repeat whose first row is invalid, and a
    repeated oversized id (blanked, so quarantined as oversized, not as a duplicate)."""
    clean = tmp_path / "clean"
    _write(clean / "a.parquet", _plain(6).assign(tx_id=[f"t{i}" for i in range(6)]))
    _write(clean / "b.parquet", _plain(6).assign(tx_id=[f"t{i}" for i in range(6, 12)]))
    src = open_source({"name": "x", "path": str(clean)})
    assert src.repeated_ids() == 0
    read = src.frames()
    kept, quarantine = dask.compute(read.kept, read.quarantine)
    assert sorted(kept["tx_id"]) == sorted(f"t{i}" for i in range(12)) and quarantine.empty

    dirty = tmp_path / "dirty"
    long_id = "x" * 40
    a = _plain(6).assign(tx_id=["t0", "t1", "t2", long_id, "t4", "t5"])
    a["card_id"] = pd.array([0, 1, None, 1, 0, 1], "Int64")  # t2's first row has no card
    b = _plain(6).assign(tx_id=["t6", "t1", "t2", long_id, "t7", "t8"])
    _write(dirty / "a.parquet", a)
    _write(dirty / "b.parquet", b)
    src = open_source({"name": "x", "path": str(dirty), "max_value_length": 20})
    # t1 and t2 repeat; the long id is blanked before any cast, as the full read does
    assert src.repeated_ids() == 2
    read = src.frames()
    kept, quarantine = dask.compute(read.kept, read.quarantine)
    # pandas: the first valid row of each id is kept (file order, then row order)
    rows = pd.concat([a.assign(f=0), b.assign(f=1)], ignore_index=True)
    valid = rows["card_id"].notna() & (rows["tx_id"] != long_id)
    want = rows[valid].drop_duplicates("tx_id")
    assert sorted(kept["tx_id"]) == sorted(want["tx_id"])
    by_reason = quarantine["reason"].value_counts().to_dict()
    assert by_reason == {"duplicate_tx_id": 1, "oversized_value": 2, "null_key": 1}
    assert len(kept) + len(quarantine) == len(rows)


@pytest.mark.parametrize("kind", ["int", "str"])
def test_repeat_count_by_hash_buckets_agrees_with_pandas(kind: str) -> None:
    """The duplicate pre-pass's count: ids hashed in each partition and cut into buckets by
    their top bits, each bucket gathered from every partition, equals pandas' count of values
    seen more than once, for repeats within and across partitions."""
    from fraud_dask.data.load import _hash_buckets, _repeats_in_bucket
    from fraud_dask.data.schema import STRING_DTYPE

    rng = np.random.default_rng(3)
    values = rng.integers(0, 40_000, size=60_000)  # about 1 in 4 values repeats
    ids = pd.Series(values, dtype="Int64") if kind == "int" else pd.Series(
        [f"tx-{v}" for v in values], dtype=STRING_DTYPE
    )  # fmt: skip
    expected = int((ids.value_counts() > 1).sum())
    assert expected > 1000
    for n_parts, bits in ((1, 0), (7, 3), (12, 6)):
        parts = [pd.DataFrame({"tx_id": p}) for p in np.array_split(ids, n_parts)]
        pieces = [_hash_buckets(p, bits) for p in parts]
        assert all(len(p) == 2**bits for p in pieces)
        got = sum(_repeats_in_bucket([p[b] for p in pieces]) for b in range(2**bits))
        assert got == expected, (n_parts, bits)
