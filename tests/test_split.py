"""Time-based splits: fold dates, lazy train/test selection, known-compromised card removal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fraud_dask.split import (
    Fold,
    SplitConf,
    data_time_range,
    known_compromised,
    make_folds,
    select_test,
    select_train,
    split_frame,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "split"
D = dt.date


def load_conf(name: str, **overrides: object):
    """The real YAML option merged onto the schema, as Hydra does."""
    return OmegaConf.merge(
        OmegaConf.structured(SplitConf),
        OmegaConf.load(CONFIGS / f"{name}.yaml"),
        OmegaConf.create(overrides),
    )


def handbook_frame(handbook_dir: Path) -> dd.DataFrame:
    raw = dd.read_parquet(str(handbook_dir / "raw"))
    frame = raw.rename(
        columns={
            "TRANSACTION_ID": "tx_id",
            "TX_DATETIME": "ts",
            "CUSTOMER_ID": "card_id",
            "TERMINAL_ID": "terminal_id",
            "TX_AMOUNT": "amount",
            "TX_FRAUD": "is_fraud",
        }
    )[["tx_id", "ts", "card_id", "terminal_id", "amount", "is_fraud"]]
    return frame.assign(ts=frame.ts.dt.tz_localize("UTC"))


def synthetic(n: int = 6000, days: int = 60, seed: int = 0) -> pd.DataFrame:
    """Transactions over `days` days, ~4 % fraud, label delays of 0-20 days."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    ts = start + pd.to_timedelta(rng.integers(0, days * 86400, n), unit="s")
    is_fraud = (rng.random(n) < 0.04).astype("int8")
    label_ts = ts + pd.to_timedelta(rng.integers(0, 20 * 86400, n), unit="s")
    return pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": ts,
            "card_id": rng.integers(0, 150, n).astype("int64"),
            "amount": rng.gamma(2.0, 30.0, n),
            "is_fraud": is_fraud,
            "label_ts": label_ts,
        }
    )


def to_dask(pdf: pd.DataFrame, npartitions: int = 7) -> dd.DataFrame:
    # Rows shuffled so every partition mixes days: the split must not rely on time order.
    shuffled = pdf.sample(frac=1.0, random_state=1)
    return dd.from_pandas(shuffled, npartitions=npartitions, sort=False)


def pandas_test_set(pdf: pd.DataFrame, fold: Fold, rule: str, since: str) -> pd.DataFrame:
    """Independent, day-by-day reference of the removal rule."""
    day = pdf.ts.dt.floor("D")
    kept = []
    for i in range(fold.test_days):
        d = pd.Timestamp(fold.test_start, tz="UTC") + pd.Timedelta(days=i)
        frauds = pdf[pdf.is_fraud == 1]
        if since == "train_start":
            frauds = frauds[frauds.ts >= pd.Timestamp(fold.train_start, tz="UTC")]
        if rule == "fraud_day":
            frauds = frauds[day[frauds.index] <= d - pd.Timedelta(days=fold.delay_days + 1)]
        else:
            frauds = frauds[frauds.label_ts < d]
        rows = pdf[day == d]
        kept.append(rows[~rows.card_id.isin(set(frauds.card_id))])
    return pd.concat(kept)


def test_handbook_yaml_gives_the_books_fold_dates() -> None:
    conf = load_conf("handbook")
    (baseline,) = make_folds(conf, "baseline")
    assert baseline.to_dict() == {
        "name": "baseline",
        "train_start": "2018-07-25",
        "train_end": "2018-07-31",
        "delay_days": 7,
        "test_start": "2018-08-08",
        "test_end": "2018-08-14",
    }
    test_folds = make_folds(conf, "test")
    assert [f.train_start for f in test_folds] == [
        D(2018, 8, 15),
        D(2018, 8, 8),
        D(2018, 8, 1),
        D(2018, 7, 25),
    ]
    assert test_folds[0].test_start == D(2018, 8, 29) and test_folds[0].test_end == D(2018, 9, 4)
    # The oldest test fold is the baseline split, as in the book.
    assert test_folds[-1].to_dict() | {"name": "baseline"} == baseline.to_dict()
    valid = make_folds(conf, "validation")
    assert [f.train_start for f in valid] == [
        D(2018, 7, 11),
        D(2018, 7, 4),
        D(2018, 6, 27),
        D(2018, 6, 20),
    ]
    assert valid[0].test_start == D(2018, 7, 25) and valid[0].test_end == D(2018, 7, 31)
    assert all((f.train_days, f.delay_days, f.test_days) == (7, 7, 7) for f in valid + test_folds)
    # Every fold lies inside the handbook's days (2018-04-01 .. 2018-09-30).
    data_range = (pd.Timestamp("2018-04-01 00:00:31"), pd.Timestamp("2018-09-30 23:59:57"))
    assert make_folds(conf, "test", data_range=data_range) == test_folds


