"""The generator's drift options: a new fraud pattern, a client's shift, new label delays."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from fraud_dask.data.synthetic import Scenario, generate

BASE = {"n_rows": 60_000, "n_days": 40, "customers_per_block": 100, "seed": 4}
START = "2025-01-21"  # day 20 of 40


def _rows(conf: dict) -> pd.DataFrame:
    with dask.config.set(scheduler="sync"):
        df = generate(conf).compute()
    return df.set_index("tx_id").sort_index()


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return _rows(BASE)


def _with(**drift) -> dict:
    return {**BASE, "drift": drift}


def test_new_pattern_starts_on_its_day_at_its_category(base):
    conf = _with(new_pattern={"start_date": START, "category": "pharmacy", "rate": 0.004})
    got = _rows(conf)
    assert len(got) == len(base)
    before = base["ts"] < pd.Timestamp(START, tz="UTC")
    # nothing changes before the start; after it, the pattern's rows replace genuine rows
    pd.testing.assert_frame_equal(got[before], base[before])
    new = got["scenario"] == Scenario.emerging_pattern
    keys = ["ts", "card_id", "terminal_id", "amount", "scenario"]
    both = base[keys].merge(got.loc[~new, keys], how="left", on=keys, indicator=True)
    replaced = both["_merge"] == "left_only"
    assert len(both) == len(base)  # no row of the base matches twice
    assert replaced.sum() == new.sum()
    assert (both.loc[replaced, "scenario"] == 0).all()
    pattern = got[new]
    assert (pattern["ts"] >= pd.Timestamp(START, tz="UTC")).all()
    assert set(pattern["category"].astype(str)) == {"pharmacy"}
    assert pattern["amount"].between(0.5, 5.0).all()
    assert (pattern["is_fraud"] == 1).all()
    after = (~before).sum()
    assert len(pattern) == pytest.approx(0.004 * after, rel=0.3)
    # runs of 6 payments on one card, one site, within minutes
    runs = pattern.groupby("device_id").agg(
        n=("card_id", "size"),
        cards=("card_id", "nunique"),
        sites=("terminal_id", "nunique"),
        span=("ts", lambda s: s.max() - s.min()),
    )
    assert (runs["n"] == 6).all() and (runs["cards"] == 1).all() and (runs["sites"] == 1).all()
    assert runs["span"].median() < pd.Timedelta(minutes=15)


def test_new_pattern_of_one_client():
    got = _rows(_with(new_pattern={"start_date": START, "client": "client_02"}))
    pattern = got[got["scenario"] == Scenario.emerging_pattern]
    assert len(pattern) > 0
    assert set(pattern["client_id"].astype(str)) == {"client_02"}


def test_client_shift_moves_amounts_and_mix_of_that_client_only(base):
    shift = {
        "start_date": START,
        "client": "client_01",
        "amount_factor": 2.5,
        "category": "retail",
        "category_share": 0.3,
    }
    got = _rows(_with(client_shift=shift))
    after = base["ts"] >= pd.Timestamp(START, tz="UTC")
    untouched = ~after | (base["client_id"] != "client_01")
    pd.testing.assert_frame_equal(got[untouched], base[untouched])
    client = after & (got["client_id"] == "client_01")
    assert (got.loc[client, "client_id"] == base.loc[client, "client_id"]).all()
    # rows that kept their terminal: exactly the amount times the factor (rounded to cents)
    # (a row at a retail terminal may have moved onto the same one, with a new amount)
    kept = client & (got["terminal_id"] == base["terminal_id"]) & (base["category"] != "retail")
    np.testing.assert_allclose(got.loc[kept, "amount"], base.loc[kept, "amount"] * 2.5, atol=0.02)
    moved = client & (got["terminal_id"] != base["terminal_id"])
    share = moved.sum() / (client & (base["scenario"] == 0)).sum()
    assert 0.22 <= share <= 0.34  # 0.3, less the moves onto the same terminal
    assert set(got.loc[moved, "category"].astype(str)) == {"retail"}
    mix_before = (base.loc[client, "category"] == "retail").mean()
    mix_after = (got.loc[client, "category"] == "retail").mean()
    assert mix_after > mix_before + 0.2


def test_label_delay_changes_from_its_day(base):
    got = _rows(
        _with(label_delay={"start_date": START, "fraud_median_days": 30.0, "genuine_days": 3.0})
    )
    delay = (got["label_ts"] - got["ts"]) / pd.Timedelta(days=1)
    before = got["ts"] < pd.Timestamp(START, tz="UTC")
    pd.testing.assert_frame_equal(got.drop(columns="label_ts"), base.drop(columns="label_ts"))
    pd.testing.assert_series_equal(got.loc[before, "label_ts"], base.loc[before, "label_ts"])
    fraud = got["is_fraud"] == 1
    np.testing.assert_allclose(delay[~fraud & ~before], 3.0)
    assert 7.0 <= delay[fraud & before].median() <= 14.0
    assert 22.0 <= delay[fraud & ~before].median() <= 40.0


@pytest.mark.parametrize(
    ("drift", "field"),
    [
        ({"new_pattern": {"start_date": "soon"}}, "drift.new_pattern.start_date"),
        ({"new_pattern": {"category": "casino"}}, "drift.new_pattern.category"),
        ({"new_pattern": {"client": "client_99"}}, "drift.new_pattern.client"),
        ({"new_pattern": {"rate": 0.0}}, "drift.new_pattern.rate"),
        (  # a shift that is on names a client the source has (an unset one is not read)
            {"client_shift": {"start_date": "2025-02-01", "client": "nobody"}},
            "drift.client_shift.client",
        ),
        ({"client_shift": {"amount_factor": 0}}, "drift.client_shift.amount_factor"),
        ({"client_shift": {"category_share": 2}}, "drift.client_shift.category_share"),
        ({"label_delay": {"fraud_median_days": -1}}, "drift.label_delay.fraud_median_days"),
    ],
)
def test_bad_drift_is_named(drift, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        generate(_with(**drift))


OFF = {"friendly_fraud": 0.0, "shared_device": 0.0, "big_genuine": 0.0, "travel": 0.0}


def _knob(**knob: float) -> pd.DataFrame:
    """BASE with every overlap knob off but ``knob``."""
    return _rows({**BASE, "overlap": {**OFF, **knob}})


@pytest.fixture(scope="module")
def off() -> pd.DataFrame:
    return _knob()


def test_overlap_knobs_blur_fraud_and_genuine(off):
    # friendly fraud relabels genuine purchases; fraud_rate stays the total, so compare with
    # the rows of the other scenarios' rate
    got = _rows({**BASE, "fraud_rate": 0.009, "overlap": {**OFF, "friendly_fraud": 0.5}})
    alone = _rows({**BASE, "fraud_rate": 0.009 / 1.5, "overlap": OFF})
    friendly = got["scenario"] == Scenario.friendly_fraud
    others = ((got["scenario"] > 0) & ~friendly).sum()
    assert friendly.sum() == pytest.approx(0.5 * others, rel=0.2)
    assert (got.loc[friendly, "is_fraud"] == 1).all()
    assert (alone.loc[friendly, "scenario"] == 0).all()  # genuine purchases, relabelled
    pd.testing.assert_frame_equal(got[~friendly], alone[~friendly])
    assert int(Scenario.friendly_fraud) not in set(alone["scenario"])

    got = _knob(shared_device=1.0)
    incident = got["scenario"].isin([Scenario.stolen_card, Scenario.account_takeover])
    assert incident.sum() > 20
    np.testing.assert_array_equal(
        got.loc[incident, "device_id"], got.loc[incident, "customer_id"] * 4
    )
    usual_ips = set(got.loc[got["scenario"] == 0, "ip"])
    assert got.loc[incident, "ip"].isin(usual_ips).mean() > 0.9

    got = _knob(big_genuine=0.1)
    changed = got["amount"] != off["amount"]
    genuine = off["scenario"] == 0
    assert not (changed & ~genuine).any()
    assert changed[genuine].mean() == pytest.approx(0.1, abs=0.02)
    high = {"electronics", "retail", "travel", "online"}
    assert set(got.loc[changed, "category"].astype(str)) <= high
    assert got.loc[changed, "amount"].median() > 2 * off.loc[genuine, "amount"].median()


def test_travel_moves_genuine_rows_to_unfamiliar_places_and_hours(off):
    got = _knob(travel=0.1)
    assert len(got) == len(off)
    # a trip moves rows in time, so rows are matched on what they are, not on tx_id
    keys = ["ts", "card_id", "terminal_id", "amount", "device_id", "ip"]
    both = off.merge(got[keys], how="outer", on=keys, indicator=True)
    old = both[both["_merge"] == "left_only"]  # the rows as they were at home
    new = got.merge(off[keys], how="left", on=keys, indicator=True)
    new = new[new["_merge"] == "left_only"]  # the same rows on the trip
    assert len(old) == len(new) and (both["_merge"] != "right_only").sum() == len(off)
    genuine = off["scenario"] == 0
    assert (old["scenario"] == 0).all()  # only genuine purchases travel
    assert len(old) / genuine.sum() == pytest.approx(0.1, abs=0.03)
    assert set(new["scenario"]) <= {0, int(Scenario.compromised_terminal)}
    # on the customer's own device, each card as often as before
    pd.testing.assert_series_equal(
        old.groupby(["card_id", "device_id"]).size(), new.groupby(["card_id", "device_id"]).size()
    )
    # one trip per customer: at most 10 days, at hours shifted by one time zone of 3-10 hours
    span = new.groupby("customer_id")["ts"].agg(lambda t: t.max() - t.min())
    assert span.max() < pd.Timedelta(days=10, hours=10)
    shift = new.groupby("customer_id")["ts"].min() - old.groupby("customer_id")["ts"].min()
    assert (shift.abs() <= pd.Timedelta(hours=10)).mean() > 0.9
    # away from home: unfamiliar terminals, hotel or roaming IPs, dear categories, odd hours
    home = off[genuine]
    known = set(zip(home["customer_id"], home["terminal_id"], strict=True))
    familiar = [p in known for p in zip(new["customer_id"], new["terminal_id"], strict=True)]
    assert np.mean(familiar) < 0.2
    ips = set(zip(home["customer_id"], home["ip"], strict=True))
    assert np.mean([p in ips for p in zip(new["customer_id"], new["ip"], strict=True)]) < 0.05
    high = ["electronics", "retail", "travel", "online"]
    assert new["category"].isin(high).mean() > old["category"].isin(high).mean() + 0.15
    night = new["ts"].dt.hour.between(0, 5).mean()
    assert night > 2 * old["ts"].dt.hour.between(0, 5).mean()


@pytest.mark.parametrize("knob", ["friendly_fraud", "shared_device", "big_genuine", "travel"])
def test_bad_overlap_is_named(knob):
    with pytest.raises(ValueError, match=rf"overlap\.{knob}"):
        generate({**BASE, "overlap": {knob: -0.1}})
