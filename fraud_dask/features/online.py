"""The features of one event at a time, from per-entity state: the online side of the kinds.

The definitions are the batch pipeline's: :func:`~fraud_dask.features.plan.make_plan` gives the
same operations, and each one evaluates a single event with its ``online`` method (the batch
builder calls ``batch`` on the same objects). Here each event is placed among its entity's kept
rows by ``(ts, tx_id)`` and every operation sees that place through a :class:`Past`.

State per entity key: the rows within the stage's horizon (the longest reach of its operations:
window + offset + label delay) before the newest event seen, and always the entity's last row
(for time-since-previous). Rows of live events carry no label until :meth:`OnlineFeatures.set_label`
gives one; warm-start rows keep their ``is_fraud`` and ``label_ts``, and a label counts only once
``label_ts <= t``.

:class:`OnlineFeatures` is the entry point (the online scorer holds one); it knows no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.features.batch import ts_ns
from fraud_dask.features.kinds.base import kernels
from fraud_dask.features.plan import Plan, Stage

_I64_MAX = np.iinfo(np.int64).max
_UNBOUNDED = 2**62
_EMPTY_I = np.empty(0, np.int64)
_EMPTY_F = np.empty(0, np.float64)


def missing(value: Any) -> bool:
    """Whether an event field is missing (None, NA, NaT or a float NaN)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


class History:
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
        for name in ("ts", "tx", "amount", "label", "known"):
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
            arr[at] = None if missing(v) else v
        self.n += 1

    def prune(self, before: int) -> None:
        """Forget rows with ``ts <= before``, always keeping the last row."""
        k = int(np.searchsorted(self.ts[self.lo : self.n], before, "right"))
        self.lo += min(k, self.n - self.lo - 1)


class Past:
    """What an operation sees of one event: the event and its entity's kept rows before it.

    ``ts``, ``amounts``, ``labels`` and ``known`` (label time, ns; int64 max when unknown) are
    the kept rows in (ts, tx_id) order; the event sits at position ``p`` among them (the rows
    ``[0, p)`` come before it). ``t`` and ``amount`` are the event's.
    """

    __slots__ = ("amount", "amounts", "event", "h", "known", "labels", "p", "t", "ts")

    def __init__(self, h: History | None, p: int, t: int, amount: float,
                 event: Mapping[str, Any]) -> None:  # fmt: skip
        self.h, self.p, self.t, self.amount, self.event = h, p, t, amount, event
        if h is None:
            self.ts = self.labels = self.known = _EMPTY_I
            self.amounts = _EMPTY_F
        else:
            lo, n = h.lo, h.n
            self.ts, self.amounts = h.ts[lo:n], h.amount[lo:n]
            self.labels, self.known = h.label[lo:n], h.known[lo:n]

    def values(self, col: str, lo: int, hi: int) -> list[Any]:
        """The kept rows ``[lo, hi)`` of a stored column (None where missing)."""
        h = self.h
        return [] if h is None else h.cols[col][h.lo + lo : h.lo + hi].tolist()

    def field(self, col: str) -> Any:
        """The event's own value of a column (None where missing)."""
        v = self.event.get(col)
        return None if missing(v) else v


