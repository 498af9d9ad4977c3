"""Every task that reads a source says what it read, and drops repeated tx_id by default.

A small source (Parquet, several files) holds a few repeated ``tx_id`` and a few bad rows; the
expected counts come from pandas (file order, first valid occurrence kept), and each task's
result must carry rows in = kept + quarantined, by reason, with every repeat left out of its
output.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_dask.data.schema import REASONS

START = pd.Timestamp("2025-01-01", tz="UTC")
DAYS = 36
SCORE_START = START + pd.Timedelta(days=DAYS - 4)

SMALL = [
    "data=parquet",
    "data.label_delay_days=5",
    "split.train_days=10",
    "split.delay_days=3",
    "split.test_days=4",
    "split.n_folds=2",
    "split.fold_step_days=4",
    "model.device=cpu",
    "model.num_boost_round=8",
    "model.early_stopping_rounds=null",
    "model.refit=false",
    "model.baseline=false",
    "model.params.max_depth=3",
    "task.performance_report=false",
]


def write_dirty_source(root: Path, n: int = 3000, seed: int = 5) -> pd.DataFrame:
    """Four Parquet files of canonical rows; returns every row in file order (as read)."""
    rng = np.random.default_rng(seed)
    ts = START + pd.to_timedelta(np.sort(rng.uniform(0, DAYS * 86400, n)), unit="s")
    df = pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64") + 10_000,
            "ts": ts.astype("datetime64[us, UTC]"),
            "card_id": pd.array(rng.integers(0, 80, n), dtype="Int64"),
            "amount": rng.gamma(2.0, 30.0, n),
            "terminal_id": rng.integers(0, 25, n).astype("int64"),
            "is_fraud": (rng.uniform(size=n) < 0.08).astype("int8"),
        }
    )
    df.loc[[10, 700, 1800, n - 30], "amount"] = -5.0  # negative_amount
    df.loc[[20, 900, n - 40], "card_id"] = pd.NA  # null_key
    # Later copies of earlier rows, some inside the scoring period; the copy of row 10 (whose
    # first occurrence is bad) is the first valid one, so it is kept.
    copies = df.loc[[10, 100, 1500, 2200, n - 60, n - 50, n - 50, n - 5]].copy()
    copies.loc[copies.index == 10, "amount"] = 12.0
    copies.loc[copies.index == 2200, "amount"] = 1.0  # same tx_id, other values: still a repeat
    body = [df.iloc[i * n // 4 : (i + 1) * n // 4] for i in range(4)]
    files = [
        *body[:2],
        pd.concat([body[2], copies.iloc[:3]]),
        pd.concat([body[3], copies.iloc[3:]]),
    ]
    root.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(files):
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        pq.write_table(table, root / f"part-{i}.parquet")
    return pd.concat(files, ignore_index=True)


def expected(raw: pd.DataFrame) -> tuple[dict[str, int], pd.DataFrame]:
    """pandas' answer: counts by reason and the kept rows (first valid occurrence of a tx_id)."""
    null_key = raw["card_id"].isna()
    negative = ~null_key & (raw["amount"] < 0)
    good = raw[~null_key & ~negative]
    repeat = good["tx_id"].duplicated(keep="first")
    by_reason = dict.fromkeys(REASONS, 0)
    by_reason |= {
        "null_key": int(null_key.sum()),
        "negative_amount": int(negative.sum()),
        "duplicate_tx_id": int(repeat.sum()),
    }
    return by_reason, good[~repeat]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("dirty") / "tx"
    return root, write_dirty_source(root)


def small_cfg(tmp_path: Path, src: Path, *extra: str):
    from fraud_dask.config import compose

    return compose(
        [f"paths.data_home={tmp_path / 'home'}", f"data.path={src}", *SMALL, *extra],
        run_dir=tmp_path / "run",
    )


