"""Reason codes: which inputs pushed a transaction's score up, as stable human-readable codes.

An input's contribution is what the model's :meth:`~fraud_dask.train.Model.contributions` says
(XGBoost: its exact TreeSHAP value on the model's rounds; the logistic model: ``coef *
standardized value``). The reasons of a
transaction are its ``top`` inputs with the largest positive contributions, largest first.

Codes are derived from the feature names alone (``card_id_count_1h`` -> ``CARD_ID_COUNT_1H``),
so the same feature spec gives the same codes in every model version, batch or online; the
catalog adds a sentence per code: each feature's operation describes itself (its ``describe``
method in :mod:`fraud_dask.features.kinds`: what is counted, over which entity and window).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from fraud_dask.features.plan import make_plan, spec_columns

_RAW = {
    "amount": "transaction amount",
    "client_id": "merchant client",
    "category": "merchant category",
}


def reason_code(feature: str) -> str:
    """The stable code of an input: its name upper-cased, other characters as ``_``."""
    return re.sub(r"[^A-Z0-9]+", "_", feature.upper()).strip("_")


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
    plan = make_plan(features, spec_columns(features))
    text: dict[str, str] = {}
    for row_op in plan.rows:
        for key, name in row_op.outputs:
            text[name] = row_op.describe(key)
    for stage in plan.stages:
        entity = "+".join(stage.key)
        for op in stage.ops:
            for key, name in op.outputs:
                text[name] = op.describe(key, entity)
    return {
        c: {"code": reason_code(c), "description": text.get(c, _RAW.get(c, c.replace("_", " ")))}
        for c in columns
    }


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
