"""split.mode=auto: folds sized from the source's span and fraud counts, and the early-stopping
period that holds enough frauds. The expected folds are counted by hand from the daily table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from fraud_dask.split import (
    SplitConf,
    SplitMode,
    daily_counts,
    make_folds,
    plan_folds,
    valid_days_for,
)


def _daily(start: str, days: int, rows: int, frauds_per_day: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.Index([d.date() for d in pd.date_range(start, periods=days, freq="D")], name="day")
    return pd.DataFrame(
        {"rows": np.full(days, rows), "frauds": rng.poisson(frauds_per_day, days)}, index=index
    )


def _frauds(daily: pd.DataFrame, first: dt.date, last: dt.date) -> int:
    return int(daily.loc[(daily.index >= first) & (daily.index <= last), "frauds"].sum())


def _auto(**kw) -> SplitConf:
    return SplitConf(mode=SplitMode.auto, n_folds=kw.pop("n_folds", 3), **kw)


def test_two_year_source_gets_capped_training_and_label_delay_gap():
    daily = _daily("2019-01-01", 731, 2400, 14.0)
    plan = plan_folds(_auto(min_test_frauds=80, max_train_days=180), daily, label_delay_days=30)
    test = plan.folds["test"]
    assert [f.name for f in test] == ["test-0", "test-1", "test-2"]
    assert test[0].test_end == dt.date(2020, 12, 31)  # the newest fold ends on the last day
    for f in test:
        assert f.train_days == 180  # capped: 680 days of history were available
        assert f.delay_days == 30  # the source's label delay
        assert _frauds(daily, f.test_start, f.test_end) >= 80
    # consecutive, non-overlapping test folds
    assert test[1].test_end == test[0].test_start - dt.timedelta(days=1)
    assert plan.lengths["test_days"] % 7 == 0
    # the shortest whole number of weeks that holds the minimum in every fold
    shorter = plan.lengths["test_days"] - 7
    if shorter >= 7:
        ends = [daily.index[-1] - dt.timedelta(days=i * shorter) for i in range(3)]
        assert min(_frauds(daily, e - dt.timedelta(days=shorter - 1), e) for e in ends) < 80
    assert any("max_train_days" in r for r in plan.reasons)
    assert plan.warnings == []
    counts = plan.to_dict()["folds"]["test"][0]
    assert counts["test_frauds"] == _frauds(daily, test[0].test_start, test[0].test_end)
    assert counts["train_rows"] == 180 * 2400


def test_rare_fraud_widens_test_folds_before_dropping_folds():
    # 0.5 frauds a day: 100 frauds need about 200 days per fold
    daily = _daily("2020-01-01", 700, 5000, 0.5, seed=3)
    plan = plan_folds(_auto(min_test_frauds=60), daily, label_delay_days=14)
    folds = plan.folds["test"]
    assert plan.lengths["test_days"] > 7
    got = [_frauds(daily, f.test_start, f.test_end) for f in folds]
    if len(folds) == 3:
        assert min(got) >= 60
    assert all(f.train_start >= daily.index[0] for f in folds)


def test_short_clean_source_is_flagged_not_averaged_silently():
    daily = _daily("2021-03-01", 35, 3000, 0.8, seed=1)
    plan = plan_folds(_auto(), daily, label_delay_days=7)
    assert plan.lengths["n_folds"] < 3
    assert plan.lengths["train_days"] >= 7
    assert any("split.min_test_frauds" in w for w in plan.warnings)
    assert any("split.min_train_frauds" in w for w in plan.warnings)
    fold = plan.folds["test"][0]
    assert fold.test_end == daily.index[-1] and fold.train_start >= daily.index[0]


def test_history_too_short_for_one_fold_is_an_error_naming_the_span():
    daily = _daily("2021-03-01", 12, 3000, 5.0)
    with pytest.raises(ValueError, match="spans 12 days"):
        plan_folds(_auto(), daily, label_delay_days=7)


def test_explicit_lengths_are_kept_and_dates_refused():
    daily = _daily("2019-01-01", 400, 2000, 10.0)
    plan = plan_folds(_auto(train_days=60, test_days=14, delay_days=3), daily, label_delay_days=30)
    assert {f.train_days for f in plan.folds["test"]} == {60}
    assert {f.test_days for f in plan.folds["test"]} == {14}
    assert {f.delay_days for f in plan.folds["test"]} == {3}
    with pytest.raises(ValueError, match="train_start"):
        plan_folds(_auto(train_start="2019-02-01"), daily, label_delay_days=7)
    with pytest.raises(ValueError, match="plan_folds"):
        make_folds(_auto(), "test", (pd.Timestamp("2019-01-01"), pd.Timestamp("2020-01-01")))


def test_validation_folds_fit_before_the_test_folds_when_a_search_needs_them():
    daily = _daily("2019-01-01", 365, 2000, 10.0)
    plan = plan_folds(_auto(), daily, label_delay_days=7, need_validation=True)
    oldest_test = min(f.train_start for f in plan.folds["test"])
    for f in plan.folds["validation"]:
        assert f.train_start >= daily.index[0]
        assert f.test_end < oldest_test + dt.timedelta(days=plan.lengths["train_days"])


def test_early_stopping_period_holds_the_minimum_frauds():
    daily = _daily("2019-01-01", 200, 2000, 12.0, seed=5)
    plan = plan_folds(_auto(min_test_frauds=50), daily, label_delay_days=7)
    fold = plan.folds["test"][0]
    days, frauds, warning = valid_days_for(
        daily, fold, valid_days=None, min_frauds=100, max_share=0.25
    )
    assert warning is None and frauds >= 100
    assert frauds == _frauds(daily, fold.train_end - dt.timedelta(days=days - 1), fold.train_end)
    # one day fewer would not have held them
    assert _frauds(daily, fold.train_end - dt.timedelta(days=days - 2), fold.train_end) < 100

    # one day, as the old default: kept, and flagged
    days, frauds, warning = valid_days_for(
        daily, fold, valid_days=1, min_frauds=100, max_share=0.25
    )
    assert days == 1 and frauds == int(daily.loc[fold.train_end, "frauds"])
    assert warning and "model.valid_min_frauds=100" in warning

    # a clean source cannot reach the minimum within the share: the share, flagged
    clean = daily.assign(frauds=0)
    days, frauds, warning = valid_days_for(
        clean, fold, valid_days=None, min_frauds=100, max_share=0.25
    )
    assert days == int(fold.train_days * 0.25) and frauds == 0 and warning
    assert valid_days_for(daily, fold, valid_days=0, min_frauds=100, max_share=0.25)[0] == 0


def test_daily_counts_match_pandas(client):
    import dask.dataframe as dd

    rng = np.random.default_rng(7)
    n = 5000
    ts = pd.Timestamp("2024-02-27 20:00", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 9 * 86400, n)), unit="s"
    )
    pdf = pd.DataFrame({"ts": ts, "is_fraud": (rng.random(n) < 0.03).astype("int8")})
    pdf = pdf[(pdf.ts.dt.day != 1)]  # 1 March has no row: it must still appear, with zeros
    got = daily_counts(dd.from_pandas(pdf, npartitions=4))
    day = pdf.ts.dt.tz_convert("UTC").dt.date
    expected = pdf.groupby(day).is_fraud.agg(["size", "sum"])
    assert got.loc[dt.date(2024, 3, 1)].tolist() == [0, 0]
    assert len(got) == (max(day) - min(day)).days + 1
    for d, row in expected.iterrows():
        assert got.loc[d, "rows"] == row["size"] and got.loc[d, "frauds"] == row["sum"]


def test_training_periods_hold_frauds_and_test_folds_stay_bounded():
    # 44 frauds in 120 days, all in the last 60: a fold whose training period holds none is
    # never chosen (it could not train), and a test fold never passes split.max_test_days
    daily = _daily("2024-01-01", 120, 500, 0.0)
    late = daily.index >= dt.date(2024, 3, 1)
    daily.loc[late, "frauds"] = np.random.default_rng(2).poisson(0.75, int(late.sum()))
    plan = plan_folds(_auto(max_test_days=35), daily, label_delay_days=7)
    for f in plan.folds["test"]:
        assert _frauds(daily, f.train_start, f.train_end) >= 1
        assert f.test_days <= 35
    assert plan.warnings  # too few frauds to measure: said

    # no fraud at all before the last weeks: no fold can train, a clear error
    empty = _daily("2024-01-01", 60, 500, 0.0)
    empty.loc[empty.index[-5:], "frauds"] = 3
    with pytest.raises(ValueError, match="too few to train and test"):
        plan_folds(_auto(), empty, label_delay_days=7)