def check_counts(result: dict, raw: pd.DataFrame) -> pd.DataFrame:
    """The result's counts against pandas; returns the expected kept rows."""
    json.dumps(result, default=str)  # metrics.json material
    by_reason, kept = expected(raw)
    assert by_reason["duplicate_tx_id"] == 7 and by_reason["null_key"] == 3
    assert result["rows_in"] == len(raw)
    assert result["rows_kept"] == len(kept)
    assert result["rows_quarantined"] == sum(by_reason.values())
    assert result["rows_in"] == result["rows_kept"] + result["rows_quarantined"]
    assert result["by_reason"] == by_reason
    assert result["dedupe"] is True
    return kept


def test_features_task_counts_and_drops_repeats(client, tmp_path, source, caplog) -> None:
    from fraud_dask.tasks import features

    src, raw = source
    cfg = small_cfg(tmp_path, src, "task=features")
    with caplog.at_level(logging.INFO, logger="fraud_dask"):
        result = features.run(cfg, client)
    kept = check_counts(result, raw)
    assert f"{len(raw)} rows in = {len(kept)} kept + " in caplog.text

    out = pd.read_parquet(result["output"])
    assert result["rows"] == len(out) == len(kept)
    assert out["tx_id"].is_unique
    assert sorted(out["tx_id"]) == sorted(kept["tx_id"])
    # the copy with other values (amount 1.0) is the one left out
    assert 1.0 not in set(out["amount"])

    # data.dedupe=false: the repeats stay, and the counts still add up
    off = features.run(small_cfg(tmp_path, src, "task=features", "data.dedupe=false"), client)
    assert off["dedupe"] is False and off["by_reason"]["duplicate_tx_id"] == 0
    assert off["rows_in"] == len(raw) == off["rows_kept"] + off["rows_quarantined"]
    assert off["rows_kept"] == len(kept) + 7
    assert not pd.read_parquet(off["output"])["tx_id"].is_unique


def test_ingest_follows_data_dedupe(client, tmp_path, source) -> None:
    from fraud_dask.tasks import ingest

    src, raw = source
    result = ingest.run(small_cfg(tmp_path, src, "task=ingest"), client)
    check_counts(result, raw)
    off = ingest.run(small_cfg(tmp_path, src, "task=ingest", "data.dedupe=false"), client)
    assert off["dedupe"] is False and off["by_reason"]["duplicate_tx_id"] == 0
    on = ingest.run(
        small_cfg(tmp_path, src, "task=ingest", "data.dedupe=false", "task.dedupe=true"), client
    )
    assert on["by_reason"]["duplicate_tx_id"] == 7  # task.dedupe, when set, wins


def test_train_task_counts(client, tmp_path, source) -> None:
    from fraud_dask.tasks import train

    src, raw = source
    result = train.run(small_cfg(tmp_path, src, "task=train"), client)
    kept = check_counts(result, raw)
    rows = sum(f["rows"] for f in result["training"].values())
    assert 0 < rows < len(kept)


def test_pipeline_then_score_counts(client, tmp_path, source) -> None:
    from fraud_dask.__main__ import _jsonable
    from fraud_dask.tasks import pipeline, score

    src, raw = source
    result = _jsonable(pipeline.run(small_cfg(tmp_path, src), client))
    check_counts(result, raw)
    assert result["registry"]["version"] == 1

    cfg = small_cfg(tmp_path, src, "task=score", f"score.start={SCORE_START.isoformat()}")
    scored = score.run(cfg, client)
    # the default features' 90-day risk window reaches back past the data's start: every row
    # of the source is read (the period, its history, the older rows for recency)
    kept = check_counts(scored, raw)
    out = pd.read_parquet(scored["output"])
    want = kept[kept["ts"] >= SCORE_START]
    assert scored["rows"] == len(out) == len(want)
    assert out["tx_id"].is_unique
    assert sorted(out["tx_id"]) == sorted(want["tx_id"])
    assert raw.loc[raw["ts"] >= SCORE_START, "tx_id"].duplicated().sum() >= 2  # repeats in range
