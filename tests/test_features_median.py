"""The ``amount_median`` kind against a plain pandas loop, offline and online.

The reference takes, for every row, the rows of its entity strictly before it in (ts, tx_id)
order within each window and computes the median, the count above ``factor`` x the median and
the largest ratio with pandas; the batch kernels (a sorted sliding window) and the online state
(one event against its kept rows) must both give its values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_replay import assert_same, replay

from fraud_dask.features.batch import features_frame
from fraud_dask.features.plan import make_plan

DAY = pd.Timedelta(days=1)


def frame(n: int = 900, seed: int = 5) -> pd.DataFrame:
    """Cards with their own usual amounts, same-second ties, zero amounts and a few outliers."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, 15, n).astype(np.int64)
    usual = rng.uniform(5, 100, 15)[card]
    amount = np.round(np.abs(rng.normal(usual, usual / 2)), 2)
    amount[rng.random(n) < 0.05] *= 5  # a stolen card's inflated amounts
    amount[rng.random(n) < 0.03] = 0.0  # zero amounts: medians of 0 occur on short windows
    seconds = rng.integers(0, 40 * 86400 // 600, n) * 600  # 10-minute grid: many ties
    return pd.DataFrame(
        {
            "tx_id": rng.permutation(n).astype(np.int64) * 3 + 1,
            "ts": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s"),
            "card_id": card,
            "amount": amount,
        }
    )


def reference(df: pd.DataFrame, window: pd.Timedelta | None, recent: pd.Timedelta | None,
              factor: float) -> pd.DataFrame:  # fmt: skip
    """Each row against its card's earlier rows, with a pandas loop (indexed by tx_id)."""
    rows = {}
    for _, g in df.sort_values(["card_id", "ts", "tx_id"]).groupby("card_id"):
        for i in range(len(g)):
            t, amount = g["ts"].iloc[i], g["amount"].iloc[i]
            before = g.iloc[:i]  # strictly before in (ts, tx_id) order
            hist = before if window is None else before[before["ts"] > t - window]
            near = before if recent is None else before[before["ts"] > t - recent]
            median = hist["amount"].median() if len(hist) else np.nan
            if median > 0:
                ratio = amount / median
                over = float((near["amount"] > median * factor).sum())
                top = near["amount"].max() / median if len(near) else np.nan
            else:
                ratio = over = top = np.nan
            rows[g["tx_id"].iloc[i]] = {"ratio": ratio, "over": over, "max_ratio": top}
    return pd.DataFrame.from_dict(rows, orient="index")


CASES = [("30d", "7d", 3.0), ("2d", "1h", 1.0), ("all", "1d", 2.0), ("1d", "all", 0.5)]


@pytest.mark.parametrize(("window", "recent", "factor"), CASES)
def test_batch_and_online_match_a_pandas_loop(window, recent, factor):
    df = frame()
    conf = {
        "amount_median": [
            {"entity": ["card_id"], "window": window, "recent": recent, "factor": factor}
        ]
    }
    plan = make_plan(conf, list(df.columns))
    names = {
        "ratio": f"card_id_amount_median_ratio_{window}",
        "over": f"card_id_amounts_over_median_{recent}",
        "max_ratio": f"card_id_max_amount_median_ratio_{recent}",
    }
    assert plan.feature_names == list(names.values())
    span = {"all": None, "1h": pd.Timedelta(hours=1)}
    span |= {f"{d}d": d * DAY for d in (1, 2, 7, 30)}
    want = reference(df, span[window], span[recent], factor)
    assert want["ratio"].notna().sum() > 600 and (want["over"] > 0).sum() > 20  # not vacuous
    want = want.rename(columns=names)

    batch = features_frame(df, conf).set_index("tx_id")[list(names.values())]
    assert_same(batch, want.loc[batch.index], rtol=1e-12)

    online = replay(df, conf, warm=0.4)  # the state warm-started from the first 40% of rows
    assert_same(online, want, rtol=1e-12)


def test_later_rows_and_the_current_row_never_count():
    """Changing the amounts of every row from some time on changes no earlier row's values,
    and a row's own amount enters only its ratio's numerator."""
    df = frame(seed=11)
    conf = {"amount_median": [{"entity": ["card_id"], "window": "7d", "recent": "2d"}]}
    cut = pd.Timestamp("2025-01-25", tz="UTC")
    changed = df.assign(amount=np.where(df["ts"] >= cut, df["amount"] * 100 + 7, df["amount"]))
    before = features_frame(df, conf).set_index("tx_id")
    after = features_frame(changed, conf).set_index("tx_id")
    early = df.loc[df["ts"] < cut, "tx_id"]
    pd.testing.assert_frame_equal(before.loc[early], after.loc[early])
    # the row itself: doubling one amount doubles its ratio and leaves its counts alone
    i = int(np.flatnonzero(before["card_id_amount_median_ratio_7d"].notna().to_numpy())[-1])
    tx = before.index[i]
    doubled = df.assign(amount=np.where(df["tx_id"] == tx, df["amount"] * 2, df["amount"]))
    again = features_frame(doubled, conf).set_index("tx_id").loc[tx]
    assert again["card_id_amount_median_ratio_7d"] == pytest.approx(
        2 * before.loc[tx, "card_id_amount_median_ratio_7d"]
    )
    over = "card_id_amounts_over_median_2d"
    assert again[over] == before.loc[tx, over]


def test_bad_factor_and_unknown_output_are_named():
    df = frame(50)
    with pytest.raises(ValueError, match=r"amount_median\[0\].*factor"):
        make_plan({"amount_median": [{"entity": ["card_id"], "factor": 0}]}, list(df.columns))
    with pytest.raises(ValueError, match=r"amount_median\[0\].*unknown output"):
        make_plan(
            {"amount_median": [{"entity": ["card_id"], "outputs": ["mean"]}]}, list(df.columns)
        )
