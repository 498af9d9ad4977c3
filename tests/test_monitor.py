"""Monitoring: the drift measures against numpy/scipy, performance as labels mature against a
pandas loop, the reference format and older bundles without one."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import average_precision_score


def _conf(**over):
    from fraud_dask.monitor.config import MonitorConf

    conf = MonitorConf()
    for k, v in over.items():
        setattr(conf, k, v)
    return conf


def test_psi_and_jensen_shannon_match_numpy_and_scipy():
    from fraud_dask.monitor.drift import bin_codes, binned_counts, jensen_shannon, psi

    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, 5000)
    new = rng.normal(0.4, 1.3, 3000)
    new[:40] = np.nan
    edges = np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))
    spec = {"kind": "numeric", "edges": edges.tolist()}
    # independent binning: (-inf, e0], (e0, e1], ..., (e_last, inf), then missing
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])

    def hist(x):
        finite = x[~np.isnan(x)]
        counts = [((finite > lo) & (finite <= hi)).sum() for lo, hi in itertools(bounds)]
        return np.array([*counts, np.isnan(x).sum()], dtype=float)

    def itertools(b):
        return list(zip(b[:-1], b[1:], strict=True))

    expected, actual = hist(ref), hist(new)
    frame = pd.DataFrame({"x": new, "client": "a"})
    got = binned_counts(frame, {"x": spec}, ["client"])
    mine = np.zeros(len(edges) + 2)
    mine[got["bin"].to_numpy()] = got["count"].to_numpy()
    np.testing.assert_array_equal(mine, actual)
    assert (bin_codes(pd.Series(ref), spec) < len(edges) + 1).all()

    p = np.maximum(expected / expected.sum(), 1e-4)
    q = np.maximum(actual / actual.sum(), 1e-4)
    assert psi(expected, actual) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert jensen_shannon(expected, actual) == pytest.approx(
        jensenshannon(expected, actual, base=2), rel=1e-9
    )
    assert psi(expected, expected) == pytest.approx(0.0, abs=1e-12)

    cats = {"kind": "categorical", "categories": ["x", "y"]}
    codes = bin_codes(pd.Series(["y", "z", None, "x"], dtype=object), cats)
    assert codes.tolist() == [1, 2, 3, 0]  # known, other, missing


def test_stability_compares_each_week_with_the_other_weeks():
    from fraud_dask.monitor.reference import stability

    rng = np.random.default_rng(3)
    weeks = [
        int(pd.Timestamp("2025-01-06", tz="UTC").value) + i * 7 * 86_400 * 10**9 for i in range(4)
    ]
    spec = {"kind": "numeric", "edges": [0.0, 1.0]}  # bins: <=0, (0,1], >1, missing
    counts = {w: rng.integers(100, 400, size=4) for w in weeks}
    counts[weeks[2]][2] += 600  # one busy week
    weekly = pd.Series(
        {("c1", w, b): int(n) for w, v in counts.items() for b, n in enumerate(v)}, dtype="int64"
    )
    weekly.index.names = ["client", "week", "bin"]

    def plain_psi(e, a):  # numpy, proportions floored at 1e-4
        e = np.maximum(e / e.sum(), 1e-4)
        a = np.maximum(a / a.sum(), 1e-4)
        return float(np.sum((a - e) * np.log(a / e)))

    total = np.sum(list(counts.values()), axis=0)
    expected = max(plain_psi(total - v, v) for v in counts.values())
    got = stability(weekly, spec, min_rows=500, weeks=set(weeks))
    assert got["c1"] == pytest.approx(expected)
    # only the listed whole weeks count
    small = stability(weekly, spec, min_rows=500, weeks={weeks[0]})
    assert small["c1"] == pytest.approx(plain_psi(total - counts[weeks[0]], counts[weeks[0]]))


def test_psi_p_value_tracks_sample_size():
    from fraud_dask.monitor.drift import psi_p_value

    # the same PSI is noise with 50 rows a side and a certain change with 50,000
    assert psi_p_value(0.2, 50, 50, 10) > 0.1
    assert psi_p_value(0.2, 50_000, 50_000, 10) < 1e-12


def _scored_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 6000
    ts = pd.Timestamp("2025-03-03", tz="UTC") + pd.to_timedelta(rng.uniform(0, 28, n), unit="D")
    label = (rng.uniform(size=n) < 0.05).astype(np.int8)
    score = np.clip(rng.normal(0.3 + 0.4 * label, 0.2), 0, 1).astype(np.float32)
    delay = rng.uniform(1, 20, n)
    return pd.DataFrame(
        {
            "tx_id": np.arange(n),
            "ts": ts,
            "client_id": rng.choice(["c1", "c2"], n),
            "x": rng.normal(0, 1, n),
            "amount": rng.lognormal(3, 1, n).round(2),
            "is_fraud": label,
            "label_ts": ts + pd.to_timedelta(delay, unit="D"),
            "score": score,
        }
    )


def _reference(frame: pd.DataFrame) -> dict:
    from fraud_dask.monitor.drift import SCORE, binned_counts
    from fraud_dask.monitor.reference import FORMAT

    specs = {
        "x": {"kind": "numeric", "edges": np.quantile(frame["x"], [0.25, 0.5, 0.75]).tolist()},
        SCORE: {"kind": "numeric", "edges": np.quantile(frame["score"], [0.5, 0.9]).tolist()},
    }
    counts = binned_counts(frame.assign(client=frame["client_id"]), specs, ["client"])
    out = {}
    for name, spec in specs.items():
        size = len(spec["edges"]) + 2
        out[name] = spec | {"counts": {}, "stability_psi": {}}
        for client, part in counts[counts["feature"] == name].groupby("client"):
            v = np.zeros(size, dtype=int)
            v[part["bin"].to_numpy()] = part["count"].to_numpy()
            out[name]["counts"][client] = v.tolist()
    rate = float((frame["score"] >= 0.5).mean())
    return {
        "format": FORMAT,
        "period": {},
        "rows": len(frame),
        "client_column": "client_id",
        "clients": frame["client_id"].value_counts().to_dict(),
        "bins": 4,
        "quantiles": "numpy",
        "score": out.pop(SCORE),
        "features": out,
        "thresholds": [{"name": "decision", "threshold": 0.5, "alert_rate": rate}],
        "test": {"average_precision": 0.6},
    }


def test_performance_as_labels_mature_matches_a_pandas_loop(client):
    import dask.dataframe as dd

    from fraud_dask.monitor.run import monitor_scores

    frame = _scored_frame()
    report = pd.Timestamp("2025-03-27", tz="UTC")
    conf = _conf(freq="week", min_rows=100, budget=0.05, mature_max_pending=0.02)
    got = monitor_scores(
        dd.from_pandas(frame, npartitions=4),
        _reference(frame),
        conf,
        report_date=report,
        label_delay_days=7,
    )
    rows = {(r["client"], r["period"]): r for r in got["performance"]}
    week = frame["ts"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time.dt.date
    checked = 0
    for (client, day), part in frame.groupby([frame["client_id"], week]):
        row = rows[(client, day.isoformat())]
        known = part[part["label_ts"] <= report]
        assert row["rows"] == len(part)
        assert row["labelled"] == len(known)
        assert row["pending_share"] == pytest.approx(1 - len(known) / len(part))
        end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=7)
        mature = end + pd.Timedelta(days=7) <= report and row["pending_share"] <= 0.02
        assert row["mature"] == mature
        if known["is_fraud"].sum() == 0:
            continue
        y, s = known["is_fraud"].to_numpy(), known["score"].to_numpy().astype(float)
        assert row["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
        # precision and recall at an alert budget of 5% of the labelled rows (ties alerted)
        wanted = math.ceil(0.05 * len(known))
        cut = np.sort(s)[::-1][wanted - 1]
        alerted = s >= cut
        assert row["precision_at_budget"] == pytest.approx(y[alerted].mean())
        assert row["recall_at_budget"] == pytest.approx(y[alerted].sum() / y.sum())
        amount = known["amount"].to_numpy()
        value = amount[alerted & (y == 1)].sum() / amount[y == 1].sum()
        assert row["fraud_value_caught"] == pytest.approx(value)
        checked += 1
    assert checked >= 6
    # the drift of x on the same rows as the reference is nil for every client and week
    assert all(r["features"]["x"]["psi"] < 0.2 for r in got["drift"])
    assert got["alerts"] == []  # nothing drifted, nothing fires


def _drifted(score_shift: float = 0.0, x_shift: float = 0.0) -> pd.DataFrame:
    """Later rows where client c2's score and/or input x move from 2025-03-17."""
    later = _scored_frame(2)
    at = later["client_id"].eq("c2") & (later["ts"] >= pd.Timestamp("2025-03-17", tz="UTC"))
    later.loc[at, "score"] = np.clip(later.loc[at, "score"] + score_shift, 0, 1)
    later.loc[at, "x"] += x_shift
    return later