def test_handbook_baseline_split_matches_the_book(client, handbook_dir: Path) -> None:
    frame = handbook_frame(handbook_dir)
    conf = load_conf("handbook")
    (fold,) = make_folds(conf, "baseline", data_range=data_time_range(frame))
    train, test = split_frame(frame, fold, conf)
    n_train, train_frauds, n_test, test_frauds = dd.compute(
        train.map_partitions(len).sum(),
        train.is_fraud.sum(),
        test.map_partitions(len).sum(),
        test.is_fraud.sum(),
    )
    # The book: 67,240 training transactions (598 frauds); 58,264 test transactions with 385
    # frauds after removing the cards known compromised.
    assert (n_train, train_frauds) == (67240, 598)
    assert (n_test, test_frauds) == (58264, 385)
    # Columns derived from the test frame stay row-aligned with it (no shuffle by index: the
    # handbook's index restarts in every file).
    derived = test.assign(double=test.amount * 2, day=test.ts.dt.floor("D")).compute()
    assert len(derived) == 58264 and derived.tx_id.is_unique
    assert (derived.double == derived.amount * 2).all()
    assert (derived.day == derived.ts.dt.floor("D")).all()


@pytest.mark.parametrize("rule", ["fraud_day", "label_ts"])
@pytest.mark.parametrize("since", ["train_start", "all"])
def test_removal_equals_a_day_by_day_pandas_reference(client, rule: str, since: str) -> None:
    pdf = synthetic()
    conf = OmegaConf.merge(
        OmegaConf.structured(SplitConf),
        {
            "train_days": 14,
            "delay_days": 5,
            "test_days": 10,
            "n_folds": 2,
            "known_compromised": rule,
            "known_since": since,
        },
    )
    folds = make_folds(conf, "test", data_range=(pdf.ts.min(), pdf.ts.max()))
    assert folds[0].test_end == pdf.ts.max().date()
    frame = to_dask(pdf)
    for fold in folds:
        train, test = split_frame(frame, fold, conf)
        got_train, got_test = dd.compute(train, test)
        expected = pandas_test_set(pdf, fold, rule, since)
        assert 0 < len(expected) < (pdf.ts.dt.date.between(fold.test_start, fold.test_end)).sum()
        assert sorted(got_test.tx_id) == sorted(expected.tx_id)
        # Index and columns survive the filtering; rows are untouched.
        pd.testing.assert_frame_equal(got_test.sort_index(), pdf.loc[got_test.index].sort_index())
        in_train = pdf.ts.dt.date.between(fold.train_start, fold.train_end)
        assert sorted(got_train.tx_id) == sorted(pdf.tx_id[in_train])
        assert got_train.is_fraud.sum() == pdf.is_fraud[in_train].sum() > 0


def test_rule_none_keeps_every_test_row(client) -> None:
    pdf = synthetic(seed=3)
    fold = Fold("f", D(2024, 1, 10), D(2024, 1, 16), D(2024, 1, 24), D(2024, 1, 30))
    got = select_test(to_dask(pdf), fold, rule="none").compute()
    expected = pdf[pdf.ts.dt.date.between(fold.test_start, fold.test_end)]
    assert sorted(got.tx_id) == sorted(expected.tx_id)
    assert len(select_train(to_dask(pdf), fold).compute()) == (
        pdf.ts.dt.date.between(fold.train_start, fold.train_end).sum()
    )


def test_known_compromised_gives_first_known_day(client) -> None:
    utc = "UTC"
    pdf = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-03 23:59", "2024-01-02 00:00", "2024-01-05 12:00"]
            ).tz_localize(utc),
            "card_id": [1, 1, 2, 3],
            "is_fraud": [1, 1, 1, 0],
            "label_ts": pd.to_datetime(
                ["2024-01-04 00:00", "2024-01-04 01:00", "2024-01-02 00:00", "2024-01-06 00:00"]
            ).tz_localize(utc),
        }
    )
    fold = Fold("f", D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 4), D(2024, 1, 12))
    frame = dd.from_pandas(pdf, npartitions=2)
    by_day = known_compromised(frame, fold, rule="fraud_day").compute().set_index("card_id")
    # Delay 1 day: a fraud on day F is known from F + 2.
    assert by_day.known_from.to_dict() == {
        1: pd.Timestamp("2024-01-03", tz=utc),
        2: pd.Timestamp("2024-01-04", tz=utc),
    }
    by_label = known_compromised(frame, fold, rule="label_ts").compute().set_index("card_id")
    # Known from the first midnight strictly after label_ts.
    assert by_label.known_from.to_dict() == {
        1: pd.Timestamp("2024-01-05", tz=utc),
        2: pd.Timestamp("2024-01-03", tz=utc),
    }


