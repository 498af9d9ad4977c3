"""Point-in-time features against a naive pandas reference, across partitionings and workers."""

from __future__ import annotations

import math

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from feature_replay import replay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_dask.features.batch import features_frame
from fraud_dask.features.build import build_features, feature_columns
from fraud_dask.features.config import as_features_conf, parse_window
from fraud_dask.features.kernels import (
    UNBOUNDED,
    event_labels,
    event_window,
    window_bounds,
    window_moments,
)
from fraud_dask.features.plan import make_plan

CONF = {
    "calendar": {"fields": ["hour", "weekday", "weekend", "night"], "timezone": "Europe/Paris"},
    "windows": [
        {
            "entity": ["card_id"],
            "windows": ["1h", "1d"],
            "aggs": ["count", "sum", "mean", "std", "min", "max"],
            "distinct": ["merchant_id"],
        },
        {"entity": ["card_id"], "windows": ["2d"], "offset": "1d", "aggs": ["count", "mean"]},
        {
            "entity": ["card_id", "merchant_id"],
            "windows": ["1d"],
            "aggs": ["count"],
            "include_current": False,
        },
        {"entity": ["device_id"], "windows": ["1d"], "aggs": ["count", "max"]},
    ],
    "risk": [
        {
            "entity": ["merchant_id"],
            "windows": ["2d"],
            "delay": "1d",
            "outputs": ["count", "frauds", "risk"],
        },
        {"entity": ["merchant_id"], "windows": ["3d"], "outputs": ["count", "frauds", "risk"]},
    ],
    "recency": [{"entity": ["card_id"]}],
    "amount_relative": [{"entity": ["card_id"], "window": "2d"}],
    "frequency": [{"column": ["merchant_id"]}],
    "target_encoding": [
        {"column": ["merchant_id"], "smoothing": 5.0, "prior": 0.1},
        {"column": ["card_id"], "delay": "1d", "smoothing": 2.0, "prior": 0.2},
    ],
}
DAY = pd.Timedelta("1D")


def make_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Canonical rows with same-second ties, tx_id not in time order, and missing devices."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-03-01", tz="UTC")
    minutes = rng.integers(0, 10 * 24 * 6, n) * 10  # 10-minute grid: many ties
    ts = start + pd.to_timedelta(minutes, unit="min")
    device = pd.Series(rng.integers(0, 40, n)).astype("str").astype(pd.StringDtype(na_value=np.nan))
    device[rng.random(n) < 0.1] = np.nan
    is_fraud = (rng.random(n) < 0.15).astype(np.int8)
    return pd.DataFrame(
        {
            "tx_id": rng.permutation(n).astype(np.int64) * 3 + 7,
            "ts": ts,
            "card_id": rng.integers(0, 25, n).astype(np.int64),
            "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "merchant_id": rng.integers(0, 12, n).astype(np.int64),
            "client_id": pd.Categorical(rng.choice(["a", "b"], n)),
            "device_id": device,
            "is_fraud": is_fraud,
            "label_ts": ts + pd.to_timedelta(rng.integers(0, 4 * 24, n), unit="h"),
        }
    )