def test_a_shifted_input_fires_for_its_client_only(client):

    reference = _reference(_scored_frame(1))
    got = _monitored(_drifted(x_shift=2.0), reference)
    fired = {(a["kind"], a["name"], a["client_id"], a["period"]) for a in got["alerts"]}
    assert fired == {
        ("feature_drift", "x", "c2", "2025-03-17"),
        ("feature_drift", "x", "c2", "2025-03-24"),
    }
    for alert in got["alerts"]:
        assert set(alert) >= {"kind", "name", "client_id", "period", "value", "threshold"}
        assert alert["value"] > alert["threshold"] >= 0.2


def _monitored(frame: pd.DataFrame, reference: dict, **conf) -> dict:
    """monitor_scores over ``frame`` (3 partitions) with 300-row periods, labels by 03-31."""
    import dask.dataframe as dd

    from fraud_dask.monitor.run import monitor_scores

    return monitor_scores(
        dd.from_pandas(frame, npartitions=3),
        reference,
        _conf(min_rows=300, **conf),
        report_date=pd.Timestamp("2025-03-31", tz="UTC"),
        label_delay_days=7,
    )


def _fired(frame: pd.DataFrame, reference: dict, **conf) -> set:
    got = _monitored(frame, reference, **conf)
    return {(a["kind"], a["name"], a["client_id"], a["period"]) for a in got["alerts"]}


