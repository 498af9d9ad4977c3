"""The feature math as pure functions of one pandas batch (no dask).

A batch must hold, for every entity it contains, the entity's whole relevant history (the Dask
builder guarantees it by shuffling on the entity; the online scorer by keeping per-entity state).
Rows may come in any order: each function sorts by (entity, ts, tx_id) itself, so ties at the
same timestamp are ordered by ``tx_id`` and the result does not depend on the input order.

- :class:`Sorted`: the batch view every kind's ``batch`` kernel reads (sorted columns, window
  bounds shared between operations).
- :func:`entity_features`: the features of one stage (one entity key) for every row of a batch.
- :func:`row_features`: the row operations' features (the calendar).
- :func:`features_frame`: every feature of a config for a pandas frame holding whole histories.

The maths of each kind lives in its module under :mod:`fraud_dask.features.kinds`; this module
only sorts, calls each operation's ``batch`` and puts the columns back in the batch's order. The
online counterpart (one event at a time) is :mod:`fraud_dask.features.online`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraud_dask.features.config import FeaturesConf

import numpy as np
import pandas as pd

from fraud_dask.features import kernels as k
from fraud_dask.features.plan import Plan, Stage, make_plan

_I64_MAX = np.iinfo(np.int64).max


def ts_ns(s: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of a datetime column; NaT becomes int64 min."""
    if not isinstance(s.dtype, pd.DatetimeTZDtype) and s.dtype.kind != "M":
        raise ValueError(f"features: column {s.name!r} must be a datetime, got dtype {s.dtype}")
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(s.dt.as_unit("ns").array.asi8, dtype=np.int64)


def _codes(batch: pd.DataFrame, key: tuple[str, ...]) -> np.ndarray:
    """Integer group codes of the entity key; -1 where any of its columns is missing."""
    codes = None
    for col in key:
        c = pd.factorize(batch[col], use_na_sentinel=True)[0].astype(np.int64)
        if codes is None:
            codes = c
        else:
            both = np.where((codes < 0) | (c < 0), -1, codes * (int(c.max()) + 2) + c)
            codes = pd.factorize(both)[0].astype(np.int64)
            codes[both < 0] = -1
    assert codes is not None
    return codes


def _tx_order_key(tx: pd.Series) -> np.ndarray:
    if tx.dtype.kind in "iu":
        return tx.to_numpy(np.int64)
    return pd.factorize(tx, sort=True)[0]


