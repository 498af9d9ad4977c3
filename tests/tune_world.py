"""A small feature dataset for the tuning and screening tests, written as real Parquet files.

75 days of card transactions with three numeric inputs: ``signal`` (frauds score higher, all
along), ``noise`` (nothing) and ``leak`` (a perfect fraud flag before ``leak_until``, noise
after it: a signal that does not hold over time). Read it with ``task.features_path`` (or
:func:`fraud_dask.data.io.read_dataset`) as a feature frame built by ``task=features``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2025-01-01", tz="UTC")
DAYS = 75

#: split=default, 3 folds of 14/7/7 days: ~75 days hold the test and the validation folds
SPLIT = ["split=default"]
MODEL = [
    "model.device=cpu",
    "model.num_boost_round=20",
    "model.early_stopping_rounds=10",
    "model.valid_min_frauds=5",
    "model.baseline=false",
    "model.exclude=[]",
]


def world(
    rows_per_day: int = 200, fraud_rate: float = 0.04, leak_until: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """The transactions and their inputs (``leak`` exact up to day ``leak_until``, excluded)."""
    rng = np.random.default_rng(seed)
    n = rows_per_day * DAYS
    day = np.repeat(np.arange(DAYS), rows_per_day)
    ts = START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.integers(0, 86_400, n), "s")
    fraud = (rng.random(n) < fraud_rate).astype("int8")
    leak = rng.normal(size=n)
    if leak_until is not None:
        early = day < leak_until
        leak[early] = fraud[early] + 0.01 * leak[early]
    frame = pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": ts,
            "card_id": rng.integers(0, 2_000, n).astype("int64"),
            "terminal_id": rng.integers(0, 200, n).astype("int64"),
            "amount": rng.gamma(2.0, 30.0, n).round(2),
            "is_fraud": fraud,
            "signal": 1.2 * fraud + rng.normal(size=n),
            "noise": rng.normal(size=n),
            "leak": leak,
        }
    )
    frame["label_ts"] = frame["ts"] + pd.Timedelta(days=7)
    return frame.sort_values("ts", ignore_index=True)


def write_world(frame: pd.DataFrame, path: Path) -> str:
    """One Parquet file per 5 days under ``path``; returns the folder."""
    path.mkdir(parents=True, exist_ok=True)
    days = (frame["ts"] - START).dt.days // 5
    for i, part in frame.groupby(days):
        part.to_parquet(path / f"part-{i:03d}.parquet", index=False)
    return str(path)