def reference(df: pd.DataFrame) -> pd.DataFrame:
    """The features of CONF computed row by row with plain pandas (quadratic, obviously right)."""
    d = df.sort_values(["ts", "tx_id"]).reset_index(drop=True)
    d["pos"] = np.arange(len(d))
    out: dict[str, dict[int, float]] = {}

    def put(name: str, tx: int, value: float) -> None:
        out.setdefault(name, {})[tx] = value

    local = d["ts"].dt.tz_convert("Europe/Paris")
    for tx, h, wd in zip(d["tx_id"], local.dt.hour, local.dt.day_of_week, strict=True):
        put("tx_hour", tx, h)
        put("tx_weekday", tx, wd)
        put("tx_weekend", tx, int(wd >= 5))
        put("tx_night", tx, int(h <= 6))

    def groups(cols: list[str]):
        return d.dropna(subset=cols).groupby(cols, sort=False)

    for _, g in groups(["card_id"]):
        for r in g.itertuples():
            past = g[g.pos <= r.pos]  # up to the current row in (ts, tx_id) order
            before = g[g.pos < r.pos]
            for w in ("1h", "1d"):
                win = past[past.ts > r.ts - pd.Timedelta(w.replace("d", "D"))]
                put(f"card_id_count_{w}", r.tx_id, len(win))
                put(f"card_id_sum_{w}", r.tx_id, win.amount.sum())
                put(f"card_id_mean_{w}", r.tx_id, win.amount.mean())
                put(f"card_id_std_{w}", r.tx_id, win.amount.std(ddof=1))
                put(f"card_id_min_{w}", r.tx_id, win.amount.min())
                put(f"card_id_max_{w}", r.tx_id, win.amount.max())
                put(f"card_id_distinct_merchant_id_{w}", r.tx_id, win.merchant_id.nunique())
            off = g[(g.ts > r.ts - DAY - 2 * DAY) & (g.ts <= r.ts - DAY)]
            put("card_id_count_2d", r.tx_id, len(off))
            put("card_id_mean_2d", r.tx_id, off.amount.mean())
            put("card_id_secs_since_prev", r.tx_id, (r.ts - before.ts.max()).total_seconds())
            hist = before[before.ts > r.ts - 2 * DAY]
            mean, std = hist.amount.mean(), hist.amount.std(ddof=1)
            put("card_id_amount_ratio_2d", r.tx_id, r.amount / mean if mean else np.nan)
            put("card_id_amount_zscore_2d", r.tx_id, (r.amount - mean) / std if std > 0 else np.nan)
            known = g[g.ts <= r.ts - DAY]
            put("card_id_te_all", r.tx_id, (known.is_fraud.sum() + 0.4) / (len(known) + 2.0))
    for _, g in groups(["card_id", "merchant_id"]):
        for r in g.itertuples():
            win = g[(g.pos < r.pos) & (g.ts > r.ts - DAY)]
            put("card_id_merchant_id_count_1d", r.tx_id, len(win))
    for _, g in groups(["device_id"]):
        for r in g.itertuples():
            win = g[(g.pos <= r.pos) & (g.ts > r.ts - DAY)]
            put("device_id_count_1d", r.tx_id, len(win))
            put("device_id_max_1d", r.tx_id, win.amount.max())
    for _, g in groups(["merchant_id"]):
        for r in g.itertuples():
            fixed = g[(g.ts > r.ts - 3 * DAY) & (g.ts <= r.ts - DAY)]
            put("merchant_id_risk_count_2d", r.tx_id, len(fixed))
            put("merchant_id_risk_frauds_2d", r.tx_id, fixed.is_fraud.sum())
            put("merchant_id_risk_2d", r.tx_id, fixed.is_fraud.mean() if len(fixed) else 0.0)
            known = g[(g.pos < r.pos) & (g.ts > r.ts - 3 * DAY) & (g.label_ts <= r.ts)]
            put("merchant_id_risk_count_3d", r.tx_id, len(known))
            put("merchant_id_risk_frauds_3d", r.tx_id, known.is_fraud.sum())
            put("merchant_id_risk_3d", r.tx_id, known.is_fraud.mean() if len(known) else 0.0)
            before = g[g.pos < r.pos]
            put("merchant_id_freq_all", r.tx_id, len(before))
            lab = before[before.label_ts <= r.ts]
            put("merchant_id_te_all", r.tx_id, (lab.is_fraud.sum() + 0.5) / (len(lab) + 5.0))
    ref = pd.DataFrame(out)
    ref.index.name = "tx_id"
    return ref.reindex(d["tx_id"].to_numpy())


