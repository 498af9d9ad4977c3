"""The online scorer: per-entity state, one transaction in, score and reason codes out.

The features come from :class:`fraud_dask.features.online.OnlineFeatures`: the same operation
objects as the batch pipeline (:func:`fraud_dask.features.plan.make_plan` on the bundle's
spec), each evaluating one event with its ``online`` method. This module validates events,
remembers live events for labels fed back later, builds the model row and scores it. The parity
tests replay events one by one against the batch features (tests/test_score_online.py,
tests/test_features_parity.py).

An event is checked completely before anything is changed, so a rejected event leaves the state
as it was: every field the scorer reads must have a JSON scalar type it can use (ids: integer,
string or null), ``ts`` must fall in a plausible window (at most ``max_future_s`` after the
scorer's clock, at most ``max_past_days`` before the newest event seen), and card numbers are
replaced by the batch path's HMAC tokens (:class:`fraud_dask.data.pan.PanHasher`) before they
reach the state, the result or an error message.

Several models trained on the same features can read one state (task=serve's champion and
challengers, :mod:`fraud_dask.score.arms`): :meth:`OnlineScorer.prepare` checks what the state
reads and computes the features once, :meth:`OnlineScorer.score_prepared` runs each model on
them, :meth:`OnlineScorer.commit` adds the event once.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from fraud_dask.data.pan import PAN_CANDIDATE, PAN_PATTERN, TOKEN_PREFIX, PanHasher, luhn_valid
from fraud_dask.features.online import OnlineFeatures
from fraud_dask.features.online import missing as _missing
from fraud_dask.features.plan import make_plan, spec_columns
from fraud_dask.score.reasons import reason_catalog
from fraud_dask.train.encode import Categories

if TYPE_CHECKING:
    from fraud_dask.data.sources import SourceConf

_INT64 = (-(2**63), 2**63 - 1)
_CANDIDATE = re.compile(PAN_CANDIDATE)
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + "[0-9a-f]{32}")
_PAN_INT_MIN = 10**12


def redact(text: str) -> str:
    """``text`` with every card number (Luhn-valid, 13-19 digits) replaced by ``<card number>``.

    Parameters
    ----------
    text : str
        A message that may quote a request's values.

    Returns
    -------
    str
    """
    if not _CANDIDATE.search(text):
        return text

    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return "<card number>" if luhn_valid(digits) else match.group(0)

    return PAN_PATTERN.sub(replace, text)


def _utc_ns(value: Any, what: str) -> int:
    """Nanoseconds since the epoch (UTC; naive means UTC) of a time value, or a clear error."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(redact(f"{what} is not a time: {value!r} ({exc})")) from None
    if pd.isna(stamp):
        raise ValueError(f"{what} is empty")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