def test_relative_default_config_anchors_to_the_data_end() -> None:
    conf = load_conf("default")
    data_range = (pd.Timestamp("2024-01-01 00:05", tz="UTC"), pd.Timestamp("2024-04-30 18:00"))
    tests = make_folds(conf, "test", data_range=data_range)
    assert tests[0].test_end == D(2024, 4, 30)
    assert [f.test_start for f in tests] == [D(2024, 4, 24), D(2024, 4, 17), D(2024, 4, 10)]
    assert (tests[0].train_days, tests[0].delay_days, tests[0].test_days) == (14, 7, 7)
    (baseline,) = make_folds(conf, "baseline", data_range=data_range)
    assert baseline == Fold("baseline", *[getattr(tests[-1], k) for k in _DATE_FIELDS])
    valid = make_folds(conf, "validation", data_range=data_range)
    assert valid[0].test_end < tests[-1].test_start
    assert valid[0].test_end == baseline.train_start + dt.timedelta(days=13)
    shifted = make_folds(
        load_conf("default", offset_days=2, anchor="data_end"), "test", data_range=data_range
    )
    assert shifted[0].test_end == D(2024, 4, 28)
    start = make_folds(
        load_conf("default", anchor="data_start", offset_days=30), "baseline", data_range
    )
    assert start[0].train_start == D(2024, 1, 31)


_DATE_FIELDS = ("train_start", "train_end", "test_start", "test_end")


def test_explicit_dates_imply_lengths() -> None:
    conf = OmegaConf.merge(
        OmegaConf.structured(SplitConf),
        {
            "train_start": "2024-02-01",
            "train_end": "2024-02-20",
            "test_start": "2024-02-24",
            "test_end": "2024-02-29",
            "n_folds": 2,
        },
    )
    (baseline,) = make_folds(conf, "baseline")
    assert (baseline.train_days, baseline.delay_days, baseline.test_days) == (20, 3, 6)
    tests = make_folds(conf, "test")
    # Step defaults to the test length; the oldest test fold is the baseline.
    assert [f.train_start for f in tests] == [D(2024, 2, 7), D(2024, 2, 1)]
    assert tests[0].test_end == D(2024, 3, 6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train_start": "2024-13-01"}, "split.train_start: got '2024-13-01'"),
        ({"train_start": "2024-02-01", "train_end": "2024-02-10", "train_days": 7}, "imply 10"),
        ({"train_end": "2024-02-10", "test_start": "2024-02-05"}, "delay_days=-6"),
        ({"train_start": "2024-02-01", "n_folds": 0}, "split.n_folds: got 0"),
        ({"train_start": "2024-02-01", "test_days": 0}, "split.test_days: got 0"),
        ({}, "pass data_range"),
    ],
)
def test_bad_configs_name_the_field(overrides: dict, message: str) -> None:
    conf = OmegaConf.merge(OmegaConf.structured(SplitConf), overrides)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_folds(conf, "test")


def test_fold_outside_the_data_is_an_error() -> None:
    conf = load_conf("handbook")
    data_range = (pd.Timestamp("2018-07-01"), pd.Timestamp("2018-08-31"))
    with pytest.raises(ValueError, match=r"fold test-0 spans 2018-08-15\.\.2018-09-04"):
        make_folds(conf, "test", data_range=data_range)
    expected = (
        r"fold validation-2 spans 2018-06-27\.\.2018-07-17, outside the data's days 2018-07-01"
    )
    with pytest.raises(ValueError, match=expected):
        make_folds(conf, "validation", data_range=data_range)


def test_missing_columns_are_named(client) -> None:
    pdf = synthetic(n=500).drop(columns=["label_ts"])
    fold = Fold("f", D(2024, 1, 10), D(2024, 1, 16), D(2024, 1, 24), D(2024, 1, 30))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label_ts'\]"):
        select_test(to_dask(pdf), fold, rule="label_ts")
    with pytest.raises(ValueError, match=r"select_train\(f\): missing column\(s\) \['ts'\]"):
        select_train(to_dask(pdf.drop(columns=["ts"])), fold)


def test_composed_run_config_carries_the_split_options() -> None:
    from fraud_dask.config import compose

    handbook = compose(["split=handbook"]).split
    assert [f.train_start for f in make_folds(handbook, "test")][0] == D(2018, 8, 15)
    assert make_folds(handbook, "baseline")[0].test_start == D(2018, 8, 8)
    default = compose(["split=default", "split.n_folds=2"]).split
    assert compose([]).split.mode == "auto"  # the default: folds sized from the data
    data_range = (pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-06-30", tz="UTC"))
    assert [f.test_end for f in make_folds(default, "test", data_range)] == [
        D(2024, 6, 30),
        D(2024, 6, 23),
    ]
    with pytest.raises(Exception, match="known_since"):
        compose(["split.known_since=yesterday"])
