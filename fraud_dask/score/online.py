"""The online scorer: per-entity state, one transaction in, score and reason codes out.

The feature definitions are those of the batch pipeline (:mod:`fraud_dask.features.plan` turns
the bundle's spec into the same operations, with the same windows, offsets, label rules and
names); only the evaluation differs: instead of sliding kernels over a shuffled partition, each
event is placed among its entity's kept history by ``(ts, tx_id)`` and every operation is
evaluated for that one row with a few binary searches and small numpy reductions. The parity
test replays a day event by event against the batch features.

State per entity key: the rows within the key's horizon (the longest window + offset + label
delay of its operations) before the newest event seen, and always the entity's last row (for
time-since-previous). Rows of live events carry no label (as in
:func:`fraud_dask.features.batch.query_features`); warm-start rows keep their ``is_fraud`` and
``label_ts``, and a label counts only once ``label_ts <= t``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from fraud_dask.features.batch import ts_ns
from fraud_dask.features.plan import Op, Stage, make_plan
from fraud_dask.score.reasons import reason_catalog

_I64_MAX = np.iinfo(np.int64).max
_UNBOUNDED = 2**62


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _utc_ns(value: Any, what: str) -> int:
    """Nanoseconds since the epoch (UTC; naive means UTC) of a time value, or a clear error."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not a time: {value!r} ({exc})") from None
    if pd.isna(stamp):
        raise ValueError(f"{what} is empty")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


class _History:
    """One entity's rows, sorted by (ts, tx_id), in growable numpy arrays; live rows [lo, n)."""

    __slots__ = ("amount", "cols", "known", "label", "lo", "n", "ts", "tx")

    def __init__(self, cols: tuple[str, ...], tx_dtype: Any, size: int = 8) -> None:
        self.ts = np.empty(size, np.int64)
        self.tx = np.empty(size, tx_dtype)
        self.amount = np.empty(size, np.float64)
        self.label = np.empty(size, np.int64)
        self.known = np.empty(size, np.int64)
        self.cols = {c: np.empty(size, object) for c in cols}
        self.lo = 0
        self.n = 0

    def _arrays(self) -> list[np.ndarray]:
        return [self.ts, self.tx, self.amount, self.label, self.known, *self.cols.values()]

    def _grow(self) -> None:
        live = self.n - self.lo
        size = max(8, 2 * live + 2)
        names = ["ts", "tx", "amount", "label", "known"]
        for name in names:
            old = getattr(self, name)
            new = np.empty(size, old.dtype)
            new[:live] = old[self.lo : self.n]
            setattr(self, name, new)
        for c, old in self.cols.items():
            new = np.empty(size, object)
            new[:live] = old[self.lo : self.n]
            self.cols[c] = new
        self.lo, self.n = 0, live

    def position(self, t: int, tx: Any) -> int:
        """Rows before (t, tx) in (ts, tx_id) order, counted from ``lo``."""
        ts = self.ts[self.lo : self.n]
        p = int(np.searchsorted(ts, t, "left"))
        stop = int(np.searchsorted(ts, t, "right"))
        while p < stop and self.tx[self.lo + p] < tx:
            p += 1
        return p

    def insert(self, p: int, t: int, tx: Any, amount: float, label: int, known: int,
               values: Mapping[str, Any]) -> None:  # fmt: skip
        if self.n == self.ts.shape[0]:
            self._grow()
        at = self.lo + p
        if at < self.n:  # out of order: shift the later rows by one
            for arr in self._arrays():
                arr[at + 1 : self.n + 1] = arr[at : self.n]
        self.ts[at], self.tx[at], self.amount[at] = t, tx, amount
        self.label[at], self.known[at] = label, known
        for c, arr in self.cols.items():
            v = values.get(c)
            arr[at] = None if _missing(v) else v
        self.n += 1

    def prune(self, before: int) -> None:
        """Forget rows with ``ts <= before``, always keeping the last row."""
        k = int(np.searchsorted(self.ts[self.lo : self.n], before, "right"))
        self.lo += min(k, self.n - self.lo - 1)