class Prepared(NamedTuple):
    """An event checked and evaluated on a feature state, not yet added to it
    (:meth:`OnlineScorer.prepare`)."""

    event: dict[str, Any]  # the fields the state reads, checked and tokenized
    t: int  # ts, ns since the epoch (UTC)
    tx: Any  # tx_id
    amount: float
    features: dict[str, float]
    keys: list[Any]  # entity key per stage
    places: list[int]  # position among the entity's rows per stage


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
    hasher : PanHasher, optional
        Replaces card numbers in events by the batch path's tokens
        (:func:`fraud_dask.data.pan.hasher_from_conf` on ``cfg.data.pan``); default: a hasher
        without a key, which rejects an event holding a card number.
    pan_columns : iterable of str
        Fields whose integer values are card numbers when Luhn-valid with 13-19 digits (the
        batch path's ``card_id`` and ``data.pii_columns``); card numbers in text are tokenized
        in every field.
    max_future_s : float or None
        Reject an event whose ``ts`` (or a label's ``label_ts``) is more than this many seconds
        after ``clock()``; None: no bound (replaying simulated future data).
    max_past_days : float or None
        Reject an event more than this many days before the newest event seen; None: no bound.
    clock : callable
        The service clock (seconds since the epoch).
    """

    def __init__(self, model: Any, features: Any, columns: list[str] | None = None, *,
                 threshold: float = 0.5, top: int = 3, name: str = "model",
                 version: int = 0, hasher: PanHasher | None = None,
                 pan_columns: Iterable[str] = ("card_id",),
                 max_future_s: float | None = 300.0, max_past_days: float | None = 7.0,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
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
        #: fields held in the state as entity keys or counted values: integers, strings, null
        self.ids = [c for c in dict.fromkeys(c for s in self.plan.stages for c in s.columns)
                    if c not in self.raw]  # fmt: skip
        # what the feature state reads of an event (checked once per event when arms share the
        # state: prepare) and the model's own inputs besides (checked per arm: score_prepared)
        held = {c for s in self.plan.stages for c in s.columns}
        self._state_raw = [c for c in self.raw if c in held]
        self._model_raw = [c for c in self.raw if c not in held]
        self._state_required = [c for c in self.required if c not in self._model_raw]
        self.hasher = hasher if hasher is not None else PanHasher(None)
        self.pan_columns = frozenset(pan_columns)
        self.max_future_ns = None if max_future_s is None else int(float(max_future_s) * 1e9)
        self.max_past_ns = None if max_past_days is None else int(float(max_past_days) * 864e11)
        self.clock = clock
        #: integer or text, per id field, as in the warm-start history (decides a token's type)
        self._id_kinds: dict[str, str] = {}
        self.catalog = reason_catalog(conf, model.columns)
        self.codes = np.array([self.catalog[c]["code"] for c in model.columns], dtype=object)
        self.categories = Categories(model.categories)
        # model inputs: features (floats, NaN when missing) and raw event fields
        self._feat_cols = [c for c in model.columns if c in produced]
        self._feat_at = np.array([j for j, c in enumerate(model.columns) if c in produced], int)
        self._raw_at = [(j, c) for j, c in enumerate(model.columns) if c not in produced]
        #: live events that may still receive a label: tx_id -> (ts ns, entity key per stage)
        self._live: dict[Any, tuple[int, tuple[Any, ...]]] = {}
        #: the model's path for one row: score and contributions (Model.row_scorer)
        self.rows = model.row_scorer()

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
        for c in [*self.ids, *self.pan_columns]:
            if c in history.columns and len(history):
                kind = {"i": "int", "u": "int", "O": "str"}.get(history[c].dtype.kind)
                if kind:
                    self._id_kinds[c] = kind
        self.state.warm_start(history)
        return self

    def warm_start_source(
        self,
        data_cfg: SourceConf | Mapping[str, Any],
        until: Any = None,
        *,
        exact_recency: bool = True,
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
            # in place: scorers sharing the state share this dict (share_state)
            for tx in [tx for tx, v in self._live.items() if v[0] <= oldest]:
                del self._live[tx]
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
        if isinstance(is_fraud, bool) or (type(is_fraud) is int and is_fraud in (0, 1)):
            value = int(is_fraud)
        else:
            raise ValueError(redact(f"label: is_fraud must be 0 or 1, got {is_fraud!r}"))
        if isinstance(tx_id, bool) or not isinstance(tx_id, int | str):
            raise ValueError(redact(f"label: tx_id must be an integer or a string, got {tx_id!r}"))
        tx_id = self._token("tx_id", tx_id)
        if label_ts is None:
            known = self.newest
        else:
            if not isinstance(label_ts, str | dt.datetime):
                raise ValueError(
                    redact(f"label: label_ts must be an ISO 8601 time, got {label_ts!r}")
                )
            known = _utc_ns(label_ts, "label: label_ts")
            self._check_future(known, "label: label_ts")
        if tx_id not in self._live:
            raise KeyError(f"label: tx_id {tx_id!r} was not scored here, or is too old to matter")
        t, keys = self._live[tx_id]
        return self.state.set_label(t, tx_id, keys, value, known)

    @property
    def entities(self) -> dict[str, int]:
        """Entities held per key (e.g. ``{"card_id": 250, ...}``)."""
        return self.state.entities

    # -- one event --------------------------------------------------------------------------
    def _token(self, col: str, value: Any) -> Any:
        """``value`` with card numbers replaced by the batch path's tokens (same type rules)."""
        if isinstance(value, str):
            if not _CANDIDATE.search(value) or _TOKEN.fullmatch(value):
                return value
            where = f"event: field {col!r}"
            if col in self.pan_columns and self._id_kinds.get(col) == "int":
                digits = re.sub(r"[ -]", "", value)
                if PAN_PATTERN.fullmatch(value) and luhn_valid(digits):
                    return self.hasher.int_token(digits, where)

            def replace(match: re.Match[str]) -> str:
                digits = re.sub(r"[ -]", "", match.group(0))
                return self.hasher.token(digits, where) if luhn_valid(digits) else match.group(0)

            return PAN_PATTERN.sub(replace, value)
        if (
            type(value) is int
            and col in self.pan_columns
            and _PAN_INT_MIN <= value <= _INT64[1]
            and luhn_valid(str(value))
            and not self._held(col, value)
        ):
            where = f"event: field {col!r}"
            if self._id_kinds.get(col) == "str":
                return self.hasher.token(str(value), where)
            return self.hasher.int_token(str(value), where)
        return value

    def _held(self, col: str, value: Any) -> bool:
        """Whether ``value`` is already an entity key of ``col``: then it is a token (a number
        is never held raw), e.g. an id read back from the tokenized history; an integer token
        can itself be Luhn-valid."""
        return any(s.key == (col,) and value in s.entities for s in self.state.stages)

    def _check_future(self, t: int, what: str) -> None:
        """Reject a time after the service clock; ``{when}`` in ``what`` becomes ``t`` as a UTC
        time in the message (formatted only then: most events pass)."""
        if self.max_future_ns is not None:
            now = int(self.clock() * 1e9)
            if t > now + self.max_future_ns:
                ahead = (t - now) / 1e9
                what = what.replace("{when}", str(pd.Timestamp(t, unit="ns", tz="UTC")))
                raise ValueError(
                    f"{what} is {ahead:.0f} s after the service clock "
                    f"({pd.Timestamp(now, unit='ns', tz='UTC').isoformat()}); at most "
                    f"{self.max_future_ns / 1e9:g} s allowed (score.serve.max_future_s)"
                )

    def _parse(
        self,
        event: Mapping[str, Any],
        required: list[str] | None = None,
        raw: list[str] | None = None,
    ) -> tuple[dict[str, Any], int, Any, float]:
        """Check every field the scorer reads; the event with card numbers tokenized, its time,
        tx_id and amount. Raises ValueError (no PAN in the message) and changes nothing.

        ``required`` and ``raw`` (default: all of them) narrow the check to the fields the
        feature state reads (:meth:`prepare`)."""
        if not isinstance(event, Mapping):
            raise ValueError(f"event: expected a JSON object, got {type(event).__name__}")
        missing = [c for c in (self.required if required is None else required) if c not in event]
        if missing:
            raise ValueError(f"event: missing field(s) {missing}; required: {self.required}")
        clean = dict(event)
        for c in self.ids:
            v = clean.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if isinstance(v, float) and v.is_integer() and abs(v) <= 2**53:
                v = int(v)  # JSON 5.0: the integer id 5 (and a card number's rule below)
            if isinstance(v, bool) or not isinstance(v, int | str):
                raise ValueError(
                    redact(f"event: field {c!r} must be an integer, a string or null, got {v!r}")
                )
            clean[c] = self._token(c, v)
        self._clean_raw(clean, self.raw if raw is None else raw)
        raw_ts = clean["ts"]
        if isinstance(raw_ts, bool) or not isinstance(raw_ts, str | dt.datetime | pd.Timestamp):
            raise ValueError(redact(f"event: field 'ts' must be an ISO 8601 time, got {raw_ts!r}"))
        t = _utc_ns(raw_ts, "event: field 'ts'")
        self._check_future(t, "event: field 'ts' ({when})")
        if self.max_past_ns is not None and t < self.newest - self.max_past_ns:
            newest = pd.Timestamp(self.newest, unit="ns", tz="UTC").isoformat()
            raise ValueError(
                f"event: field 'ts' ({pd.Timestamp(t, unit='ns', tz='UTC')}) is more than "
                f"{self.max_past_ns / 864e11:g} days before the newest event seen ({newest}) "
                "(score.serve.max_past_days)"
            )
        amount = clean["amount"]
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or (isinstance(amount, int) and not 0 <= amount < 2**1023)
            or not (math.isfinite(amount) and amount >= 0)
        ):
            raise ValueError(
                redact(f"event: field 'amount' must be a finite number >= 0, got {amount!r}")
            )
        tx = clean["tx_id"]
        tx_dtype = self.state.tx_dtype
        want_int = tx_dtype is None or tx_dtype is np.int64
        if (
            isinstance(tx, bool)
            or not isinstance(tx, int | str)
            or (tx_dtype is not None and isinstance(tx, int) != want_int)
            or (isinstance(tx, int) and not _INT64[0] <= tx <= _INT64[1])
        ):
            kind = "an integer (int64)" if want_int else "a string"
            raise ValueError(redact(f"event: field 'tx_id' must be {kind}, got {tx!r}"))
        tx = clean["tx_id"] = self._token("tx_id", tx)
        self.state.ensure(np.int64 if isinstance(tx, int) else object)
        return clean, t, tx, float(amount)

    def _clean_raw(self, clean: dict[str, Any], columns: list[str]) -> None:
        """Check the raw model inputs ``columns`` of ``clean``; tokenize card numbers in place."""
        for c in columns:
            v = clean.get(c)
            if v is None or c == "amount":  # amount: checked by _parse
                continue
            if c in self.categories:
                if not isinstance(v, int | str | float):
                    raise ValueError(
                        redact(f"event: field {c!r} must be a string, a number or null, got {v!r}")
                    )
                clean[c] = self._token(c, v)
            elif not isinstance(v, int | float) or (
                isinstance(v, int) and not -(2**1023) < v < 2**1023
            ):
                raise ValueError(redact(f"event: field {c!r} must be a number or null, got {v!r}"))

    def features(self, event: Mapping[str, Any]) -> dict[str, float]:
        """The event's features from the current state (the state is not changed)."""
        clean, t, tx, amount = self._parse(event)
        return self.state.evaluate(clean, t, tx, amount)[0]

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
        return self.rows.score(row)

    def reasons(self, row: np.ndarray) -> list[dict[str, Any]]:
        """The top positive contributions of one model row, as codes with descriptions."""
        contrib = self.rows.contributions(row)
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
            A required field is missing or has a bad value (the field is named), or ``ts`` is
            outside the plausible window; the state is then unchanged.
        """
        started = time.perf_counter()
        event, t, tx, amount = self._parse(event)
        feats, keys, places = self.state.evaluate(event, t, tx, amount)
        result = self._result(event, tx, feats, reasons)
        if update:
            self.commit(Prepared(event, t, tx, amount, feats, keys, places))
        result["latency_ms"] = (time.perf_counter() - started) * 1e3
        return result

    def _result(self, fields: Mapping[str, Any], tx: Any, feats: Mapping[str, float],
                reasons: bool) -> dict[str, Any]:  # fmt: skip
        row = self._vector(fields, feats)
        score = self._predict(row)
        return {
            "tx_id": tx,
            "score": score,
            "alert": score >= float(np.float32(self.threshold)),
            "threshold": self.threshold,
            "reasons": self.reasons(row) if reasons else [],
            "model": {"name": self.name, "version": self.version},
        }

    # -- one feature state for several models (fraud_dask.score.arms) -----------------------
    def shares_state_with(self, other: OnlineScorer) -> bool:
        """Whether ``other`` computes the same features from the same checked fields.

        True when both plans are equal (the same operations over the same entity keys, from
        the same feature spec and source columns) and both check and tokenize the fields the
        state reads alike (id fields, card-number columns and hash key, time bounds, clock).
        Such scorers can read one :class:`~fraud_dask.features.online.OnlineFeatures`
        (:meth:`share_state`) and give the scores each gives alone.
        """
        return (
            self.plan == other.plan
            and self.ids == other.ids
            and [(c, c in self.categories) for c in self._state_raw]
            == [(c, c in other.categories) for c in other._state_raw]
            and self.pan_columns == other.pan_columns
            and self.hasher.same_key(other.hasher)
            and self.max_future_ns == other.max_future_ns
            and self.max_past_ns == other.max_past_ns
            and self.clock == other.clock
        )

    def share_state(self, owner: OnlineScorer) -> None:
        """Read ``owner``'s feature state (and its live events) instead of an own one.

        Only ``owner`` adds events to the state from then on (:meth:`prepare` and
        :meth:`commit` through it, :meth:`score_prepared` here); scoring through this
        scorer's :meth:`score` as well would add each event twice.

        Raises
        ------
        ValueError
            The scorers compute different features (:meth:`shares_state_with`).
        """
        if owner is self:
            return
        if not self.shares_state_with(owner):
            raise ValueError(
                f"{self.name} v{self.version} cannot share the feature state of "
                f"{owner.name} v{owner.version}: their features differ"
            )
        self.state, self._id_kinds, self._live = owner.state, owner._id_kinds, owner._live

    def prepare(self, event: Mapping[str, Any], *, every_field: bool = False) -> Prepared:
        """Check the fields the feature state reads and compute the event's features.

        The state is not changed (:meth:`commit` adds the event). Each scorer sharing the
        state then scores the features with :meth:`score_prepared`.

        Parameters
        ----------
        event : mapping
            As for :meth:`score`.
        every_field : bool
            Check this model's own inputs too, in :meth:`score`'s order (a rejected event gets
            the message :meth:`score` gives).

        Raises
        ------
        ValueError
            As :meth:`score` does for the fields the state reads (all fields: ``every_field``).
        """
        if every_field:
            clean, t, tx, amount = self._parse(event)
        else:
            clean, t, tx, amount = self._parse(event, self._state_required, self._state_raw)
        feats, keys, places = self.state.evaluate(clean, t, tx, amount)
        return Prepared(clean, t, tx, amount, feats, keys, places)

    def score_prepared(self, prepared: Prepared, event: Mapping[str, Any], *,
                       reasons: bool = True) -> dict[str, Any]:  # fmt: skip
        """Score a :meth:`prepare`-d event with this scorer's model (the state is not changed).

        ``event`` is the event as received: this model's own inputs beside the features are
        checked and read from it. The result is :meth:`score`'s without ``latency_ms``.

        Raises
        ------
        ValueError
            A model input is missing or has a bad value.
        """
        fields = prepared.event
        if self._model_raw:
            missing = [c for c in self._model_raw if c not in event]
            if missing:
                raise ValueError(f"event: missing field(s) {missing}; required: {self.required}")
            fields = dict(fields)
            fields.update((c, event[c]) for c in self._model_raw)
            self._clean_raw(fields, self._model_raw)
        return self._result(fields, prepared.tx, prepared.features, reasons)

    def commit(self, prepared: Prepared) -> None:
        """Add a :meth:`prepare`-d event to the state (once, whatever reads the state)."""
        p = prepared
        self.state.add(p.event, p.t, p.tx, p.amount, p.keys, p.places)
        if self.state.labelled:
            self._live[p.tx] = (p.t, tuple(p.keys))
            if len(self._live) > 2 * self._live_checked:
                self._forget_live()