def by_tx(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("tx_id").sort_index()


def assert_close(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        a = got[col].to_numpy(np.float64)
        b = want.loc[got.index, col].to_numpy(np.float64)
        ok = np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
        assert ok.all(), f"{col}: {(~ok).sum()} rows differ, e.g. tx {got.index[~ok][:3].tolist()}"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def expected(frame: pd.DataFrame) -> pd.DataFrame:
    return reference(frame)


def test_matches_pandas_reference_on_cluster(client, frame, expected):
    # time-ordered partitions: 1h..3d windows cross many partition boundaries
    ddf = dd.from_pandas(frame.sort_values("ts"), npartitions=12, sort=False)
    lazy = build_features(ddf, CONF)
    names = feature_columns(ddf, CONF)
    assert sorted(names) == sorted(expected.columns)
    got = lazy.compute()
    assert len(got) == len(frame) and got["tx_id"].is_unique
    kept = ["tx_id", "ts", "card_id", "amount", "client_id", "is_fraud", "label_ts"]
    assert list(got.columns) == [*kept, *names]
    got = by_tx(got)
    assert_close(got, expected, names)
    # the device windows: rows without a device get NaN, the others a count >= 1
    no_device = frame.set_index("tx_id").loc[got.index, "device_id"].isna()
    assert got.loc[no_device, "device_id_count_1d"].isna().all()
    assert (got.loc[~no_device, "device_id_count_1d"] >= 1).all()


def test_pure_batch_function_matches_reference(frame, expected):
    got = by_tx(features_frame(frame.sample(frac=1.0, random_state=1), CONF))
    assert_close(got, expected, list(expected.columns))


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    nparts=st.integers(1, 17), seed=st.integers(0, 2**16), out_parts=st.sampled_from([None, 1, 5])
)
def test_any_partitioning_and_worker_count_gives_identical_values(
    client, frame, nparts, seed, out_parts
):
    # on the cluster with the P2P shuffle ...
    p2p = {**CONF, "shuffle": "p2p"}
    base = by_tx(build_features(dd.from_pandas(frame, npartitions=3), p2p, npartitions=4).compute())
    shuffled = frame.sample(frac=1.0, random_state=seed)
    ddf = dd.from_pandas(shuffled, npartitions=nparts, sort=False)
    # ... and in one process, no cluster, with the in-memory task shuffle
    with dask.config.set({"scheduler": "synchronous"}):
        sync = by_tx(
            build_features(ddf, {**CONF, "shuffle": "tasks"}, npartitions=out_parts).compute()
        )
    pd.testing.assert_frame_equal(sync, base)


def _perturb_after(df: pd.DataFrame, cutoff: pd.Timestamp, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = df.copy()
    late = d["ts"] > cutoff
    d = d[~late | (rng.random(len(d)) < 0.6)].copy()  # delete 40 % of the later rows
    late = d["ts"] > cutoff
    m = int(late.sum())
    d.loc[late, "amount"] = rng.lognormal(5.0, 2.0, m)
    d.loc[late, "card_id"] = rng.integers(0, 25, m)
    d.loc[late, "merchant_id"] = rng.integers(0, 12, m)
    d.loc[late, "is_fraud"] = (1 - d.loc[late, "is_fraud"]).astype(np.int8)
    d.loc[late, "label_ts"] = d.loc[late, "ts"]
    return d


def test_no_leakage_from_rows_after_the_cutoff(client, frame):
    cutoff = frame["ts"].quantile(0.55)
    before = by_tx(build_features(dd.from_pandas(frame, npartitions=5), CONF).compute())
    changed = _perturb_after(frame, cutoff, seed=3)
    after = by_tx(build_features(dd.from_pandas(changed, npartitions=7), CONF).compute())
    early = before.index[before["ts"] <= cutoff]
    assert len(early) > 500
    pd.testing.assert_frame_equal(after.loc[early], before.loc[early])


def test_labels_not_yet_known_never_affect_a_row(frame):
    # flip every label that becomes known after the cutoff: rows up to the cutoff must not move
    cutoff = frame["ts"].quantile(0.5)
    flipped = frame.copy()
    late_label = flipped["label_ts"] > cutoff
    flipped.loc[late_label, "is_fraud"] = (1 - flipped.loc[late_label, "is_fraud"]).astype(np.int8)
    conf = {k: v for k, v in CONF.items() if k != "target_encoding"}
    conf["risk"] = [CONF["risk"][1]]  # the label_ts rule (the fixed-delay rule assumes labels)
    conf["target_encoding"] = [CONF["target_encoding"][0]]
    a = by_tx(features_frame(frame, conf))
    b = by_tx(features_frame(flipped, conf))
    early = a.index[a["ts"] <= cutoff]
    names = make_plan(conf, list(frame.columns)).feature_names
    pd.testing.assert_frame_equal(a.loc[early, names], b.loc[early, names])
    assert not a[names].equals(b[names])  # the flip is visible later, so the test has teeth


def test_online_events_match_the_reference(frame, expected):
    plan = make_plan(CONF, list(frame.columns))
    assert plan.horizon() is None  # frequency and target encoding use all history
    # warm start from the first 60 %, then the rest event by event, each labelled once added
    got = replay(frame, CONF, warm=0.6)
    assert len(got) == len(frame) - int(len(frame) * 0.6)
    assert_close(got, expected, list(expected.columns))


def test_building_computes_nothing(frame):
    ddf = dd.from_pandas(frame, npartitions=4)

    def refuse(*args, **kwargs):
        raise AssertionError("build_features computed something")

    with dask.config.set(scheduler=refuse):
        lazy = build_features(ddf, CONF)
    assert isinstance(lazy, dd.DataFrame)


def test_sliding_sums_stay_exact_on_long_histories():
    # one entity, 300k rows of large, varied amounts, a window of ~20k rows sliding all along
    rng = np.random.default_rng(5)
    n = 300_000
    ts = np.cumsum(rng.integers(1, 60, n)).astype(np.int64) * 1_000_000_000
    x = np.round(rng.lognormal(8, 3, n), 2) + 1e6
    lo, hi = window_bounds(np.array([0, n], np.int64), ts, np.int64(600_000 * 10**9), 0, True)
    total, mean, std = window_moments(lo, hi, x)
    for i in rng.integers(0, n, 200):
        w = x[lo[i] : hi[i]]
        assert math.isclose(total[i], math.fsum(w), rel_tol=1e-12)
        assert math.isclose(std[i], float(np.std(w, ddof=1)), rel_tol=1e-7)


def test_one_event_window_matches_numpy_on_the_rows_in_its_window():
    # the online scorer's kernel: one event at t against its entity's kept rows ts[:p]
    rng = np.random.default_rng(8)
    for _ in range(300):
        n = int(rng.integers(0, 40))
        ts = np.sort(rng.integers(0, 50, n)).astype(np.int64) * 1_000
        x = np.round(rng.lognormal(3, 1.5, n), 2)
        y = rng.integers(0, 2, n).astype(np.int64)
        known = ts + rng.integers(0, 20_000, n)
        p = int(rng.integers(0, n + 1))
        t = int(ts[p - 1]) + int(rng.integers(0, 3)) * 1_000 if p else 0
        width = int(rng.choice([UNBOUNDED, 1_000, 5_000, 20_000]))
        offset = int(rng.choice([0, 0, 2_000]))
        current = bool(rng.integers(0, 2)) and offset == 0
        amount = float(rng.uniform(0, 100))
        right = t - offset
        rows = np.flatnonzero((ts[:p] > right - width) & (ts[:p] <= right))
        w = list(x[rows]) + ([amount] if current else [])
        lo, hi, k, total, mean, std, lowest, highest = event_window(
            ts, x, p, t, width, offset, amount, current, True
        )
        assert list(range(lo, hi)) == list(rows) and k == len(w)
        assert math.isclose(total, math.fsum(w), rel_tol=1e-12)
        if w:
            assert math.isclose(mean, math.fsum(w) / len(w), rel_tol=1e-12)
            assert (lowest, highest) == (min(w), max(w))
        else:
            assert math.isnan(mean) and math.isnan(lowest) and math.isnan(highest)
        if len(w) > 1:
            assert math.isclose(std, float(np.std(w, ddof=1)), rel_tol=1e-9, abs_tol=1e-12)
        else:
            assert math.isnan(std)
        # labels: by a fixed delay (the rows of the delayed window), or known by t
        delay = int(rng.choice([0, 3_000]))
        assert event_labels(ts, y, known, p, t, width, delay) == (
            float(
                len(rows_d := np.flatnonzero((ts[:p] > t - delay - width) & (ts[:p] <= t - delay)))
            ),
            float(y[rows_d].sum()),
        )
        seen = np.flatnonzero((ts[:p] > t - width) & (known[:p] <= t))
        assert event_labels(ts, y, known, p, t, width, -1) == (
            float(len(seen)),
            float(y[seen].sum()),
        )


def test_missing_columns_and_bad_specs_are_named(frame):
    ddf = dd.from_pandas(frame.drop(columns=["device_id"]), npartitions=2)
    with pytest.raises(ValueError, match=r"windows\[3\].*device_id.*optional"):
        build_features(ddf, CONF)
    conf = dict(CONF, windows=[dict(CONF["windows"][3], optional=True)])
    plan = make_plan(conf, list(ddf.columns))
    assert plan.skipped and "device_id" in plan.skipped[0]
    assert not any(n.startswith("device_id") for n in plan.feature_names)
    with pytest.raises(ValueError, match="'2x'"):
        make_plan({"windows": [{"entity": ["card_id"], "windows": ["2x"]}]}, list(frame.columns))
    with pytest.raises(ValueError, match="avg"):
        as_features_conf({"windows": [{"entity": ["card_id"], "aggs": ["avg"]}]})
    with pytest.raises(ValueError, match="label_ts"):
        build_features(dd.from_pandas(frame.drop(columns=["label_ts"]), npartitions=2), CONF)
    with pytest.raises(ValueError, match="given twice"):
        make_plan(
            {
                "windows": [
                    {"entity": ["card_id"], "names": {"count": "x"}, "windows": ["1d", "2d"]}
                ]
            },
            list(frame.columns),
        )
    with pytest.raises(ValueError, match="whole-day"):
        make_plan(
            {"windows": [{"entity": ["card_id"], "windows": ["1h"], "names": {"count": "{days}"}}]},
            list(frame.columns),
        )
    assert parse_window("90d") == 90 * 86400 * 10**9 and parse_window(None) is None


def test_label_delay_fills_a_missing_label_ts(frame):
    no_label = frame.drop(columns=["label_ts"])
    conf = {"risk": [CONF["risk"][1]]}
    got = by_tx(
        build_features(dd.from_pandas(no_label, npartitions=3), conf, label_delay="1D").compute()
    )
    want = by_tx(features_frame(no_label.assign(label_ts=no_label["ts"] + DAY), conf))
    pd.testing.assert_frame_equal(got, want)


def test_unknown_shuffle_method_is_a_clear_error(frame):
    with pytest.raises(ValueError, match="features.shuffle must be auto, tasks or p2p, got 'disk'"):
        build_features(dd.from_pandas(frame, npartitions=2), {**CONF, "shuffle": "disk"})
