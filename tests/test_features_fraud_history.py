"""The ``fraud_history`` kind against a plain pandas loop, offline and online.

The reference takes, for every row, the rows of its entity whose labels are known at its time
(``ts <= t - delay``, or before it in (ts, tx_id) order with ``label_ts <= t``) within the
window and finds the earliest and latest fraud, the fraud share from the earliest on and the
last known label with pandas; the batch kernels and the online state (one event against its
kept rows) must both give its values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_replay import assert_same, replay

from fraud_dask.features.batch import features_frame
from fraud_dask.features.plan import make_plan

DAY = pd.Timedelta(days=1)
OUTPUTS = ["last_age", "first_age", "share", "last_label"]


def frame(n: int = 900, seed: int = 5) -> pd.DataFrame:
    """Terminals with runs of fraud (a compromise), stray frauds, ties and late labels."""
    rng = np.random.default_rng(seed)
    terminal = rng.integers(0, 12, n).astype(np.int64)
    seconds = rng.integers(0, 60 * 86400 // 3600, n) * 3600  # hourly grid: ties
    ts = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s")
    start = rng.uniform(0, 50, 12)[terminal] * 86400  # each terminal's compromise
    run = (seconds >= start) & (seconds < start + 10 * 86400) & (terminal % 3 == 0)
    fraud = run | (rng.random(n) < 0.03)
    label_ts = pd.Series(ts + pd.to_timedelta(rng.integers(0, 10 * 24, n), unit="h"))
    label_ts[rng.random(n) < 0.05] = pd.NaT  # never labelled
    return pd.DataFrame(
        {
            "tx_id": rng.permutation(n).astype(np.int64) * 3 + 1,
            "ts": ts,
            "terminal_id": terminal,
            "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "is_fraud": fraud.astype(np.int8),
            "label_ts": label_ts,
        }
    )


def reference(df: pd.DataFrame, window: pd.Timedelta | None,
              delay: pd.Timedelta | None) -> pd.DataFrame:  # fmt: skip
    """Each row against its terminal's known rows, with a pandas loop (indexed by tx_id)."""
    rows = {}
    for _, g in df.sort_values(["terminal_id", "ts", "tx_id"]).groupby("terminal_id"):
        for i in range(len(g)):
            t = g["ts"].iloc[i]
            if delay is not None:  # every label of a row at least `delay` old is known
                known = g[g["ts"] <= t - delay]
            else:  # the rows before this one whose label has arrived
                before = g.iloc[:i]
                known = before[before["label_ts"] <= t]
            if window is not None:
                known = known[known["ts"] > t - window]
            frauds = known[known["is_fraud"] == 1]
            out = dict.fromkeys(OUTPUTS, np.nan)
            if len(known):
                out["last_label"] = float(known["is_fraud"].iloc[-1])
            if len(frauds):
                out["last_age"] = (t - frauds["ts"].iloc[-1]).total_seconds()
                out["first_age"] = (t - frauds["ts"].iloc[0]).total_seconds()
                since = known.loc[frauds.index[0] :]
                out["share"] = since["is_fraud"].mean()
            rows[g["tx_id"].iloc[i]] = out
    return pd.DataFrame.from_dict(rows, orient="index")


CASES = [("35d", "7d"), ("20d", None), ("all", "3d"), ("all", None), ("6d", "1d")]


@pytest.mark.parametrize(("window", "delay"), CASES)
def test_batch_and_online_match_a_pandas_loop(window, delay):
    df = frame()
    spec = {"entity": ["terminal_id"], "window": window, "delay": delay, "outputs": OUTPUTS}
    conf = {"fraud_history": [spec]}
    plan = make_plan(conf, list(df.columns))
    names = {
        "last_age": f"terminal_id_last_fraud_age_{window}",
        "first_age": f"terminal_id_first_fraud_age_{window}",
        "share": f"terminal_id_fraud_share_since_first_{window}",
        "last_label": f"terminal_id_last_known_label_{window}",
    }
    assert plan.feature_names == list(names.values())
    assert plan.needs_label_ts == (delay is None)
    span = {"all": None} | {f"{d}d": d * DAY for d in (1, 3, 6, 7, 20, 35)}
    want = reference(df, span[window], None if delay is None else span[delay])
    # not vacuous: frauds found, shares strictly between 0 and 1, both labels last
    assert want["first_age"].notna().sum() > 60
    assert ((want["share"] > 0) & (want["share"] < 1)).sum() > 10
    assert (want["first_age"] > want["last_age"]).sum() > 30
    assert set(want["last_label"].dropna()) == {0.0, 1.0}
    want = want.rename(columns=names)

    batch = features_frame(df, conf).set_index("tx_id")[list(names.values())]
    assert_same(batch, want.loc[batch.index], rtol=1e-12)

    online = replay(df, conf, warm=0.4)  # the state warm-started from the first 40% of rows
    assert_same(online, want, rtol=1e-12)


def test_labels_not_yet_known_never_count():
    """Changing every label that is not yet known at a time changes no value before it."""
    df = frame(seed=11)
    conf = {"fraud_history": [{"entity": ["terminal_id"], "window": "30d", "delay": "7d"}]}
    cut = pd.Timestamp("2025-01-30", tz="UTC")
    flipped = df.assign(
        is_fraud=np.where(df["ts"] > cut - 7 * DAY, 1 - df["is_fraud"], df["is_fraud"])
    )
    names = make_plan(conf, list(df.columns)).feature_names
    before = features_frame(df, conf).set_index("tx_id")[names]
    after = features_frame(flipped, conf).set_index("tx_id")[names]
    early = df.loc[df["ts"] <= cut, "tx_id"]
    pd.testing.assert_frame_equal(before.loc[early], after.loc[early])
    later = df.loc[df["ts"] > cut + 7 * DAY, "tx_id"]
    assert not before.loc[later].equals(after.loc[later])


def test_bad_window_and_unknown_output_are_named():
    cols = list(frame(50).columns)
    with pytest.raises(ValueError, match=r"fraud_history\[0\].*longer than delay"):
        make_plan(
            {"fraud_history": [{"entity": ["terminal_id"], "window": "7d", "delay": "7d"}]}, cols
        )
    with pytest.raises(ValueError, match=r"fraud_history\[0\].*unknown output"):
        make_plan({"fraud_history": [{"entity": ["terminal_id"], "outputs": ["rate"]}]}, cols)


def test_descriptions_name_the_entity_and_the_window():
    conf = {"fraud_history": [{"entity": ["terminal_id"], "delay": "7d", "outputs": OUTPUTS}]}
    (stage,) = make_plan(conf, list(frame(50).columns)).stages
    (op,) = stage.ops
    texts = [op.describe(key, "terminal_id") for key, _ in op.outputs]
    assert len(set(texts)) == 4
    assert all("terminal_id" in t and "35d" in t and "known at the time" in t for t in texts)
    assert "latest known fraud" in texts[0] and "earliest known fraud" in texts[1]
