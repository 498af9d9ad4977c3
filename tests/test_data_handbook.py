"""The handbook source: every raw row loads with canonical dtypes, as pandas reads it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fraud_dask.config import CONFIG_DIR
from fraud_dask.data import load_transactions
from fraud_dask.data.config import DataConf
from fraud_dask.data.schema import TS_DTYPE, check_canonical


def _handbook_cfg(handbook_dir) -> object:
    cfg = OmegaConf.merge(
        OmegaConf.structured(DataConf), OmegaConf.load(CONFIG_DIR / "data" / "handbook.yaml")
    )
    cfg.path = str(handbook_dir / "raw")
    return cfg


@pytest.mark.slow
def test_handbook_loads_every_row(client, handbook_dir) -> None:
    frame = load_transactions(_handbook_cfg(handbook_dir))
    check_canonical(frame._meta, "handbook")
    got = frame.compute()
    assert len(got) == 1_754_155
    assert got["ts"].dtype == TS_DTYPE and got["label_ts"].dtype == TS_DTYPE
    assert got["is_fraud"].dtype == np.int8 and int(got["is_fraud"].sum()) == 14_681
    assert got["scenario"].value_counts().to_dict() == {
        0: 1_754_155 - 14_681,
        2: 9_077,
        3: 4_631,
        1: 973,
    }
    want = pd.read_parquet(handbook_dir / "raw")
    np.testing.assert_array_equal(got["tx_id"], want["TRANSACTION_ID"])
    np.testing.assert_array_equal(got["amount"], want["TX_AMOUNT"])
    np.testing.assert_array_equal(got["card_id"], want["CUSTOMER_ID"])
    expected_ts = want["TX_DATETIME"].dt.tz_localize("UTC").astype(TS_DTYPE)
    np.testing.assert_array_equal(got["ts"].to_numpy(), expected_ts.to_numpy())
    assert (got["label_ts"] - got["ts"] == pd.Timedelta(days=7)).all()


def test_handbook_week_with_projection(client, handbook_dir) -> None:
    week = load_transactions(
        _handbook_cfg(handbook_dir),
        columns=["tx_id", "ts", "is_fraud"],
        start="2018-07-25",
        end="2018-08-01",
    ).compute()
    assert len(week) == 67_240 and int(week["is_fraud"].sum()) == 598  # the book's train week
    assert list(week.columns) == ["tx_id", "ts", "is_fraud"]