class StageState:
    """The histories of one entity key and the evaluation of its operations for one event."""

    def __init__(self, stage: Stage, tx_dtype: Any) -> None:
        self.stage = stage
        self.key = stage.key
        self.ops = stage.ops
        self.cols = tuple(dict.fromkeys(c for op in stage.ops for c in op.columns))
        self.tx_dtype = tx_dtype
        self.entities: dict[Any, History] = {}
        self.horizon = stage.horizon

    def entity(self, event: Mapping[str, Any]) -> Any:
        """The event's entity key (a value, or a tuple for a combination); None if missing."""
        values = tuple(event[c] for c in self.key)
        if any(missing(v) for v in values):
            return None
        return values[0] if len(values) == 1 else values

    def compute(self, key: Any, t: int, tx: Any, amount: float, event: Mapping[str, Any],
                out: dict[str, float]) -> int:  # fmt: skip
        """Write the stage's features of the event into ``out``; return its position."""
        if key is None:
            for name in self.stage.names:
                out[name] = math.nan
            return 0
        h = self.entities.get(key)
        p = 0 if h is None else h.position(t, tx)
        past = Past(h, p, t, amount, event)
        for op in self.ops:
            op.online(past, out)
        return p

    def update(self, key: Any, p: int, t: int, tx: Any, amount: float, label: int,
               known_at: int, event: Mapping[str, Any], newest: int) -> None:  # fmt: skip
        """Insert the event at its position ``p`` and forget rows beyond the horizon."""
        if key is None:
            return
        h = self.entities.get(key)
        if h is None:
            h = self.entities[key] = History(self.cols, self.tx_dtype)
        h.insert(p, t, tx, amount, label, known_at, event)
        if self.horizon is not None:
            h.prune(newest - self.horizon)

    def load(self, history: pd.DataFrame, ts: np.ndarray, txv: np.ndarray, amount: np.ndarray,
             label: np.ndarray, known: np.ndarray, newest: int) -> None:  # fmt: skip
        """Load canonical history rows (the column arrays given in the frame's row order)."""
        keys = history[list(self.key)]
        ok = ~keys.isna().any(axis=1).to_numpy()
        if not ok.any():
            return
        idx = np.flatnonzero(ok)
        frame = pd.DataFrame({"_ts": ts[idx], "_tx": txv[idx], "_i": idx})
        for j, c in enumerate(self.key):
            frame[f"_k{j}"] = keys[c].to_numpy(object)[idx]
        kcols = [f"_k{j}" for j in range(len(self.key))]
        frame = frame.sort_values([*kcols, "_ts", "_tx"], kind="stable")
        values = {c: history[c].to_numpy(object) for c in self.cols}
        order = frame["_i"].to_numpy()
        # one slice of the sorted row order per entity
        starts = np.flatnonzero(
            np.r_[True, (frame[kcols].shift() != frame[kcols]).any(axis=1).to_numpy()[1:]]
        )
        bounds = np.r_[starts, len(order)]
        firsts = frame[kcols].to_numpy(object)[starts]
        for g, first in enumerate(firsts):
            key = first[0] if len(self.key) == 1 else tuple(first)
            rows = order[bounds[g] : bounds[g + 1]]
            h = self.entities.get(key)
            if h is None:
                h = self.entities[key] = History(self.cols, self.tx_dtype, len(rows) + 8)
                h.ts[: len(rows)], h.tx[: len(rows)] = ts[rows], txv[rows]
                h.amount[: len(rows)], h.label[: len(rows)] = amount[rows], label[rows]
                h.known[: len(rows)] = known[rows]
                for c in self.cols:
                    h.cols[c][: len(rows)] = [None if missing(v) else v for v in values[c][rows]]
                h.n = len(rows)
            else:  # merge into existing state one row at a time
                for r in rows:
                    p = h.position(int(ts[r]), txv[r])
                    vals = {c: values[c][r] for c in self.cols}
                    h.insert(p, int(ts[r]), txv[r], amount[r], label[r], known[r], vals)
        if self.horizon is not None:
            for h in self.entities.values():
                h.prune(newest - self.horizon)