class Sorted:
    """A batch sorted by (entity, ts, tx_id), with lazily built columns and window bounds.

    ``order`` maps sorted positions to batch rows, ``starts`` holds the first sorted row of each
    entity group (and the length last), ``ts`` the sorted times (ns). Columns and window bounds
    are built on first use and shared by the stage's operations.
    """

    def __init__(self, batch: pd.DataFrame, key: tuple[str, ...]) -> None:
        self.batch = batch
        self.codes = _codes(batch, key)
        ts = ts_ns(batch["ts"])
        self.order = np.lexsort((_tx_order_key(batch["tx_id"]), ts, self.codes))
        sc = self.codes[self.order]
        change = np.flatnonzero(sc[1:] != sc[:-1]) + 1
        self.starts = np.concatenate(([0], change, [len(sc)])).astype(np.int64)
        self.ts = ts[self.order]
        self._bounds: dict[tuple[int, int, bool], tuple[np.ndarray, np.ndarray]] = {}
        self._cols: dict[str, Any] = {}

    def amount(self) -> np.ndarray:
        if "amount" not in self._cols:
            a = self.batch["amount"].to_numpy(np.float64, na_value=np.nan)
            self._cols["amount"] = np.ascontiguousarray(a[self.order])
        return self._cols["amount"]

    def label(self) -> np.ndarray:
        if "is_fraud" not in self.batch.columns:
            raise ValueError("features: risk and target encoding need an 'is_fraud' column")
        if "label" not in self._cols:
            y = self.batch["is_fraud"].fillna(0).to_numpy(np.int64)
            self._cols["label"] = np.ascontiguousarray(y[self.order])
        return self._cols["label"]

    def known(self) -> np.ndarray:
        if "label_ts" not in self.batch.columns:
            raise ValueError(
                "features: a risk or target-encoding spec without `delay` needs 'label_ts' "
                "(or build_features(..., label_delay=...))"
            )
        if "known" not in self._cols:
            t = ts_ns(self.batch["label_ts"])
            t = np.where(t == np.iinfo(np.int64).min, _I64_MAX, t)  # NaT: never known
            self._cols["known"] = np.ascontiguousarray(t[self.order])
        return self._cols["known"]

    def distinct_codes(self, col: str) -> tuple[np.ndarray, int]:
        name = "codes:" + col
        if name not in self._cols:
            c, uniques = pd.factorize(self.batch[col], use_na_sentinel=True)
            self._cols[name] = (np.ascontiguousarray(c.astype(np.int64)[self.order]), len(uniques))
        return self._cols[name]

    def bounds(
        self, width: int | None, offset: int, include: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        w = k.UNBOUNDED if width is None else np.int64(width)
        key = (int(w), int(offset), bool(include) if offset == 0 else True)
        if key not in self._bounds:
            self._bounds[key] = k.window_bounds(self.starts, self.ts, w, np.int64(offset), key[2])
        return self._bounds[key]


def entity_features(batch: pd.DataFrame, stage: Stage) -> pd.DataFrame:
    """The features of one stage (one entity key) for every row of a batch.

    Parameters
    ----------
    batch : pandas.DataFrame
        Rows with ``tx_id``, ``ts``, ``amount``, the stage's entity columns (and ``is_fraud``,
        ``label_ts``, distinct-count columns where the stage needs them); for every entity in
        it, all of its rows the windows can reach. Any row order.
    stage : Stage
        From :func:`fraud_dask.features.plan.make_plan`.

    Returns
    -------
    pandas.DataFrame
        The stage's feature columns (float64), indexed like ``batch``; rows whose entity key is
        missing get NaN.
    """
    n = len(batch)
    if n == 0:
        return pd.DataFrame({name: np.empty(0) for name in stage.names}, index=batch.index)
    s = Sorted(batch, stage.key)
    missing = s.codes < 0
    result = {}
    for op in stage.ops:
        values = op.batch(s)
        for key, name in op.outputs:
            col = np.empty(n, np.float64)
            col[s.order] = values[key]
            if missing.any():
                col[missing] = np.nan
            result[name] = col
    return pd.DataFrame(result, index=batch.index)


def row_features(batch: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The row operations' features (hour, weekday, weekend, night flags as int8).

    Parameters
    ----------
    batch : pandas.DataFrame
        Rows with a ``ts`` column.
    plan : Plan
        Its ``rows`` say which fields, their names, the time zone and the last night hour.

    Returns
    -------
    pandas.DataFrame
        One column per row-operation output, indexed like ``batch``.
    """
    result: dict[str, np.ndarray] = {}
    for op in plan.rows:
        values = op.batch(batch)
        for key, name in op.outputs:
            result[name] = values[key]
    return pd.DataFrame(result, index=batch.index)


def features_frame(df: pd.DataFrame, conf: FeaturesConf | Mapping[str, Any] | Plan) -> pd.DataFrame:
    """Every feature of a config for a pandas frame that holds whole entity histories.

    Parameters
    ----------
    df : pandas.DataFrame
        Canonical rows (any order).
    conf : FeaturesConf, DictConfig, mapping or Plan
        The features config (or a plan already made from it).

    Returns
    -------
    pandas.DataFrame
        ``df``'s kept columns plus the feature columns, indexed like ``df``.
    """
    plan = conf if isinstance(conf, Plan) else make_plan(conf, list(df.columns))
    parts = [df[plan.keep]]
    if plan.rows:
        parts.append(row_features(df, plan))
    parts.extend(entity_features(df, stage) for stage in plan.stages)
    return pd.concat(parts, axis=1)
