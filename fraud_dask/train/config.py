"""The ``model`` config group's schema and the choice of model inputs.

:class:`ModelConf` is a spec: which model (``kind``), on which device, with which parameters,
how class imbalance and early stopping are handled, which columns go in. The YAML options under
``configs/model/`` hold values only and are merged onto it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fraud_dask.cluster import Device

#: Columns that never enter a model: identifiers, times, the label and the generator's truth.
FORBIDDEN = ("tx_id", "ts", "label_ts", "is_fraud", "scenario", "fraud_scenario")
#: Entity keys and bookkeeping columns left out unless named in ``features`` or ``categorical``.
ENTITY_KEYS = (
    "card_id",
    "customer_id",
    "terminal_id",
    "merchant_id",
    "device_id",
    "client_id",
    "day",
)


class ModelKind(enum.StrEnum):
    """Which learner ``task=train`` fits as the main model."""

    xgboost = "xgboost"
    logistic = "logistic"


class Imbalance(enum.StrEnum):
    """How the rare fraud class is weighted during training."""

    none = "none"
    scale_pos_weight = "scale_pos_weight"  # XGBoost's parameter, negatives / positives by default
    weights = "weights"  # a per-row weight column: frauds weigh pos_weight, genuine rows 1


def _xgb_defaults() -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": 6,
        "learning_rate": 0.1,
        "min_child_weight": 1.0,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "max_bin": 256,
        "max_cat_to_onehot": 1,
    }


def _logistic_defaults() -> dict[str, Any]:
    return {"C": 1.0, "solver": "lbfgs", "max_iter": 200}


@dataclass
class ModelConf:
    """Schema of the ``model`` config group.

    Attributes
    ----------
    kind : ModelKind
        The main model: ``xgboost`` (distributed, ``xgboost.dask``) or ``logistic`` (dask-ml).
    device : Device
        ``auto`` (cuda when every worker has a GPU), ``cpu`` or ``cuda``; resolved once per run.
    params : dict
        XGBoost parameters (merged onto hist / binary:logistic / aucpr defaults).
    num_boost_round : int
        Most boosting rounds.
    early_stopping_rounds : int or None
        Stop when the validation metric has not improved for this many rounds; None: off.
    valid_days : int or None
        Days at the end of each training period held out, later in time, for early stopping.
        0: no early stopping (``num_boost_round`` rounds); None: the shortest period that holds
        ``valid_min_frauds`` frauds, at most ``valid_max_share`` of the training period.
    valid_min_frauds : int
        Frauds the early-stopping period should hold; fewer is a warning (log, metrics, report).
    valid_max_share : float
        Largest share of a training period held out for early stopping when ``valid_days`` is
        None.
    refit : bool
        After early stopping, retrain on the whole training period with the best round count
        (false: keep the early-stopped model, trained on the period less its early-stopping
        days).
    refit_max_rows : int or None
        ``refit`` applies to training periods of at most this many rows (None: to every
        period). Above, the early-stopped model is kept: its early-stopping days are a small
        share of a long period, and a refit is a second fit of it.
    max_rows : int or None
        Training rows above which XGBoost fits every fraud and a share of the genuine rows, each
        genuine row weighing the inverse of that share (the weighted rows stand for the whole
        period); None: every row.
    imbalance : Imbalance
        ``none``, ``scale_pos_weight`` or ``weights``.
    pos_weight : float or None
        Weight of a fraud; None: negatives / positives of the training period.
    categorical : list of str
        Columns used as native XGBoost categories (a fixed category list per column).
    categories : dict
        Fixed category lists per column; columns of ``categorical`` not listed here get the
        sorted values seen in training (unseen values score as missing).
    features : list of str
        Model inputs; empty: every numeric or boolean column that is not excluded.
    exclude : list of str
        Columns left out of the automatic selection.
    baseline : bool
        Also train the logistic baseline in the same run (when ``kind`` is xgboost).
    baseline_params : dict
        dask-ml ``LogisticRegression`` parameters of the baseline (``C``, ``solver``,
        ``max_iter``, ``penalty``, ``tol``), or ``tol_per_row``: ``tol`` scaled by the
        training rows (dask-glm sums the loss over the rows; scikit-learn's ``tol`` is on the
        mean).
    search : dict
        Grid of XGBoost parameters (name -> list of values) tried on the validation folds; the
        best mean ``select_metric`` wins; empty: no search.
    select_metric : str
        Metric of :func:`fraud_dask.metrics.evaluate` that picks the winner of ``search``.
    partitions_per_worker : int
        Training partitions per worker after rebalancing.
    retries : int
        Attempts of an XGBoost fit after the first when a worker is lost (or the fit passes
        ``timeout_s``); then the run fails with one line (:mod:`fraud_dask.train.guard`).
    timeout_s : float or None
        Seconds one XGBoost fit may take; None: derived from the rows and rounds.
    collective_timeout_s : int or None
        Seconds a worker may wait in one of XGBoost's collective operations (a peer that died
        makes it fail instead of waiting forever); None: no timeout.
    """

    kind: ModelKind = ModelKind.xgboost
    device: Device = Device.auto
    params: dict[str, Any] = field(default_factory=_xgb_defaults)
    num_boost_round: int = 500
    early_stopping_rounds: int | None = 50
    valid_days: int | None = None
    valid_min_frauds: int = 50
    valid_max_share: float = 0.25
    refit: bool = True
    refit_max_rows: int | None = None
    max_rows: int | None = None
    imbalance: Imbalance = Imbalance.none
    pos_weight: float | None = None
    categorical: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    baseline: bool = True
    baseline_params: dict[str, Any] = field(default_factory=_logistic_defaults)
    search: dict[str, list[Any]] = field(default_factory=dict)
    select_metric: str = "average_precision"
    partitions_per_worker: int = 1
    retries: int = 2
    timeout_s: float | None = None
    collective_timeout_s: int | None = 60


#: the open maps of a model config: a plain config states them whole (no merge with defaults)
_MAPS = ("params", "baseline_params", "categories", "search")


def as_model_conf(conf: ModelConf | Mapping[str, Any]) -> ModelConf:
    """A model config as the typed :class:`ModelConf`, for callers that hold a mapping.

    :func:`fraud_dask.train.train` calls it on what it is given: the fold loop's plain configs
    (the ``model`` group with a search's overrides, :func:`fraud_dask.train.folds.model_conf`),
    and mappings from scripts and tests. Keys it lacks take the schema's defaults; ``params``,
    ``baseline_params``, ``categories`` and ``search`` are taken as given.

    Raises
    ------
    UserError
        A key the schema does not have, or a value of the wrong type (named).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from fraud_dask.errors import UserError

    if isinstance(conf, ModelConf):
        return conf
    plain = OmegaConf.to_container(conf, resolve=True) if OmegaConf.is_config(conf) else conf
    assert isinstance(plain, Mapping)
    try:
        node = OmegaConf.merge(OmegaConf.structured(ModelConf), dict(plain))
    except OmegaConfBaseException as exc:
        raise UserError(f"model: {str(exc).strip().splitlines()[0]}") from exc
    typed = OmegaConf.to_object(node)
    assert isinstance(typed, ModelConf)
    for key in _MAPS:
        if key in plain:
            setattr(typed, key, dict(plain[key]))
    return typed


def xgb_params(conf: ModelConf) -> dict[str, Any]:
    """XGBoost parameters of a model config: the defaults overlaid with ``params``."""
    return _xgb_defaults() | dict(conf.params)


def _usable(dtype: Any) -> bool:
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def feature_columns(
    dtypes: Mapping[str, Any] | pd.Series, conf: ModelConf, label: str = "is_fraud"
) -> list[str]:
    """The model inputs of a frame, in a fixed order.

    Parameters
    ----------
    dtypes : mapping or pandas.Series
        Column name -> dtype of the frame (``frame.dtypes``).
    conf : ModelConf
        Supplies ``features``, ``exclude`` and ``categorical``.
    label : str
        The label column (never an input).

    Returns
    -------
    list of str
        ``features`` when given, else every numeric or boolean column that is neither forbidden,
        an entity key, excluded, nor the label; ``categorical`` columns are appended.

    Raises
    ------
    ValueError
        A named column is missing, forbidden (identifiers, times, the label, the scenario), or
        not numeric, boolean nor categorical.
    """
    dtypes = dict(dtypes.items())
    forbidden = set(FORBIDDEN) | {label}
    named = list(conf.features)
    categorical = list(conf.categorical)
    excluded = set(conf.exclude)
    for where, cols in (("model.features", named), ("model.categorical", categorical)):
        missing = [c for c in cols if c not in dtypes]
        if missing:
            raise ValueError(
                f"{where}: column(s) {missing} not in the frame; it has {list(dtypes)}"
            )
        bad = sorted(forbidden & set(cols))
        if bad:
            raise ValueError(
                f"{where}: {bad} can never be a model input (identifiers, times, the label "
                f"and the fraud scenario are excluded: {sorted(forbidden)})"
            )
    if named:
        chosen = [c for c in named if c not in categorical]
    else:
        skip = forbidden | set(ENTITY_KEYS) | excluded | set(categorical)
        chosen = [c for c, t in dtypes.items() if c not in skip and _usable(t)]
    wrong = [f"{c} ({dtypes[c]})" for c in chosen if not _usable(dtypes[c])]
    if wrong:
        raise ValueError(
            f"model.features: {wrong} are neither numeric nor boolean; list text or category "
            "columns under model.categorical"
        )
    columns = chosen + categorical
    if not columns:
        raise ValueError(f"model: no input columns left among {list(dtypes)}")
    return columns


def require_columns(columns: Iterable[str], frame_columns: Iterable[str], where: str) -> None:
    """Fail with the missing names when a frame lacks columns a model needs."""
    have = set(frame_columns)
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; the frame has {sorted(have)}")


def refits(conf: ModelConf | Mapping[str, Any], rows: int) -> bool:
    """Whether a fit that early-stopped on a training period of ``rows`` rows (its
    early-stopping rows included) is retrained on the whole period: ``refit``, and ``rows`` at
    most ``refit_max_rows`` when that is set."""
    get = conf.get if isinstance(conf, Mapping) else lambda k, d=None: getattr(conf, k, d)
    limit = get("refit_max_rows", None)
    return bool(get("refit", False)) and (limit is None or int(rows) <= int(limit))
