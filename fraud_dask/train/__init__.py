"""Training: distributed XGBoost (CPU or CUDA) and a logistic baseline, saved without pickle.

The functional layer is :func:`train` (``client``, lazy train and validation frames, a
:class:`ModelConf`, a resolved device) returning a :class:`TrainedModel`, which scores lazily
(:meth:`TrainedModel.score`) and saves in XGBoost's own format (:meth:`TrainedModel.save`).
This package imports neither dask nor xgboost until a function needs them.
"""

from __future__ import annotations

from typing import Any

from fraud_dask.train.config import (
    FORBIDDEN,
    Imbalance,
    ModelConf,
    ModelKind,
    conf_value,
    feature_columns,
)
from fraud_dask.train.model import TrainedModel

__all__ = [
    "FORBIDDEN",
    "Imbalance",
    "ModelConf",
    "ModelKind",
    "TrainedModel",
    "feature_columns",
    "train",
    "train_baseline",
]


def train(
    client: Any,
    train_frame: Any,
    valid_frame: Any | None,
    conf: Any,
    device: str = "cpu",
    *,
    label: str = "is_fraud",
    seed: int = 0,
) -> TrainedModel:
    """Train the configured model on the cluster.

    Parameters
    ----------
    client : distributed.Client
        The cluster session (never created here).
    train_frame : dask.dataframe.DataFrame
        Training rows with the inputs and the label (lazy).
    valid_frame : dask.dataframe.DataFrame or None
        Later-in-time rows for early stopping (XGBoost); None: ``num_boost_round`` rounds.
    conf : ModelConf or DictConfig
        The ``model`` config.
    device : str
        ``cpu`` or ``cuda``, as resolved by :func:`fraud_dask.cluster.resolve_device`.
    label : str
        Label column (0/1).
    seed : int
        Random seed.

    Returns
    -------
    TrainedModel

    Raises
    ------
    ValueError
        Bad inputs (see :func:`feature_columns`), a period with one class only, an empty frame.
    """
    from fraud_dask.train.fit import fit_logistic, fit_xgboost

    if device not in ("cpu", "cuda"):
        raise ValueError(f"train: device must be resolved to 'cpu' or 'cuda', got {device!r}")
    kind = conf_value(conf, "kind", "xgboost")
    if kind == "logistic":
        frame = train_frame
        if valid_frame is not None:
            import dask.dataframe as dd

            frame = dd.concat([train_frame, valid_frame])
        return fit_logistic(client, frame, conf, label=label, seed=seed)
    if kind != "xgboost":
        raise ValueError(f"model.kind: got {kind!r}, expected xgboost or logistic")
    return fit_xgboost(client, train_frame, valid_frame, conf, device, label=label, seed=seed)


def train_baseline(
    client: Any, train_frame: Any, conf: Any, *, label: str = "is_fraud", seed: int = 0
) -> TrainedModel:
    """Fit the logistic baseline of ``conf`` (dask-ml) on ``train_frame``; see :func:`train`."""
    from fraud_dask.train.fit import fit_logistic

    return fit_logistic(client, train_frame, conf, label=label, seed=seed)