def test_score_drift_needs_an_input_moving_with_it_unless_it_is_large(client):
    reference = _reference(_scored_frame(1))
    late = {("c2", "2025-03-17"), ("c2", "2025-03-24")}
    score = {("score_drift", "score", c, p) for c, p in late}
    x = {("feature_drift", "x", c, p) for c, p in late}
    # the score alone moves (its PSI between the rule's 0.2 and psi_score_alone): no alert
    frame = _drifted(score_shift=0.12)
    assert _fired(frame, reference) == set()
    # ... the same move with psi_score_alone under it fires for c2's late weeks only
    assert _fired(frame, reference, psi_score_alone=0.25) == score
    # the score and an input move together: both fire
    assert _fired(_drifted(score_shift=0.12, x_shift=2.0), reference) == score | x
    # a week holding the model's own training rows is in sample: no score alert there
    fitted = dict(reference, period={"start": "2025-03-10", "end": "2025-03-18"})
    assert _fired(frame, fitted, psi_score_alone=0.25) == {
        ("score_drift", "score", "c2", "2025-03-24")
    }


@pytest.mark.parametrize(("flag", "option"), [("labels", "alert_label_inputs"),
                                              ("grows", "alert_growing_inputs")])  # fmt: skip
def test_inputs_that_move_by_themselves_are_measured_but_alert_only_when_asked(
    client, flag, option
):
    reference = _reference(_scored_frame(1))
    reference["features"]["x"][flag] = True  # from labels (risk...) / over all history
    frame = _drifted(x_shift=2.0)
    assert _fired(frame, reference) == set()
    late = {("c2", "2025-03-17"), ("c2", "2025-03-24")}
    assert _fired(frame, reference, **{option: True}) == {
        ("feature_drift", "x", c, p) for c, p in late
    }


def test_the_default_features_name_their_label_fed_and_all_history_inputs():
    from fraud_dask.config import compose
    from fraud_dask.monitor.reference import growing_inputs, label_fed_inputs

    features = compose([]).features
    labels, grows = set(label_fed_inputs(features)), set(growing_inputs(features))
    assert {"card_id_risk_90d", "terminal_id_risk_30d", "category_te_all"} <= labels
    assert not any(n.startswith(("card_id_count", "card_id_mean", "amount")) for n in labels)
    assert grows == {"device_id_freq_all", "ip_freq_all", "email_freq_all",
                     "merchant_id_te_all", "category_te_all"}  # fmt: skip


