"""Model kinds: each a :class:`Model` subclass in its own module, registered here by ``kind``.

A new kind is one module (a :class:`Model` subclass: ``fit``, ``predict_matrix``,
``contributions``, ``feature_importance``, ``_write``/``_read``) plus its line in
:data:`MODELS` (and its value in :class:`fraud_dask.train.config.ModelKind`, the config's closed
set). None of these modules imports dask or xgboost until a method needs them.
"""

from __future__ import annotations

from fraud_dask.train.models.base import FORMAT_VERSION, Model, RowScorer
from fraud_dask.train.models.logistic import LogisticModel
from fraud_dask.train.models.xgboost import XGBoostModel

__all__ = [
    "FORMAT_VERSION",
    "MODELS",
    "LogisticModel",
    "Model",
    "XGBoostModel",
    "RowScorer",
    "model_class",
]

#: ``model.kind`` -> the class that fits, scores, explains, saves and loads that kind.
MODELS: dict[str, type[Model]] = {
    XGBoostModel.kind: XGBoostModel,
    LogisticModel.kind: LogisticModel,
}


def model_class(kind: str) -> type[Model]:
    """The class registered for ``kind`` (the value of ``model.kind``).

    Raises
    ------
    ValueError
        No such kind.
    """
    if kind not in MODELS:
        raise ValueError(f"model.kind: got {kind!r}, expected {' or '.join(MODELS)}")
    return MODELS[kind]
