"""Training: distributed XGBoost (CPU or CUDA) and a logistic baseline, saved without pickle.

The functional layer is :func:`train` (``client``, lazy train and validation frames, a
:class:`ModelConf`, a resolved device) returning a fitted :class:`Model` of the configured kind
(:data:`MODELS`: :class:`XGBoostModel`, :class:`LogisticModel`), which scores lazily
(:meth:`Model.score`), explains a score (:meth:`Model.contributions`) and saves in its own
format (:meth:`Model.save`, :meth:`Model.load`). :mod:`fraud_dask.train.folds` trains over the
time-based folds and selects parameters on the validation folds; :mod:`fraud_dask.train.evaluate`
measures the fold models on their test rows. This package imports neither dask nor xgboost until
a function needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fraud_dask.train.config import (
    FORBIDDEN,
    Imbalance,
    ModelConf,
    ModelKind,
    as_model_conf,
    feature_columns,
)
from fraud_dask.train.models import (
    MODELS,
    LogisticModel,
    Model,
    XGBoostModel,
    model_class,
)

__all__ = [
    "FORBIDDEN",
    "MODELS",
    "BASELINE",
    "Imbalance",
    "LogisticModel",
    "Model",
    "ModelConf",
    "ModelKind",
    "XGBoostModel",
    "feature_columns",
    "model_class",
    "train",
    "train_baseline",
]

#: The kind of the baseline trained beside the main model (``model.baseline``), and its name.
BASELINE = LogisticModel.kind


def train(
    client: Any,
    train_frame: Any,
    valid_frame: Any | None,
    conf: ModelConf | Mapping[str, Any],
    device: str = "cpu",
    *,
    label: str = "is_fraud",
    seed: int = 0,
) -> Model:
    """Train the configured model on the cluster.

    Parameters
    ----------
    client : distributed.Client
        The cluster session (never created here).
    train_frame : dask.dataframe.DataFrame
        Training rows with the inputs and the label (lazy).
    valid_frame : dask.dataframe.DataFrame or None
        Later-in-time rows: early stopping for a kind that uses them (XGBoost; None:
        ``num_boost_round`` rounds), more training rows for the others.
    conf : ModelConf or mapping
        The ``model`` config; ``kind`` chooses the class in :data:`MODELS`. A mapping (the
        fold loop's plain config with a search's overrides, a script's dict) is typed once,
        here (:func:`~fraud_dask.train.config.as_model_conf`).
    device : str
        ``cpu`` or ``cuda``, as resolved by :func:`fraud_dask.cluster.resolve_device`.
    label : str
        Label column (0/1).
    seed : int
        Random seed.

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        Bad inputs (see :func:`feature_columns`), a period with one class only, an empty frame,
        an unknown ``model.kind``.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"train: device must be resolved to 'cpu' or 'cuda', got {device!r}")
    typed = as_model_conf(conf)
    cls = model_class(typed.kind)
    return cls.fit(client, train_frame, valid_frame, typed, device, label=label, seed=seed)


def baseline_conf(conf: ModelConf | Mapping[str, Any]) -> ModelConf:
    """The config of the baseline of ``conf``: its inputs, with ``baseline_params``."""
    typed = as_model_conf(conf)
    return replace(typed, kind=ModelKind(BASELINE), params=dict(typed.baseline_params))


def train_baseline(
    client: Any,
    train_frame: Any,
    conf: ModelConf | Mapping[str, Any],
    *,
    label: str = "is_fraud",
    seed: int = 0,
) -> Model:
    """Fit the baseline of ``conf`` (``baseline_params``) on ``train_frame``; see :func:`train`."""
    return train(client, train_frame, None, baseline_conf(conf), "cpu", label=label, seed=seed)