def test_monitor_parquet_holds_every_measure_and_sql_reads_it(client, tmp_path):
    """The long table of a run (monitor.parquet) against the result it was written from,
    read back through the SQL `monitor` view."""

    import fraud_dask
    from fraud_dask.monitor.table import write_results

    reference = _reference(_scored_frame(1))
    got = _monitored(_drifted(x_shift=2.0), reference)
    path = write_results(tmp_path / "run", got)
    assert path.name == "monitor.parquet" and not list(path.parent.glob(".*partial"))
    table = pd.read_parquet(path)
    # every drift measure of every client, period and input is one row with its value
    for row in got["drift"]:
        for name, m in [("score", row["score"]), *row["features"].items()]:
            for measure in ("psi", "js", "p_value"):
                hit = table[
                    table["client_id"].eq(row["client"])
                    & table["period"].astype(str).eq(row["period"])
                    & table["kind"].eq("drift")
                    & table["name"].eq(name)
                    & table["measure"].eq(measure)
                ]
                assert len(hit) == 1
                if m[measure] is None:
                    assert hit["value"].isna().all()
                else:
                    assert hit["value"].iloc[0] == pytest.approx(m[measure])
                assert hit["rows"].iloc[0] == row["rows"]
    n_rates = sum(1 for _ in got["alert_rate"]) * 5
    assert table["kind"].eq("alert_rate").sum() == n_rates
    # the alert flag marks exactly the fired alerts
    flagged = table[table["alert"] & table["measure"].eq("psi")]
    assert {(r.name, r.client_id, str(r.period)) for r in flagged.itertuples()} == {
        (a["name"], a["client_id"], a["period"]) for a in got["alerts"]
    }
    # the SQL view reads the same file (a run directory or the file itself)
    for given in (path.parent, path):
        psi = fraud_dask.sql(
            "SELECT client_id, CAST(period AS VARCHAR) AS period, value FROM monitor "
            "WHERE kind = 'drift' AND name = 'x' AND measure = 'psi' AND alert "
            "ORDER BY period",
            {"sql": {"monitor": str(given)}},
        )
        assert psi["client_id"].tolist() == ["c2", "c2"]
        assert psi["period"].tolist() == ["2025-03-17", "2025-03-24"]
        expected = [a["value"] for a in got["alerts"]]
        assert psi["value"].tolist() == pytest.approx(expected)


def test_reference_format_round_trips_and_older_bundles_load(client, tmp_path):
    import dask.dataframe as dd

    from fraud_dask.monitor.reference import FORMAT, build_reference, check_reference, dumps
    from fraud_dask.registry import REFERENCE, Registry
    from fraud_dask.train.models.logistic import LogisticModel

    frame = _scored_frame().drop(columns=["score"])
    coef = {"mean": [0.0, 30.0], "scale": [1.0, 30.0], "coef": [1.5, 0.5], "intercept": -3.0}
    model = LogisticModel(columns=["x", "amount"], categories={}, coef=coef)
    ref = build_reference(
        dd.from_pandas(frame, npartitions=3),
        model,
        threshold=0.5,
        budgets=(0.01,),
        bins=5,
        period={"start": "2025-03-03", "end": "2025-03-30"},
    )
    data = dumps(ref)
    assert len(data) < 20_000
    back = check_reference(json.loads(data))
    assert back["format"] == FORMAT and set(back["clients"]) == {"c1", "c2"}
    assert sum(back["clients"].values()) == len(frame)
    for name in ("x", "amount"):
        spec = back["features"][name]
        assert len(spec["edges"]) <= 4
        for client, vec in spec["counts"].items():
            assert sum(vec) == back["clients"][client]
    # the decision threshold's alert rate is the share of rows the model scores >= 0.5
    probs = model.predict_partition(frame)
    assert back["thresholds"][0]["alert_rate"] == pytest.approx(float((probs >= 0.5).mean()))

    registry = Registry(str(tmp_path / "reg"))
    old = registry.register("m", model, features={}, config={}, metrics={})
    new = registry.register("m", model, features={}, config={}, extra_files={REFERENCE: data})
    assert registry.load("m", old).reference is None  # registered without one: still loads
    assert registry.load("m", new).reference == back


