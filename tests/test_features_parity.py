"""Batch = online for every shipped feature preset and for hypothesis-generated specs.

The batch side is :func:`~fraud_dask.features.batch.features_frame` (the pure function every
partition runs; the cluster builder is checked against it in tests/test_features.py); the online
side replays the rows event by event through the online scorer's feature state
(:mod:`feature_replay`), warm-started from the first part of the history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import yaml
from feature_replay import assert_same, replay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_dask.features.batch import features_frame
from fraud_dask.features.plan import make_plan

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "features"


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """Synthetic transactions with every entity the presets name (30 days, 6,000 rows)."""
    from fraud_dask.data.synthetic import generate

    conf = {"n_rows": 6000, "n_days": 30, "customers_per_block": 20, "seed": 3}
    with dask.config.set(scheduler="synchronous"):
        return generate(conf, npartitions=2).compute()


def test_the_presets_are_all_tested():
    shipped = sorted(p.stem for p in PRESETS.glob("*.yaml"))
    assert shipped == ["default", "handbook", "handbook_plus"]


@pytest.mark.parametrize("preset", ["default", "handbook", "handbook_plus"])
def test_preset_online_equals_batch(synthetic, preset):
    conf = yaml.safe_load((PRESETS / f"{preset}.yaml").read_text())
    plan = make_plan(conf, list(synthetic.columns))
    assert plan.skipped == []  # the synthetic data has every column the preset names
    batch = features_frame(synthetic, conf).set_index("tx_id")
    online = replay(synthetic, conf, warm=0.5)
    assert list(online.columns) == plan.feature_names and len(online) == 3000
    assert_same(online, batch)


# -- hypothesis: any spec the schema accepts --------------------------------------------------
ENTITIES = [["card_id"], ["merchant_id"], ["device_id"], ["card_id", "merchant_id"]]
SPANS = ["10m", "1h", "6h", "1d", "3d", "all"]
maybe_span = st.sampled_from([None, "1h", "1d", "2d"])
entity = st.sampled_from(ENTITIES)
spans = st.lists(st.sampled_from(SPANS), min_size=1, max_size=2, unique=True)


def subset(values: list[str], min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=min_size, unique=True)


def named(prefix: str, keys: list[str]) -> dict[str, str]:
    """Name templates unique to one spec (so that specs never produce the same column)."""
    return {k: f"{prefix}_{k}_{{entity}}_{{window}}" for k in keys}


@st.composite
def feature_specs(draw: Any) -> dict[str, Any]:
    aggs = ["count", "sum", "mean", "std", "min", "max"]
    conf: dict[str, Any] = {
        "calendar": {
            "fields": draw(subset(["hour", "weekday", "weekend", "night"])),
            "timezone": draw(st.sampled_from(["UTC", "Europe/Paris", "America/New_York"])),
            "night_end_hour": draw(st.integers(0, 8)),
        },
        "windows": [],
        "risk": [],
        "recency": [],
        "amount_relative": [],
        "frequency": [],
        "target_encoding": [],
        "amount_median": [],
        "fraud_history": [],
    }
    for i in range(draw(st.integers(0, 3))):
        names = named(f"w{i}", aggs) | {"distinct": f"w{i}_distinct_{{column}}_{{window}}"}
        conf["windows"].append(
            {
                "entity": draw(entity),
                "windows": draw(spans),
                "aggs": draw(subset(aggs)),
                "distinct": draw(subset(["merchant_id", "device_id"])),
                "include_current": draw(st.booleans()),
                "offset": draw(st.sampled_from([None, "1h", "1d"])),
                "names": names,
            }
        )
    for i in range(draw(st.integers(0, 2))):
        conf["risk"].append(
            {
                "entity": draw(entity),
                "windows": draw(spans),
                "delay": draw(st.sampled_from([None, "6h", "1d"])),
                "outputs": draw(subset(["count", "frauds", "risk"], min_size=1)),
                "names": named(f"r{i}", ["count", "frauds", "risk"]),
            }
        )
    for i in range(draw(st.integers(0, 2))):
        conf["recency"].append({"entity": draw(entity), "names": {"seconds": f"s{i}_{{entity}}"}})
    for i in range(draw(st.integers(0, 2))):
        conf["amount_relative"].append(
            {
                "entity": draw(entity),
                "window": draw(st.sampled_from(["1h", "1d", "3d", "all"])),
                "include_current": draw(st.booleans()),
                "outputs": draw(subset(["ratio", "zscore"], min_size=1)),
                "names": named(f"a{i}", ["ratio", "zscore"]),
            }
        )
    for i in range(draw(st.integers(0, 2))):
        conf["frequency"].append(
            {
                "column": draw(entity),
                "window": draw(maybe_span),
                "include_current": draw(st.booleans()),
                "names": named(f"f{i}", ["count"]),
            }
        )
    for i in range(draw(st.integers(0, 2))):
        conf["target_encoding"].append(
            {
                "column": draw(entity),
                "window": draw(maybe_span),
                "delay": draw(st.sampled_from([None, "1d"])),
                "smoothing": draw(st.sampled_from([0.0, 2.5, 20.0])),
                "prior": draw(st.sampled_from([0.0, 0.05, 0.5])),
                "names": named(f"t{i}", ["te"]),
            }
        )
    for i in range(draw(st.integers(0, 2))):
        conf["amount_median"].append(
            {
                "entity": draw(entity),
                "window": draw(st.sampled_from(["1h", "1d", "3d", "all"])),
                "recent": draw(st.sampled_from(["10m", "6h", "1d", "all"])),
                "factor": draw(st.sampled_from([0.5, 1.0, 3.0])),
                "outputs": draw(subset(["ratio", "over", "max_ratio"], min_size=1)),
                "names": named(f"m{i}", ["ratio", "over", "max_ratio"]),
            }
        )
    history = ["last_age", "first_age", "share", "last_label"]
    for i in range(draw(st.integers(0, 2))):
        conf["fraud_history"].append(
            {
                "entity": draw(entity),
                "window": draw(st.sampled_from(["2d", "3d", "all"])),
                "delay": draw(st.sampled_from([None, "6h", "1d"])),
                "outputs": draw(subset(history, min_size=1)),
                "names": named(f"h{i}", history),
            }
        )
    return conf


def events(n: int, seed: int) -> pd.DataFrame:
    """Rows with same-time ties, tx_id out of time order, missing devices and unknown labels."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-03-29", tz="UTC")  # a DST change in Paris and New York nearby
    ts = start + pd.to_timedelta(rng.integers(0, 5 * 24 * 6, n) * 10, unit="min")
    device = pd.Series(rng.integers(0, 15, n)).astype("str").astype(pd.StringDtype(na_value=np.nan))
    device[rng.random(n) < 0.15] = np.nan
    label_ts = pd.Series(ts + pd.to_timedelta(rng.integers(0, 3 * 24, n), unit="h"))
    label_ts[rng.random(n) < 0.1] = pd.NaT  # never labelled
    return pd.DataFrame(
        {
            "tx_id": rng.permutation(n).astype(np.int64) * 7 + 3,
            "ts": ts,
            "card_id": rng.integers(0, 12, n).astype(np.int64),
            "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "merchant_id": rng.integers(0, 6, n).astype(np.int64),
            "device_id": device,
            "is_fraud": (rng.random(n) < 0.2).astype(np.int8),
            "label_ts": label_ts,
        }
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conf=feature_specs(),
    n=st.integers(1, 400),
    seed=st.integers(0, 2**16),
    warm=st.sampled_from([0.0, 0.3, 0.8]),
)
def test_generated_spec_online_equals_batch(conf, n, seed, warm):
    frame = events(n, seed)
    batch = features_frame(frame, conf).set_index("tx_id")
    online = replay(frame, conf, warm=warm)
    assert list(online.columns) == make_plan(conf, list(frame.columns)).feature_names
    assert_same(online, batch)
