"""Exact metrics on the handbook's baseline test set, against scikit-learn and the book's CP@k."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_dask.metrics import evaluate
from fraud_dask.split import SplitConf, make_folds, select_test

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "split"


def book_card_precision(pdf: pd.DataFrame, k: int) -> list[float]:
    """The book's card_precision_top_k, transcribed (ties ordered by card id)."""
    detected: list = []
    values = []
    for day in sorted(pdf.day.unique()):
        df_day = pdf[pdf.day == day][["score", "card_id", "is_fraud"]]
        df_day = df_day[~df_day.card_id.isin(detected)]
        cards = df_day.groupby("card_id").max().reset_index()
        top = cards.sort_values(["score", "card_id"], ascending=[False, True]).head(k)
        found = list(top[top.is_fraud == 1].card_id)
        values.append(len(found) / k)
        detected.extend(found)
    return values


@pytest.mark.slow
def test_handbook_baseline_test_set_metrics(client, handbook_dir: Path) -> None:
    raw = dd.read_parquet(str(handbook_dir / "raw"))
    frame = raw.rename(
        columns={
            "TX_DATETIME": "ts",
            "CUSTOMER_ID": "card_id",
            "TX_AMOUNT": "amount",
            "TX_FRAUD": "is_fraud",
        }
    )[["ts", "card_id", "amount", "is_fraud"]]
    frame = frame.assign(ts=frame.ts.dt.tz_localize("UTC"))
    conf = OmegaConf.merge(
        OmegaConf.structured(SplitConf), OmegaConf.load(CONFIGS / "handbook.yaml")
    )
    (fold,) = make_folds(conf, "baseline")
    # A transparent score: the amount rounded to whole units (scenario 1 makes amounts > 220
    # fraud), so thousands of rows tie.
    test = select_test(frame, fold).assign(score=lambda f: f.amount.round(0))
    got = evaluate(test, by_client=False)
    pdf = test.compute()
    assert (got["n"], got["n_fraud"]) == (58264, 385) == (len(pdf), pdf.is_fraud.sum())
    assert got["roc_auc"] == pytest.approx(roc_auc_score(pdf.is_fraud, pdf.score), rel=1e-12)
    assert got["average_precision"] == pytest.approx(
        average_precision_score(pdf.is_fraud, pdf.score), rel=1e-12
    )
    expected = book_card_precision(pdf.assign(day=pdf.ts.dt.floor("D")), 100)
    assert list(got["card_precision"]["per_day"].values()) == expected
    assert got["card_precision_at_100"] == pytest.approx(np.mean(expected))
    assert list(got["per_day"]) == [f"2018-08-{d:02d}" for d in range(8, 15)]