def test_the_score_reference_is_taken_on_the_rows_after_training(client):
    """Inputs on the training rows; the score, its bins and the alert rates on the rows the
    model was not fitted on (when there are enough), counted as pandas counts them."""
    import dask.dataframe as dd

    from fraud_dask.monitor.drift import bin_codes
    from fraud_dask.monitor.reference import MIN_SCORE_ROWS, build_reference
    from fraud_dask.train.models.logistic import LogisticModel

    train = _scored_frame(1).drop(columns=["score"])
    after = _scored_frame(2).drop(columns=["score"])
    after["x"] += 0.7  # new rows score higher than the training rows
    coef = {"mean": [0.0, 30.0], "scale": [1.0, 30.0], "coef": [1.5, 0.5], "intercept": -3.0}
    model = LogisticModel(columns=["x", "amount"], categories={}, coef=coef)

    def reference(score_rows: pd.DataFrame | None) -> dict:
        return build_reference(
            dd.from_pandas(train, npartitions=3),
            model,
            threshold=0.5,
            bins=5,
            period={"start": "2025-03-03", "end": "2025-03-30"},
            score_frame=None if score_rows is None else dd.from_pandas(score_rows, npartitions=2),
            score_period={"start": "2025-03-31", "end": "2025-04-27"},
        )

    ref = reference(after)
    assert ref["score"]["rows"]["rows"] == "after_training"
    assert ref["score"]["rows"]["count"] == len(after)
    probs = pd.Series(model.predict_partition(after), index=after.index)
    for c, part in after.groupby("client_id"):
        codes = bin_codes(probs[part.index], ref["score"])
        expect = np.bincount(codes, minlength=len(ref["score"]["edges"]) + 2)
        assert ref["score"]["counts"][c] == expect.tolist()
        got = ref["thresholds"][0]["by_client"][c]
        assert got["rows"] == len(part) and got["alerts"] == int((probs[part.index] >= 0.5).sum())
    # inputs stay on the training rows
    x_counts = {c: sum(v) for c, v in ref["features"]["x"]["counts"].items()}
    assert x_counts == train["client_id"].value_counts().to_dict() == ref["clients"]
    # too few rows after training: the score falls back to the training rows
    small = reference(after.iloc[: MIN_SCORE_ROWS - 1])
    assert small["score"]["rows"]["rows"] == "training"
    train_probs = model.predict_partition(train)
    assert small["thresholds"][0]["alert_rate"] == pytest.approx(float((train_probs >= 0.5).mean()))


def test_a_clients_category_mix_is_monitored_as_a_source_column(client):
    """A categorical source column that is no model input (category) is in the reference,
    counted as pandas counts it, and a move of one client's mix fires for that client only."""
    import dask.dataframe as dd

    from fraud_dask.monitor.reference import build_reference
    from fraud_dask.train.models.logistic import LogisticModel

    def with_category(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)  # not the frame's seed: its draws would follow ts
        values = rng.choice(["grocery", "fuel", "travel"], len(frame), p=[0.5, 0.3, 0.2])
        return frame.assign(category=pd.Categorical(values))

    coef = {"mean": [0.0, 30.0], "scale": [1.0, 30.0], "coef": [1.5, 0.5], "intercept": -3.0}
    model = LogisticModel(columns=["x", "amount"], categories={}, coef=coef)
    train = with_category(_scored_frame(1).drop(columns=["score"]), 101)
    ref = build_reference(
        dd.from_pandas(train, npartitions=3),
        model,
        threshold=0.5,
        bins=5,
        period={"start": "2025-03-03", "end": "2025-03-30"},
    )
    spec = ref["features"]["category"]
    assert spec["kind"] == "categorical" and spec["source_column"] is True
    assert spec["categories"] == ["fuel", "grocery", "travel"]
    for c, part in train.groupby("client_id"):
        want = part["category"].astype(str).value_counts()
        assert spec["counts"][c] == [int(want.get(k, 0)) for k in spec["categories"]] + [0, 0]

    later = with_category(_scored_frame(2).drop(columns=["score"]), 102)
    at = later["client_id"].eq("c2") & (later["ts"] >= pd.Timestamp("2025-03-17", tz="UTC"))
    later.loc[at.to_numpy(), "category"] = "travel"  # c2's mix moves to travel
    later["score"] = model.predict_partition(later)
    late = {("c2", "2025-03-17"), ("c2", "2025-03-24")}
    assert _fired(later, ref) == {("feature_drift", "category", c, p) for c, p in late}
    # a source without the column is monitored on the rest
    assert _fired(later.drop(columns=["category"]), ref) == set()


