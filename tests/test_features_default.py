"""The default preset on the synthetic generator's data: every entity used, values checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraud_dask.data.synthetic import generate
from fraud_dask.features.build import build_features
from fraud_dask.features.plan import make_plan

DEFAULT = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "configs/features/default.yaml").read_text()
)


@pytest.fixture(scope="module")
def synthetic(client):
    conf = {"n_rows": 20_000, "n_days": 30, "customers_per_block": 50, "seed": 3}
    return generate(conf, npartitions=6)


def test_default_preset_on_synthetic_data(client, synthetic):
    plan = make_plan(DEFAULT, list(synthetic.columns))
    assert plan.skipped == []  # the generator provides every entity the preset names
    assert len(plan.stages) == 8  # card customer terminal merchant device ip email category
    got = build_features(synthetic, DEFAULT).compute().set_index("tx_id").sort_index()
    raw = synthetic.compute().set_index("tx_id").sort_index()
    assert got.index.equals(raw.index)
    assert list(got.columns[: len(plan.keep) - 1]) == [c for c in plan.keep if c != "tx_id"]

    # independent answers with pandas' own time-based rolling (ties resolved by tx_id)
    d = raw.reset_index().sort_values(["ts", "tx_id"]).reset_index(drop=True)
    order = d["card_id"].to_numpy().argsort(kind="stable")  # groupby-rolling's row order
    roll = d.set_index("ts").groupby("card_id")["amount"].rolling("1D")
    for agg, col in (("count", "card_id_count_1d"), ("max", "card_id_max_1d")):
        want = np.empty(len(d))
        want[order] = getattr(roll, agg)().to_numpy()
        got_col = got.loc[d["tx_id"], col].to_numpy()
        np.testing.assert_allclose(got_col, want, rtol=1e-12, err_msg=col)

    prev = d.groupby("card_id")["ts"].diff().dt.total_seconds()
    np.testing.assert_allclose(
        got["card_id_secs_since_prev"].to_numpy(),
        pd.Series(prev.to_numpy(), index=d["tx_id"]).sort_index().to_numpy(),
        equal_nan=True,
    )
    assert (got["tx_hour"] == raw["ts"].dt.hour).all()
    # distinct cards per device in 1 day: at least 1, never more than the device's row count
    assert (got["device_id_distinct_card_id_1h"] >= 1).all()
    assert (got["device_id_distinct_card_id_1h"] <= got["device_id_count_1h"]).all()
    # label-based features stay in [0, 1]; the target encoding starts at its prior
    for col in [
        "card_id_risk_90d",
        "terminal_id_risk_30d",
        "merchant_id_te_all",
        "category_te_all",
    ]:
        assert got[col].between(0, 1).all(), col
    first = d.drop_duplicates("merchant_id")["tx_id"]
    assert np.allclose(got.loc[first, "merchant_id_te_all"], 0.01)


def test_default_preset_skips_absent_optional_entities(synthetic):
    handbook_like = ["tx_id", "ts", "card_id", "amount", "terminal_id", "is_fraud", "label_ts"]
    plan = make_plan(DEFAULT, handbook_like)
    assert {s.key for s in plan.stages} == {("card_id",), ("terminal_id",)}
    assert any("device_id" in note for note in plan.skipped)
    assert "card_id_count_1d" in plan.feature_names