def _window(ts: np.ndarray, t: int, p: int, width: int | None, offset: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of the first ``p`` in the window ``(t - offset - width, t - offset]``."""
    if width is None:
        lo = 0
    else:
        lo = int(ts[:p].searchsorted(t - offset - width, "right"))
    hi = p if offset == 0 else int(ts[:p].searchsorted(t - offset, "right"))
    return lo, max(hi, lo)


def _moments(x: np.ndarray, extra: float | None) -> tuple[float, float, float]:
    """Sum (exact), mean and sample std of ``x`` plus ``extra`` (the current row) if given."""
    values = x.tolist()
    if extra is not None:
        values.append(extra)
    k = len(values)
    if k == 0:
        return 0.0, math.nan, math.nan
    total = math.fsum(values)
    mean = total / k
    if k == 1:
        return total, mean, math.nan
    if k <= 16:
        squares = math.fsum([(v - mean) ** 2 for v in values])
    else:  # long windows: one vectorised pass
        d = x - mean
        squares = float(d @ d) + ((extra - mean) ** 2 if extra is not None else 0.0)
    return total, mean, math.sqrt(squares / (k - 1))


class _StageState:
    """The histories of one entity key and the evaluation of its operations for one event."""

    def __init__(self, stage: Stage, tx_dtype: Any) -> None:
        self.stage = stage
        self.key = stage.key
        self.cols = tuple(k.split(":", 1)[1] for op in stage.ops for k, _ in op.outputs
                          if k.startswith("distinct:"))  # fmt: skip
        self.cols = tuple(dict.fromkeys(self.cols))
        self.tx_dtype = tx_dtype
        self.entities: dict[Any, _History] = {}
        reach = []
        for op in stage.ops:
            if op.kind != "recency":
                reach.append(None if op.width is None else op.width + op.offset + (op.delay or 0))
        self.horizon = None if None in reach else max(reach, default=0)

    def entity(self, event: Mapping[str, Any]) -> Any:
        values = tuple(event[c] for c in self.key)
        if any(_missing(v) for v in values):
            return None
        return values[0] if len(values) == 1 else values

    def compute(self, key: Any, t: int, tx: Any, amount: float, event: Mapping[str, Any],
                out: dict[str, float]) -> int:  # fmt: skip
        """Write the stage's features of the event into ``out``; return its position."""
        h = self.entities.get(key) if key is not None else None
        if key is None:
            for name in self.stage.names:
                out[name] = math.nan
            return 0
        if h is None:
            ts = amounts = labels = known = np.empty(0, np.int64)
            amounts = np.empty(0, np.float64)
            p = 0
        else:
            p = h.position(t, tx)
            ts, amounts = h.ts[h.lo : h.n], h.amount[h.lo : h.n]
            labels, known = h.label[h.lo : h.n], h.known[h.lo : h.n]
        for op in self.stage.ops:
            self._op(op, h, p, ts, amounts, labels, known, t, amount, event, out)
        return p

    def _op(self, op: Op, h: _History | None, p: int, ts: np.ndarray, amounts: np.ndarray,
            labels: np.ndarray, known: np.ndarray, t: int, amount: float,
            event: Mapping[str, Any], out: dict[str, float]) -> None:  # fmt: skip
        kind = op.kind
        if kind == "recency":
            out[op.outputs[0][1]] = (t - int(ts[p - 1])) / 1e9 if p > 0 else math.nan
            return
        if kind in ("risk", "te"):
            if op.delay is not None:
                lo, hi = _window(ts, t, p, op.width, op.delay)
                count = float(hi - lo)
                frauds = float(labels[lo:hi].sum())
            else:
                lo, _ = _window(ts, t, p, op.width, 0)
                ok = known[lo:p] <= t
                count = float(ok.sum())
                frauds = float(labels[lo:p][ok].sum())
            for key, name in op.outputs:
                if key == "count":
                    out[name] = count
                elif key == "frauds":
                    out[name] = frauds
                elif key == "risk":
                    out[name] = frauds / count if count > 0 else 0.0
                elif op.smoothing == 0:
                    out[name] = frauds / count if count > 0 else op.prior
                else:
                    out[name] = (frauds + op.smoothing * op.prior) / (count + op.smoothing)
            return
        lo, hi = _window(ts, t, p, op.width, op.offset)
        current = op.offset == 0 and op.include_current
        k = hi - lo + current
        total = mean = std = math.nan
        if kind == "relative" or op.moments:
            total, mean, std = _moments(amounts[lo:hi], amount if current else None)
        if kind == "relative":
            for key, name in op.outputs:
                if key == "ratio":
                    out[name] = amount / mean if mean != 0 else math.nan
                else:
                    out[name] = (amount - mean) / std if std > 0 else math.nan
            return
        for key, name in op.outputs:
            if key == "count":
                out[name] = float(k)
            elif key == "sum":
                out[name] = total
            elif key == "mean":
                out[name] = mean
            elif key == "std":
                out[name] = std
            elif key == "min" or key == "max":
                if k == 0:
                    out[name] = math.nan
                else:
                    x = amounts[lo:hi]
                    if hi > lo:
                        m = float(x.min() if key == "min" else x.max())
                        out[name] = (min(m, amount) if key == "min" else max(m, amount)) \
                            if current else m  # fmt: skip
                    else:
                        out[name] = amount
            else:  # distinct:<column>
                col = key[9:]
                seen = set(h.cols[col][h.lo + lo : h.lo + hi].tolist()) if h is not None else set()
                if current:
                    v = event.get(col)
                    seen.add(None if _missing(v) else v)
                out[name] = float(len(seen) - (None in seen))

    def update(self, key: Any, p: int, t: int, tx: Any, amount: float, label: int,
               known_at: int, event: Mapping[str, Any], newest: int) -> None:  # fmt: skip
        if key is None:
            return
        h = self.entities.get(key)
        if h is None:
            h = self.entities[key] = _History(self.cols, self.tx_dtype)
        h.insert(p, t, tx, amount, label, known_at, event)
        if self.horizon is not None:
            h.prune(newest - self.horizon)


class OnlineScorer:
    """Score one transaction at a time with the batch pipeline's feature definitions.

    Parameters
    ----------
    model : fraud_dask.train.TrainedModel
        The model (XGBoost or logistic).
    features : FeaturesConf, DictConfig or mapping
        The feature spec the model was trained with.
    columns : sequence of str
        Columns of the transaction source (decides which ``optional`` specs apply, as in
        training); default: every column the spec names.
    threshold : float
        ``alert`` when ``score >= threshold``.
    top : int
        Reason codes per event.
    name, version : str, int
        Recorded in each result.
    """

    def __init__(self, model: Any, features: Any, columns: list[str] | None = None, *,
                 threshold: float = 0.5, top: int = 3, name: str = "model",
                 version: int = 0) -> None:  # fmt: skip
        from fraud_dask.features.config import as_features_conf
        from fraud_dask.score.reasons import _spec_columns

        conf = as_features_conf(features)
        self.plan_conf = conf
        self.plan = make_plan(conf, list(columns) if columns else _spec_columns(conf))
        self.model, self.threshold, self.top = model, float(threshold), int(top)
        self.name, self.version = name, int(version)
        produced = set(self.plan.feature_names)
        self.raw = [c for c in model.columns if c not in produced]
        self.required = list(dict.fromkeys(
            ["tx_id", "ts", "amount", *[c for s in self.plan.stages for c in s.key], *self.raw]
        ))  # fmt: skip
        self.catalog = reason_catalog(conf, model.columns)
        self.codes = np.array([self.catalog[c]["code"] for c in model.columns], dtype=object)
        self.cat_codes = {c: {str(v): float(i) for i, v in enumerate(vals)}
                          for c, vals in model.categories.items()}  # fmt: skip
        self.zone = ZoneInfo(self.plan.timezone)
        # model inputs: features (floats, NaN when missing) and raw event fields
        self._feat_cols = [c for c in model.columns if c in produced]
        self._feat_at = np.array([j for j, c in enumerate(model.columns) if c in produced], int)
        self._raw_at = [(j, c) for j, c in enumerate(model.columns) if c not in produced]
        self.stages: list[_StageState] = []
        self.newest = -_UNBOUNDED
        self._tx_dtype: Any = None
        #: live events that may still receive a label: tx_id -> (ts ns, entity key per stage)
        self._live: dict[Any, tuple[int, tuple[Any, ...]]] = {}
        self._labelled_stages: list[int] = []
        if model.kind == "xgboost":
            from fraud_dask.score.reasons import tree_shap

            self.booster = model.booster
            self.booster.set_param({"nthread": 1})
            self.rounds = model.iteration_range
            # one compiled pass over the trees gives the margin and the SHAP values
            self.shap = tree_shap(self.booster, self.rounds)
            if self.shap.objective != "binary:logistic":
                raise ValueError(
                    f"online scoring: expected a binary:logistic model, got {self.shap.objective!r}"
                )

    @classmethod
    def from_bundle(cls, bundle: Any, columns: list[str] | None = None, **kw: Any) -> OnlineScorer:
        """A scorer for a :class:`fraud_dask.registry.ModelBundle`."""
        return cls(bundle.model, bundle.features, columns, name=bundle.name,
                   version=bundle.version, **kw)  # fmt: skip

    # -- state -----------------------------------------------------------------------------
    def _init_stages(self, tx_dtype: Any) -> None:
        if self._tx_dtype is None:
            self._tx_dtype = tx_dtype
            self.stages = [_StageState(s, tx_dtype) for s in self.plan.stages]
            self._labelled_stages = [
                i
                for i, st in enumerate(self.stages)
                if any(op.kind in ("risk", "te") for op in st.stage.ops)
            ]

    def warm_start(self, history: pd.DataFrame) -> OnlineScorer:
        """Load canonical history rows (pandas, any order) into the per-entity state.

        Rows older than each key's horizon before the newest row are dropped (the last row of
        every entity is kept). Returns ``self``.
        """
        missing = [c for c in self.required if c not in history.columns and c not in self.raw]
        if missing:
            raise ValueError(f"warm start: history lacks column(s) {missing}")
        tx = history["tx_id"]
        self._init_stages(np.int64 if tx.dtype.kind in "iu" else object)
        if not len(history):
            return self
        ts = ts_ns(history["ts"])
        self.newest = max(self.newest, int(ts.max()))
        label = history["is_fraud"].fillna(0).to_numpy(np.int64) if "is_fraud" in history \
            else np.zeros(len(history), np.int64)  # fmt: skip
        if "label_ts" in history:
            known = ts_ns(history["label_ts"])
            known = np.where(known == np.iinfo(np.int64).min, _I64_MAX, known)
        else:
            known = np.full(len(history), _I64_MAX, np.int64)
        txv = tx.to_numpy(self._tx_dtype)
        amount = history["amount"].to_numpy(np.float64)
        for st in self.stages:
            keys = history[list(st.key)]
            ok = ~keys.isna().any(axis=1).to_numpy()
            if not ok.any():
                continue
            idx = np.flatnonzero(ok)
            frame = pd.DataFrame({"_ts": ts[idx], "_tx": txv[idx], "_i": idx})
            for j, c in enumerate(st.key):
                frame[f"_k{j}"] = keys[c].to_numpy(object)[idx]
            kcols = [f"_k{j}" for j in range(len(st.key))]
            frame = frame.sort_values([*kcols, "_ts", "_tx"], kind="stable")
            values = {c: history[c].to_numpy(object) for c in st.cols}
            order = frame["_i"].to_numpy()
            # one slice of the sorted row order per entity
            starts = np.flatnonzero(
                np.r_[True, (frame[kcols].shift() != frame[kcols]).any(axis=1).to_numpy()[1:]]
            )
            bounds = np.r_[starts, len(order)]
            firsts = frame[kcols].to_numpy(object)[starts]
            for g, first in enumerate(firsts):
                key = first[0] if len(st.key) == 1 else tuple(first)
                rows = order[bounds[g] : bounds[g + 1]]
                h = st.entities.get(key)
                if h is None:
                    h = st.entities[key] = _History(st.cols, self._tx_dtype, len(rows) + 8)
                    h.ts[: len(rows)], h.tx[: len(rows)] = ts[rows], txv[rows]
                    h.amount[: len(rows)], h.label[: len(rows)] = amount[rows], label[rows]
                    h.known[: len(rows)] = known[rows]
                    for c in st.cols:
                        h.cols[c][: len(rows)] = [None if _missing(v) else v
                                                  for v in values[c][rows]]  # fmt: skip
                    h.n = len(rows)
                else:  # merge into existing state one row at a time
                    for r in rows:
                        p = h.position(int(ts[r]), txv[r])
                        vals = {c: values[c][r] for c in st.cols}
                        h.insert(p, int(ts[r]), txv[r], amount[r], label[r], known[r], vals)
            if st.horizon is not None:
                for h in st.entities.values():
                    h.prune(self.newest - st.horizon)
        return self

    def warm_start_source(
        self, data_cfg: Any, until: Any = None, *, exact_recency: bool = True
    ) -> OnlineScorer:
        """Warm-start from a transaction source: the history a new event at ``until`` needs.

        Reads ``data_cfg`` through the data layer: the rows of the feature horizon before
        ``until`` (all rows when a window is unbounded), plus the last earlier row of every
        entity with a time-since-previous feature; computes them (on the cluster of the current
        Dask client, if any) and loads them. ``until`` None: up to the newest row.
        """
        import dask

        from fraud_dask.data import load_transactions
        from fraud_dask.score.batch import _utc, load_period

        until = _utc(until)
        if until is None:
            last = load_transactions(data_cfg, columns=["ts"])["ts"].max().compute()
            until = pd.Timestamp(last) + pd.Timedelta(1, unit="ns")
        frame, _ = load_period(data_cfg, self.plan_conf, until, until, exact_recency=exact_recency)
        (history,) = dask.compute(frame)
        return self.warm_start(history)

    # -- labels ------------------------------------------------------------------------------
    _live_checked = 50_000

    def _forget_live(self) -> None:
        """Drop remembered events older than every label-reading window can reach."""
        reach = [self.stages[i].horizon for i in self._labelled_stages]
        if reach and None not in reach:  # else an unbounded window: every event can matter
            oldest = self.newest - max(r for r in reach if r is not None)
            self._live = {tx: v for tx, v in self._live.items() if v[0] > oldest}
        # next check when the dict has doubled again (not on every event)
        self._live_checked = max(50_000, len(self._live))

    def label(self, tx_id: Any, is_fraud: Any, label_ts: Any = None) -> int:
        """Record the label of an event scored earlier (a chargeback, a confirmed fraud).

        From ``label_ts`` on, the label counts in the risk and target-encoding features of
        later events, exactly as the batch features count a row's label once ``label_ts <= t``
        (specs with a fixed ``delay`` count it from the event's ``ts`` + delay instead).

        Parameters
        ----------
        tx_id : int or str
            An event passed to :meth:`score` (with ``update=True``).
        is_fraud : int or bool
            0 or 1.
        label_ts : str or datetime, optional
            When the label became known (ISO 8601; naive means UTC); default: the newest event
            time seen.

        Returns
        -------
        int
            The number of entity histories updated.

        Raises
        ------
        KeyError
            ``tx_id`` was not scored, or is older than every label window can reach.
        ValueError
            ``is_fraud`` is not 0/1, or ``label_ts`` is not a time.
        """
        if isinstance(is_fraud, bool) or is_fraud in (0, 1):
            value = int(is_fraud)
        else:
            raise ValueError(f"label: is_fraud must be 0 or 1, got {is_fraud!r}")
        if label_ts is None:
            known = self.newest
        else:
            known = _utc_ns(label_ts, "label: label_ts")
        if tx_id not in self._live:
            raise KeyError(f"label: tx_id {tx_id!r} was not scored here, or is too old to matter")
        t, keys = self._live[tx_id]
        updated = 0
        for i in self._labelled_stages:
            st, key = self.stages[i], keys[i]
            h = st.entities.get(key) if key is not None else None
            if h is None:
                continue
            p = h.position(t, tx_id)
            at = h.lo + p
            if at < h.n and h.tx[at] == tx_id and h.ts[at] == t:
                h.label[at], h.known[at] = value, known
                updated += 1
        return updated

    @property
    def entities(self) -> dict[str, int]:
        """Entities held per key (e.g. ``{"card_id": 250, ...}``)."""
        return {"+".join(s.key): len(s.entities) for s in self.stages}

    # -- one event --------------------------------------------------------------------------
    def _parse(self, event: Mapping[str, Any]) -> tuple[int, Any, float]:
        if not isinstance(event, Mapping):
            raise ValueError(f"event: expected a JSON object, got {type(event).__name__}")
        missing = [c for c in self.required if c not in event]
        if missing:
            raise ValueError(f"event: missing field(s) {missing}; required: {self.required}")
        raw_ts = event["ts"]
        if isinstance(raw_ts, bool) or not isinstance(raw_ts, str | dt.datetime | pd.Timestamp):
            raise ValueError(f"event: field 'ts' must be an ISO 8601 time, got {raw_ts!r}")
        t = _utc_ns(raw_ts, "event: field 'ts'")
        amount = event["amount"]
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or not (math.isfinite(amount) and amount >= 0)
        ):
            raise ValueError(f"event: field 'amount' must be a finite number >= 0, got {amount!r}")
        tx = event["tx_id"]
        want_int = self._tx_dtype is None or self._tx_dtype is np.int64
        if (
            isinstance(tx, bool)
            or not isinstance(tx, int | str)
            or (self._tx_dtype is not None and isinstance(tx, int) != want_int)
        ):
            kind = "an integer" if want_int else "a string"
            raise ValueError(f"event: field 'tx_id' must be {kind}, got {tx!r}")
        self._init_stages(np.int64 if isinstance(tx, int) else object)
        return t, tx, float(amount)

    def features(self, event: Mapping[str, Any]) -> dict[str, float]:
        """The event's features from the current state (the state is not changed)."""
        t, tx, amount = self._parse(event)
        out, _ = self._features(event, t, tx, amount)
        return out

    def _features(self, event: Mapping[str, Any], t: int, tx: Any, amount: float):
        out: dict[str, float] = {}
        if self.plan.calendar:
            local = dt.datetime.fromtimestamp(t // 1_000_000_000, dt.UTC).astimezone(self.zone)
            hour, weekday = local.hour, local.weekday()
            values = {"hour": hour, "weekday": weekday, "weekend": int(weekday >= 5),
                      "night": int(hour <= self.plan.night_end_hour)}  # fmt: skip
            for field, name in self.plan.calendar:
                out[name] = values[field]
        keys, places = [], []
        for st in self.stages:
            key = st.entity(event)
            keys.append(key)
            places.append(st.compute(key, t, tx, amount, event, out))
        return out, (keys, places)

    def _vector(self, event: Mapping[str, Any], feats: Mapping[str, float]) -> np.ndarray:
        row = np.empty((1, len(self.model.columns)), np.float32)
        row[0, self._feat_at] = [feats[c] for c in self._feat_cols]
        for j, c in self._raw_at:
            v = event.get(c)
            if _missing(v):
                row[0, j] = math.nan
            elif c in self.cat_codes:
                row[0, j] = self.cat_codes[c].get(str(v), math.nan)
            else:
                row[0, j] = float(v)
        return row

    def _predict(self, row: np.ndarray) -> float:
        if self.model.kind == "xgboost":
            margin = float(self.shap.margin(row)[0])
            if margin >= 0:
                return float(np.float32(1.0 / (1.0 + math.exp(-margin))))
            e = math.exp(margin)
            return float(np.float32(e / (1.0 + e)))
        frame = pd.DataFrame(row, columns=self.model.columns)
        return float(self.model.predict_partition(frame)[0])

    def reasons(self, row: np.ndarray) -> list[dict[str, Any]]:
        """The top positive contributions of one model row, as codes with descriptions."""
        from fraud_dask.score.reasons import contributions

        if self.model.kind == "xgboost":
            contrib = self.shap.contributions(row)[0, :-1]
        else:
            contrib = contributions(self.model, row)[0]
        order = np.argsort(-contrib, kind="stable")[: self.top]
        out = []
        for j in order:
            if contrib[j] > 0:
                col = self.model.columns[j]
                out.append({"code": self.catalog[col]["code"],
                            "description": self.catalog[col]["description"],
                            "contribution": round(float(contrib[j]), 6)})  # fmt: skip
        return out

    def score(self, event: Mapping[str, Any], *, update: bool = True,
              reasons: bool = True) -> dict[str, Any]:  # fmt: skip
        """Score one transaction, then add it to the state.

        Parameters
        ----------
        event : mapping
            ``tx_id``, ``ts`` (ISO 8601; naive means UTC), ``amount`` and the entity columns
            of the feature spec (null allowed: that entity's features are then missing), plus
            any raw model input (e.g. ``client_id``).
        update : bool
            Add the event to the per-entity state (default).
        reasons : bool
            Compute reason codes (SHAP contributions).

        Returns
        -------
        dict
            ``tx_id``, ``score``, ``alert``, ``threshold``, ``reasons`` (list of ``code``,
            ``description``, ``contribution``), ``model`` and ``latency_ms``.

        Raises
        ------
        ValueError
            A required field is missing or has a bad value (the field is named).
        """
        started = time.perf_counter()
        t, tx, amount = self._parse(event)
        feats, (keys, places) = self._features(event, t, tx, amount)
        row = self._vector(event, feats)
        score = self._predict(row)
        result = {
            "tx_id": tx,
            "score": score,
            "alert": score >= float(np.float32(self.threshold)),
            "threshold": self.threshold,
            "reasons": self.reasons(row) if reasons else [],
            "model": {"name": self.name, "version": self.version},
        }
        if update:
            self.newest = max(self.newest, t)
            for st, key, p in zip(self.stages, keys, places, strict=True):
                st.update(key, p, t, tx, amount, 0, _I64_MAX, event, self.newest)
            if self._labelled_stages:
                self._live[tx] = (t, tuple(keys))
                if len(self._live) > 2 * self._live_checked:
                    self._forget_live()
        result["latency_ms"] = (time.perf_counter() - started) * 1e3
        return result