def test_bad_monitor_values_are_one_line_user_errors():
    from fraud_dask.errors import UserError
    from fraud_dask.monitor.config import check_monitor_conf

    check_monitor_conf(_conf())
    for key, value, said in (
        ("bins", 1, "monitor.bins: got 1, expected at least 2"),
        ("p_value", 2.0, "monitor.p_value: got 2.0, expected a number in [0, 1]"),
        ("alert_rate_high", 0.9, "monitor.alert_rate_low/high"),
    ):
        with pytest.raises(UserError, match=said.replace("[", r"\[").replace("]", r"\]")):
            check_monitor_conf(_conf(**{key: value}))


def test_column_quantiles_in_one_pass_equal_dasks_and_numpys(client):
    """The reference's input edges: one task per partition for every column gives Dask's
    per-column quantiles exactly, NaN skipped, and they are quantiles of the whole column
    (ranks within 2%)."""
    import dask
    import dask.dataframe as dd

    from fraud_dask.monitor.reference import column_quantiles

    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame(
        {
            "normal": rng.normal(size=n),
            "counts": rng.poisson(2.0, size=n).astype(np.float64),
            "skewed": rng.exponential(size=n),
            "empty": np.full(n, np.nan),
        }
    )
    frame.loc[::5, "normal"] = np.nan
    lazy = dd.from_pandas(frame, npartitions=6)
    qs = [i / 10 for i in range(1, 10)]
    got = dask.compute(*column_quantiles(lazy, list(frame.columns), qs))
    for col, values in zip(frame.columns, got, strict=True):
        assert list(values.index) == qs
        if col == "empty":
            assert values.isna().all()
            continue
        pd.testing.assert_series_equal(values, lazy[col].quantile(qs).compute())
        # a quantile of the whole column, up to the merge's rank error: at least q - 2% of
        # the values lie at or below it and at most q + 2% strictly below it
        x = frame[col].dropna().to_numpy()
        for q, v in values.items():
            assert np.mean(x <= v) >= q - 0.02 and np.mean(x < v) <= q + 0.02, (col, q, v)


@pytest.mark.parametrize("n_edges", [9, 40])
def test_binned_counts_per_key_match_pandas(n_edges):
    """Few edges (compared one by one) and many (binary search) give pandas' bins, per pair of
    keys, exact values on an edge counted in the bin the edge closes."""
    from fraud_dask.monitor.drift import binned_counts

    rng = np.random.default_rng(n_edges)
    n = 20_000
    x = rng.normal(size=n).astype(np.float32)
    x[rng.random(n) < 0.05] = np.nan
    edges = np.unique(np.quantile(x[~np.isnan(x)], np.linspace(0.02, 0.98, n_edges)))
    x[:50] = edges[rng.integers(0, len(edges), 50)]  # values on the edges themselves
    frame = pd.DataFrame(
        {
            "x": x,
            "client": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "week": rng.integers(0, 4, n),
        }
    )
    got = binned_counts(
        frame, {"x": {"kind": "numeric", "edges": edges.tolist()}}, ["client", "week"]
    )
    got = got.set_index(["client", "week", "bin"])["count"].sort_index()
    bins = pd.cut(frame["x"].astype(np.float64), np.concatenate([[-np.inf], edges, [np.inf]]))
    codes = pd.Series(bins.cat.codes, index=frame.index).where(frame["x"].notna(), len(edges) + 1)
    want = (
        frame.assign(bin=codes.astype(np.int64))
        .groupby(["client", "week", "bin"], observed=True)
        .size()
        .rename("count")
        .sort_index()
    )
    pd.testing.assert_series_equal(got, want, check_index_type=False, check_names=False)
