"""Reason codes: which inputs pushed a transaction's score up, as stable human-readable codes.

An input's contribution is its SHAP value from XGBoost (``pred_contribs=True``, exact TreeSHAP
on the model's rounds) or, for the logistic model, ``coef * standardized value``. The reasons of a
transaction are its ``top`` inputs with the largest positive contributions, largest first.

Codes are derived from the feature names alone (``card_id_count_1h`` -> ``CARD_ID_COUNT_1H``),
so the same feature spec gives the same codes in every model version, batch or online; the
catalog adds a sentence per code built from the feature spec (what is counted, over which entity
and window).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from fraud_dask.features.config import FeaturesConf, as_features_conf
from fraud_dask.features.plan import make_plan

_NS = 1_000_000_000
_RAW = {
    "amount": "transaction amount",
    "client_id": "merchant client",
    "category": "merchant category",
}
_AGG = {
    "count": "number of transactions",
    "sum": "total amount",
    "mean": "average amount",
    "std": "spread of amounts",
    "min": "smallest amount",
    "max": "largest amount",
}


def reason_code(feature: str) -> str:
    """The stable code of an input: its name upper-cased, other characters as ``_``."""
    return re.sub(r"[^A-Z0-9]+", "_", feature.upper()).strip("_")


def _duration(ns: int | None) -> str:
    if ns is None:
        return "all history"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if ns % (size * _NS) == 0:
            return f"{ns // (size * _NS)}{unit}"
    return f"{ns // _NS}s"


def _spec_columns(conf: FeaturesConf) -> list[str]:
    cols = ["tx_id", "ts", "amount", "is_fraud", "label_ts"]
    for group in (conf.windows, conf.risk, conf.recency, conf.amount_relative):
        for spec in group:
            cols.extend(spec.entity)
            cols.extend(getattr(spec, "distinct", []))
    for group in (conf.frequency, conf.target_encoding):
        for spec in group:
            cols.extend(spec.column)
    return list(dict.fromkeys(cols))


def _describe(kind: str, key: str, entity: str, op: Any) -> str:
    span = _duration(op.width)
    if kind == "window":
        if key.startswith("distinct:"):
            return f"distinct {key.split(':', 1)[1]} of the {entity} in {span}"
        late = f", {_duration(op.offset)} ago" if op.offset else ""
        return f"{_AGG.get(key, key)} of the {entity} in {span}{late}"
    if kind == "risk":
        what = {"count": "labelled transactions", "frauds": "known frauds", "risk": "fraud rate"}
        return f"{what.get(key, key)} of the {entity} in {span} (labels known at the time)"
    if kind == "te":
        return f"fraud rate of this {entity} value in {span} (smoothed, labels known at the time)"
    if kind == "recency":
        return f"time since the {entity}'s previous transaction"
    if kind == "relative":
        what = "amount / average" if key == "ratio" else "amount z-score"
        return f"{what} against the {entity}'s history in {span}"
    return f"{key} of the {entity}"


def reason_catalog(features: Any, columns: Sequence[str]) -> dict[str, dict[str, str]]:
    """Code and description of every model input.

    Parameters
    ----------
    features : FeaturesConf, DictConfig or mapping
        The feature spec the model was trained with (a bundle's ``features``).
    columns : sequence of str
        The model's inputs (``model.columns``).

    Returns
    -------
    dict
        Input name -> ``{"code": ..., "description": ...}``, in ``columns`` order.
    """
    conf = features if isinstance(features, FeaturesConf) else as_features_conf(features)
    plan = make_plan(conf, _spec_columns(conf))
    text: dict[str, str] = {}
    for field, name in plan.calendar:
        text[name] = {
            "hour": "hour of the day",
            "weekday": "day of the week",
            "weekend": "made on a weekend",
            "night": f"made at night (hour <= {plan.night_end_hour})",
        }[field]
    for stage in plan.stages:
        entity = "+".join(stage.key)
        for op in stage.ops:
            for key, name in op.outputs:
                text[name] = _describe(op.kind, key, entity, op)
    return {
        c: {"code": reason_code(c), "description": text.get(c, _RAW.get(c, c.replace("_", " ")))}
        for c in columns
    }


#: TreeShap tables per booster (weakly held) and iteration range.
_TREESHAP: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def tree_shap(booster: Any, iteration_range: tuple[int, int] | None) -> Any:
    """The :class:`~fraud_dask.score.treeshap.TreeShap` of a booster, built once per process."""
    from fraud_dask.score.treeshap import TreeShap

    key = None if iteration_range is None else (int(iteration_range[0]), int(iteration_range[1]))
    per_booster = _TREESHAP.setdefault(booster, {})
    if key not in per_booster:
        per_booster[key] = TreeShap(booster, key)
    return per_booster[key]


def contributions(model: Any, matrix: np.ndarray, booster: Any = None) -> np.ndarray:
    """Per-input contributions to the score's logit, shape ``(rows, inputs)``.

    XGBoost: exact path-dependent TreeSHAP (the values of ``pred_contribs=True``), computed by
    :class:`~fraud_dask.score.treeshap.TreeShap`; logistic: ``coef * z``.

    Parameters
    ----------
    model : fraud_dask.train.TrainedModel
        XGBoost (SHAP values) or logistic (``coef * z``) model.
    matrix : numpy.ndarray
        The float32 model matrix (``encode_partition`` output: categories as their codes,
        NaN when missing), inputs in model order.
    booster : xgboost.Booster, optional
        The booster to use (defaults to ``model.booster``).
    """
    if model.kind == "xgboost":
        booster = booster if booster is not None else model.booster
        out = tree_shap(booster, model.iteration_range).contributions(matrix)
        return out[:, :-1]  # the last column is the bias
    coef = model.coef
    z = (matrix.astype(np.float64) - np.asarray(coef["mean"])) / np.asarray(coef["scale"])
    z[np.isnan(z)] = 0.0
    return z * np.asarray(coef["coef"])


def top_reasons(contribs: np.ndarray, codes: Sequence[str], top: int) -> list[np.ndarray]:
    """The codes of the ``top`` largest positive contributions of each row, largest first.

    Returns
    -------
    list of numpy.ndarray
        ``top`` object arrays (reason 1, 2, ...); ``None`` where a row has fewer positive
        contributions. Ties go to the input listed first.
    """
    n, k = contribs.shape
    order = np.argsort(-contribs, axis=1, kind="stable")[:, : min(top, k)]
    values = np.take_along_axis(contribs, order, axis=1)
    table = np.asarray(list(codes), dtype=object)
    out = []
    for j in range(top):
        col = np.full(n, None, dtype=object)
        if j < order.shape[1]:
            ok = values[:, j] > 0
            col[ok] = table[order[ok, j]]
        out.append(col)
    return out
