"""Replay a frame event by event through the online feature state (helper for parity tests).

Not a test module. :func:`replay` feeds each row, in (ts, tx_id) order, to
:class:`~fraud_dask.features.online.OnlineFeatures` exactly as the online scorer does (evaluate,
then add), and gives each event its label right after it is added, with its real ``label_ts``:
the online state then holds what the batch pipeline knows, so every feature (labels included)
must equal the batch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.features.batch import ts_ns
from fraud_dask.features.online import OnlineFeatures
from fraud_dask.features.plan import make_plan

NEVER = np.iinfo(np.int64).max


def replay(frame: pd.DataFrame, conf: Any, warm: float = 0.0) -> pd.DataFrame:
    """Online features of every row after the first ``warm`` share (warm-started), by tx_id."""
    d = frame.sort_values(["ts", "tx_id"], kind="stable").reset_index(drop=True)
    plan = make_plan(conf, list(d.columns))
    first = int(len(d) * warm)
    state = OnlineFeatures(plan).warm_start(d.iloc[:first])
    t_ns = ts_ns(d["ts"])
    known = ts_ns(d["label_ts"]) if "label_ts" in d else np.full(len(d), NEVER)
    known = np.where(known == np.iinfo(np.int64).min, NEVER, known)
    labels = d["is_fraud"].fillna(0).astype(int).to_numpy() if "is_fraud" in d else None
    records = d.to_dict("records")
    rows = []
    for i in range(first, len(d)):
        event = records[i]
        t, tx, amount = int(t_ns[i]), event["tx_id"], float(event["amount"])
        feats, keys, places = state.evaluate(event, t, tx, amount)
        state.add(event, t, tx, amount, keys, places)
        if labels is not None:
            state.set_label(t, tx, keys, int(labels[i]), int(known[i]))
        rows.append(feats)
    out = pd.DataFrame(rows, index=d["tx_id"].iloc[first:].to_numpy())
    return out[plan.feature_names]


def assert_same(online: pd.DataFrame, batch: pd.DataFrame, rtol: float = 1e-8) -> None:
    """Every online value equals the batch value of the same tx_id (NaN where NaN).

    Counts, labels and encodings agree exactly; sums, means and spreads to rounding: the batch
    kernels slide (compensated sums, Welford's update and downdate), the online evaluation sums
    each window afresh, and a z-score far out (|z| ~ 200) magnifies the spread's rounding.
    """
    want = batch.loc[online.index, online.columns].to_numpy(np.float64)
    got = online.to_numpy(np.float64)
    for j, col in enumerate(online.columns):
        a, b = got[:, j], want[:, j]
        ok = np.isclose(a, b, rtol=rtol, atol=1e-12, equal_nan=True)
        assert ok.all(), (
            f"{col}: {(~ok).sum()} of {len(a)} events differ online, e.g. tx "
            f"{online.index[~ok][:3].tolist()}: online {a[~ok][:3]}, batch {b[~ok][:3]}"
        )