class OnlineFeatures:
    """Per-entity state and the features of one event at a time, as the batch computes them.

    Parameters
    ----------
    plan : Plan
        From :func:`~fraud_dask.features.plan.make_plan` (the spec the model was trained with).

    Examples
    --------
    >>> state = OnlineFeatures(make_plan(conf, columns)).warm_start(history)  # doctest: +SKIP
    >>> feats, keys, places = state.evaluate(event, t, tx, amount)  # doctest: +SKIP
    >>> state.add(event, t, tx, amount, keys, places)  # doctest: +SKIP
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rows = plan.rows
        self.stages: list[StageState] = []
        self.newest = -_UNBOUNDED
        self.tx_dtype: Any = None
        #: the stages whose operations read labels (those :meth:`set_label` updates)
        self.labelled: list[int] = [i for i, s in enumerate(plan.stages) if s.reads_labels]
        # load (the first time ever: compile) the single-event kernels now, not on the first event
        k = kernels()
        k.event_window(_EMPTY_I, _EMPTY_F, 0, 0, 1, 0, 0.0, True, True)
        k.event_labels(_EMPTY_I, _EMPTY_I, _EMPTY_I, 0, 0, 1, -1)

    def ensure(self, tx_dtype: Any) -> None:
        """Fix the ``tx_id`` dtype (int64 or object) on the first rows seen."""
        if self.tx_dtype is None:
            self.tx_dtype = tx_dtype
            self.stages = [StageState(s, tx_dtype) for s in self.plan.stages]

    @property
    def label_reach(self) -> int | None:
        """How far back a label can still matter (ns); None if some label window is unbounded.

        ``-1`` when no operation reads labels.
        """
        reach = [self.plan.stages[i].horizon for i in self.labelled]
        if not reach:
            return -1
        return None if None in reach else max(r for r in reach if r is not None)

    @property
    def entities(self) -> dict[str, int]:
        """Entities held per key (e.g. ``{"card_id": 250, ...}``)."""
        return {"+".join(s.key): len(s.entities) for s in self.stages}

    def warm_start(self, history: pd.DataFrame) -> OnlineFeatures:
        """Load canonical history rows (pandas, any order) into the per-entity state.

        Rows older than each key's horizon before the newest row are dropped (the last row of
        every entity is kept). ``is_fraud`` and ``label_ts`` are used where present (absent:
        no label is known). Returns ``self``.
        """
        tx = history["tx_id"]
        self.ensure(np.int64 if tx.dtype.kind in "iu" else object)
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
        txv = tx.to_numpy(self.tx_dtype)
        amount = history["amount"].to_numpy(np.float64)
        for st in self.stages:
            st.load(history, ts, txv, amount, label, known, self.newest)
        return self

    def evaluate(self, event: Mapping[str, Any], t: int, tx: Any,
                 amount: float) -> tuple[dict[str, float], list[Any], list[int]]:  # fmt: skip
        """The event's features from the current state (the state is not changed).

        Parameters
        ----------
        event : mapping
            The event's fields (entity columns, counted columns; missing values allowed).
        t : int
            Its time, ns since the epoch (UTC).
        tx : int or str
            Its ``tx_id`` (orders events of the same ``t``).
        amount : float
            Its amount.

        Returns
        -------
        (dict, list, list)
            Feature name -> value; the event's entity key and position per stage (for
            :meth:`add`).
        """
        out: dict[str, float] = {}
        for op in self.rows:
            op.online(t, out)
        keys, places = [], []
        for st in self.stages:
            key = st.entity(event)
            keys.append(key)
            places.append(st.compute(key, t, tx, amount, event, out))
        return out, keys, places

    def add(self, event: Mapping[str, Any], t: int, tx: Any, amount: float, keys: list[Any],
            places: list[int]) -> None:  # fmt: skip
        """Add an evaluated event to the state (its label unknown until :meth:`set_label`)."""
        self.newest = max(self.newest, t)
        for st, key, p in zip(self.stages, keys, places, strict=True):
            st.update(key, p, t, tx, amount, 0, _I64_MAX, event, self.newest)

    def set_label(self, t: int, tx: Any, keys: list[Any] | tuple[Any, ...], value: int,
                  known: int) -> int:  # fmt: skip
        """Give the added event ``(t, tx)`` its label, known from ``known`` (ns) on.

        Returns the number of entity histories updated (rows already forgotten are skipped).
        """
        updated = 0
        for i in self.labelled:
            st, key = self.stages[i], keys[i]
            h = st.entities.get(key) if key is not None else None
            if h is None:
                continue
            p = h.position(t, tx)
            at = h.lo + p
            if at < h.n and h.tx[at] == tx and h.ts[at] == t:
                h.label[at], h.known[at] = value, known
                updated += 1
        return updated
