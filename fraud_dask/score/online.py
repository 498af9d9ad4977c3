"""The online scorer: per-entity state, one transaction in, score and reason codes out.

The features come from :class:`fraud_dask.features.online.OnlineFeatures`: the same operation
objects as the batch pipeline (:func:`fraud_dask.features.plan.make_plan` on the bundle's
spec), each evaluating one event with its ``online`` method. This module validates events,
remembers live events for labels fed back later, builds the model row and scores it. The parity
tests replay events one by one against the batch features (tests/test_score_online.py,
tests/test_features_parity.py).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.features.online import OnlineFeatures
from fraud_dask.features.online import missing as _missing
from fraud_dask.features.plan import make_plan, spec_columns
from fraud_dask.score.reasons import reason_catalog
from fraud_dask.train.encode import Categories


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

        conf = as_features_conf(features)
        self.plan_conf = conf
        self.plan = make_plan(conf, list(columns) if columns else spec_columns(conf))
        self.state = OnlineFeatures(self.plan)
        self.model, self.threshold, self.top = model, float(threshold), int(top)
        self.name, self.version = name, int(version)
        produced = set(self.plan.feature_names)
        self.raw = [c for c in model.columns if c not in produced]
        self.required = list(dict.fromkeys(
            ["tx_id", "ts", "amount", *[c for s in self.plan.stages for c in s.key], *self.raw]
        ))  # fmt: skip
        self.catalog = reason_catalog(conf, model.columns)
        self.codes = np.array([self.catalog[c]["code"] for c in model.columns], dtype=object)
        self.categories = Categories(model.categories)
        # model inputs: features (floats, NaN when missing) and raw event fields
        self._feat_cols = [c for c in model.columns if c in produced]
        self._feat_at = np.array([j for j, c in enumerate(model.columns) if c in produced], int)
        self._raw_at = [(j, c) for j, c in enumerate(model.columns) if c not in produced]
        #: live events that may still receive a label: tx_id -> (ts ns, entity key per stage)
        self._live: dict[Any, tuple[int, tuple[Any, ...]]] = {}
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
    @property
    def newest(self) -> int:
        """The newest event time seen (ns since the epoch, UTC)."""
        return self.state.newest

    def warm_start(self, history: pd.DataFrame) -> OnlineScorer:
        """Load canonical history rows (pandas, any order) into the per-entity state.

        Rows older than each key's horizon before the newest row are dropped (the last row of
        every entity is kept). Returns ``self``.
        """
        missing = [c for c in self.required if c not in history.columns and c not in self.raw]
        if missing:
            raise ValueError(f"warm start: history lacks column(s) {missing}")
        self.state.warm_start(history)
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
        reach = self.state.label_reach
        if reach is not None:  # else an unbounded window: every event can matter
            oldest = self.newest - reach
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
        return self.state.set_label(t, tx_id, keys, value, known)

    @property
    def entities(self) -> dict[str, int]:
        """Entities held per key (e.g. ``{"card_id": 250, ...}``)."""
        return self.state.entities

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
        tx_dtype = self.state.tx_dtype
        want_int = tx_dtype is None or tx_dtype is np.int64
        if (
            isinstance(tx, bool)
            or not isinstance(tx, int | str)
            or (tx_dtype is not None and isinstance(tx, int) != want_int)
        ):
            kind = "an integer" if want_int else "a string"
            raise ValueError(f"event: field 'tx_id' must be {kind}, got {tx!r}")
        self.state.ensure(np.int64 if isinstance(tx, int) else object)
        return t, tx, float(amount)

    def features(self, event: Mapping[str, Any]) -> dict[str, float]:
        """The event's features from the current state (the state is not changed)."""
        t, tx, amount = self._parse(event)
        return self.state.evaluate(event, t, tx, amount)[0]

    def _vector(self, event: Mapping[str, Any], feats: Mapping[str, float]) -> np.ndarray:
        row = np.empty((1, len(self.model.columns)), np.float32)
        row[0, self._feat_at] = [feats[c] for c in self._feat_cols]
        for j, c in self._raw_at:
            v: Any = event.get(c)
            if _missing(v):
                row[0, j] = math.nan
            elif c in self.categories:
                row[0, j] = self.categories.code(c, v)
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
        feats, keys, places = self.state.evaluate(event, t, tx, amount)
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
            self.state.add(event, t, tx, amount, keys, places)
            if self.state.labelled:
                self._live[tx] = (t, tuple(keys))
                if len(self._live) > 2 * self._live_checked:
                    self._forget_live()
        result["latency_ms"] = (time.perf_counter() - started) * 1e3
        return result
