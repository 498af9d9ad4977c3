"""The synthetic generator: determinism, exact sizes, canonical schema, scenarios, labels."""

from __future__ import annotations

import subprocess
import sys

import dask
import numpy as np
import pandas as pd
import pytest

from fraud_dask.data.schema import STRING_DTYPE, TS_DTYPE, check_canonical
from fraud_dask.data.synthetic import (
    BASE_SCENARIOS,
    CATEGORIES,
    Scenario,
    SyntheticConf,
    client_names,
    generate,
    make_plan,
)

SMALL = {"n_rows": 20_000, "n_days": 30, "customers_per_block": 50, "seed": 7}
MEDIUM = {"n_rows": 200_000, "n_days": 60, "customers_per_block": 200, "seed": 3}


def _sync(ddf):
    with dask.config.set(scheduler="sync"):
        return ddf.compute()


def _by_id(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("tx_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    return _sync(generate(MEDIUM))


def test_same_seed_same_rows_whatever_partitions_and_scheduler(client):
    one = _by_id(_sync(generate(SMALL, npartitions=1)))
    assert make_plan(SMALL).n_blocks >= 10  # enough blocks for the partitionings to differ
    for npartitions in (3, 10):
        ddf = generate(SMALL, npartitions=npartitions)
        assert ddf.npartitions == npartitions
        other = _by_id(client.compute(ddf).result())
        pd.testing.assert_frame_equal(one, other)
    many = _by_id(_sync(generate(SMALL, npartitions=1000)))  # capped at one block each
    pd.testing.assert_frame_equal(one, many)


def test_other_seed_other_rows():
    a = _by_id(_sync(generate(SMALL)))
    b = _by_id(_sync(generate({**SMALL, "seed": 8})))
    assert len(a) == len(b)
    assert not np.allclose(a["amount"].to_numpy(), b["amount"].to_numpy())
    assert not set(a["card_id"]) & set(b["card_id"])


def test_n_rows_is_exact_and_customers_times_days_works():
    for n in (1, 999, 20_011):
        df = _sync(generate({**SMALL, "n_rows": n}))
        assert len(df) == n
        assert sorted(df["tx_id"]) == list(range(n))
    conf = {"n_rows": None, "n_customers": 300, "n_days": 10, "tx_per_customer_day": 2.0}
    df = _sync(generate(conf))
    assert len(df) == 300 * 10 * 2
    assert df["customer_id"].nunique() <= 300
    assert df["customer_id"].max() < 300


def test_partitions_bound_memory():
    conf = {**SMALL, "rows_per_partition": 3_000}
    ddf = generate(conf)
    sizes = ddf.map_partitions(len, meta=(None, "int64")).compute(scheduler="sync")
    assert ddf.npartitions == int(np.ceil(20_000 / 3_000))
    block_rows = 20_000 / make_plan(conf).n_blocks
    assert sizes.max() <= 3_000 + block_rows + 1
    assert sizes.sum() == 20_000


def test_schema_is_canonical(medium):
    check_canonical(medium, "synthetic")
    ddf = generate(MEDIUM)
    pd.testing.assert_series_equal(ddf.dtypes, medium.dtypes)  # meta matches the data
    expected = {
        "tx_id": np.dtype("int64"),
        "ts": TS_DTYPE,
        "card_id": np.dtype("int64"),
        "amount": np.dtype("float64"),
        "terminal_id": np.dtype("int64"),
        "merchant_id": np.dtype("int64"),
        "customer_id": np.dtype("int64"),
        "is_fraud": np.dtype("int8"),
        "label_ts": TS_DTYPE,
        "device_id": np.dtype("int64"),
        "ip": STRING_DTYPE,
        "email": STRING_DTYPE,
        "scenario": np.dtype("int8"),
    }
    assert list(medium.columns[:10]) == [
        "tx_id",
        "ts",
        "card_id",
        "amount",
        "terminal_id",
        "merchant_id",
        "client_id",
        "customer_id",
        "is_fraud",
        "label_ts",
    ]
    for col, dtype in expected.items():
        assert medium[col].dtype == dtype, col
    assert list(medium["client_id"].cat.categories) == client_names(5)
    assert list(medium["category"].cat.categories) == list(CATEGORIES)
    assert medium.notna().all().all()


def test_values_are_plausible(medium):
    assert medium["tx_id"].is_unique
    assert (medium["label_ts"] > medium["ts"]).all()
    start = pd.Timestamp("2025-01-01", tz="UTC")
    assert medium["ts"].min() >= start
    assert medium["ts"].max() < start + pd.Timedelta(days=60)
    assert (medium["amount"] >= 0.01).all() and np.isfinite(medium["amount"]).all()
    assert (medium["is_fraud"] == (medium["scenario"] > 0)).all()
    # card ids are tokens of at most 12 digits: never mistakable for a 13-19 digit PAN
    assert medium["card_id"].between(0, 10**12 - 1).all()
    cards_per_customer = medium.groupby("customer_id")["card_id"].nunique()
    assert cards_per_customer.max() >= 2 and cards_per_customer.min() >= 1
    assert medium.groupby("card_id")["customer_id"].nunique().max() == 1
    assert medium["client_id"].nunique() == 5
    assert medium["email"].str.fullmatch(r"u[0-9a-f]{10}@[a-z.]+").all()
    parts = medium["ip"].str.split(".", expand=True).astype(int)
    assert parts.shape[1] == 4 and parts.min().min() >= 0 and parts.max().max() <= 255
    assert medium.groupby("customer_id")["email"].nunique().max() == 1
    # each merchant has one category and one client; each terminal one merchant
    assert medium.groupby("merchant_id")["category"].nunique().max() == 1
    assert medium.groupby("merchant_id")["client_id"].nunique().max() == 1
    assert medium.groupby("terminal_id")["merchant_id"].nunique().max() == 1
    # amounts differ by category: travel and electronics dearer than groceries and digital goods
    genuine = medium[medium["scenario"] == 0]
    median = genuine.groupby("category", observed=True)["amount"].median()
    assert median["travel"] > median["electronics"] > median["grocery"] > median["digital_goods"]


def test_seasonality(medium):
    genuine = medium[medium["scenario"] == 0]
    by_hour = genuine["ts"].dt.hour.value_counts()
    assert by_hour.loc[[11, 12, 13, 17, 18]].mean() > 5 * by_hour.loc[[2, 3, 4]].mean()
    per_day = genuine.groupby(genuine["ts"].dt.floor("D")).size()
    by_weekday = per_day.groupby(per_day.index.day_of_week).mean()
    assert by_weekday[5] > by_weekday[6] * 1.15  # Saturday busier than Sunday
    assert by_weekday[4] > by_weekday[0] * 1.05  # Friday busier than Monday


def test_fraud_rate_and_every_scenario(medium):
    # fraud_rate is the total share of fraud rows, friendly fraud included
    assert medium["is_fraud"].mean() == pytest.approx(0.007, rel=0.25)
    counts = medium["scenario"].value_counts()
    for scenario in BASE_SCENARIOS:
        assert counts.get(int(scenario), 0) > 0, scenario.name
    assert int(Scenario.emerging_pattern) not in counts  # only with drift.new_pattern
    conf = SyntheticConf()
    shares = conf.scenarios
    friendly = counts[int(Scenario.friendly_fraud)]
    n_base = counts.drop([0, int(Scenario.friendly_fraud)]).sum()
    for scenario in BASE_SCENARIOS[1:]:
        expected = getattr(shares, scenario.name)
        assert counts[int(scenario)] / n_base == pytest.approx(expected, abs=0.12), scenario.name
    # friendly fraud: overlap.friendly_fraud disputed genuine purchases per other fraud row
    assert friendly / n_base == pytest.approx(conf.overlap.friendly_fraud, rel=0.2)
    high = _sync(generate({**MEDIUM, "n_rows": 50_000, "fraud_rate": 0.05}))
    assert high["is_fraud"].mean() == pytest.approx(0.05, rel=0.25)


def test_fraud_rate_is_the_total_with_friendly_fraud():
    # the other scenarios make up fraud_rate / (1 + friendly_fraud) of the rows: exactly the
    # rows of that rate without friendly fraud, and friendly fraud relabels genuine ones
    friendly = SyntheticConf().overlap.friendly_fraud
    assert friendly > 0  # on by default
    assert make_plan({"fraud_rate": 0.007}).fraud_rate == 0.007 / (1 + friendly)
    assert make_plan({"overlap": {"friendly_fraud": 0}}).fraud_rate == 0.007
    conf = {**SMALL, "n_rows": 60_000, "fraud_rate": 0.03}
    got = _by_id(_sync(generate({**conf, "overlap": {"friendly_fraud": 0.5}})))
    alone = _by_id(
        _sync(generate({**conf, "fraud_rate": 0.03 / 1.5, "overlap": {"friendly_fraud": 0.0}}))
    )
    friendly = got["scenario"] == Scenario.friendly_fraud
    pd.testing.assert_frame_equal(got[~friendly], alone[~friendly])
    assert (alone.loc[friendly, "scenario"] == 0).all()
    assert got["is_fraud"].mean() == pytest.approx(0.03, rel=0.2)
    assert friendly.sum() == pytest.approx(0.5 * (got["is_fraud"].sum() - friendly.sum()), rel=0.2)


def test_scenarios_look_like_their_story(medium):
    df = medium.sort_values(["ts", "tx_id"])
    testing = df[df["scenario"] == Scenario.card_testing]
    assert testing["amount"].max() <= 4.0
    assert set(testing["category"]) <= {"online", "digital_goods"}
    # a card-testing run is many transactions on one card within minutes
    runs = testing.groupby("device_id").agg(
        n=("tx_id", "size"), span=("ts", lambda s: s.max() - s.min()), cards=("card_id", "nunique")
    )
    assert runs["n"].min() >= 8 and (runs["cards"] == 1).all()
    assert runs["span"].median() < pd.Timedelta(minutes=30)

    # account takeover: a device the customer never used before (or, for the shared-device
    # share of the incidents, the victim's own usual device), then high amounts
    first_use = df.groupby(["customer_id", "device_id"])["ts"].transform("min")
    ato = df["scenario"] == Scenario.account_takeover
    usual = df["device_id"] == df["customer_id"] * 4
    customers_devices = df.loc[df["scenario"] == 0, ["customer_id", "device_id"]]
    genuine_pairs = set(map(tuple, customers_devices.to_numpy()))
    ato_pairs = set(map(tuple, df.loc[ato & ~usual, ["customer_id", "device_id"]].to_numpy()))
    assert len(ato_pairs) > 10 and not ato_pairs & genuine_pairs
    assert (df.loc[ato, "ts"] >= first_use[ato]).all()
    incident = df["scenario"].isin([Scenario.stolen_card, Scenario.account_takeover])
    shared = SyntheticConf().overlap.shared_device
    assert usual[incident].mean() == pytest.approx(shared, abs=0.15)
    genuine_median = df.loc[df["scenario"] == 0, "amount"].median()
    assert df.loc[ato, "amount"].median() > 1.5 * genuine_median

    # stolen card: bursts of dear purchases within hours
    stolen = df[df["scenario"] == Scenario.stolen_card]
    bursts = stolen.groupby("device_id")["ts"].agg(lambda s: s.max() - s.min())
    assert bursts.median() < pd.Timedelta(hours=12)
    assert stolen["amount"].median() > 2 * genuine_median

    # compromised terminal: every genuine-looking transaction there within the window is fraud
    comp = df[df["scenario"] == Scenario.compromised_terminal]
    for terminal, rows in comp.groupby("terminal_id"):
        at = df[(df["terminal_id"] == terminal) & df["ts"].between(rows.ts.min(), rows.ts.max())]
        assert (at["is_fraud"] == 1).all(), terminal


def test_labels_arrive_late(medium):
    delay = (medium["label_ts"] - medium["ts"]) / pd.Timedelta(days=1)
    fraud = medium["is_fraud"] == 1
    np.testing.assert_allclose(delay[~fraud], 7.0)
    assert delay[fraud].min() >= 1.0 and delay[fraud].max() <= 90.0
    assert 7.0 <= delay[fraud].median() <= 14.0  # configured median: 10 days
    assert delay[fraud].quantile(0.9) > 14.0  # weeks for some


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"fraud_rate": 1.5}, "data.synthetic.fraud_rate"),
        ({"n_rows": 0}, "data.synthetic.n_rows"),
        ({"n_days": 0}, "data.synthetic.n_days"),
        ({"start_date": "yesterday"}, "data.synthetic.start_date"),
        ({"scenarios": {"stolen_card": -1}}, "data.synthetic.scenarios"),
        ({"n_rowz": 10}, "n_rowz"),
        ({"n_rows": "many"}, "n_rows"),
    ],
)
def test_bad_config_is_named(override, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        generate({**SMALL, **override})


def test_importing_the_schema_stays_light():
    code = (
        "import sys, fraud_dask.data.synthetic as s; s.SyntheticConf(); s.make_plan({});"
        "print(sorted(m for m in ('numpy', 'pandas', 'dask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
