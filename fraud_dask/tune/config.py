"""Schema of the ``tune`` config group (``task=tune``): the study, its budget, its search space.

No dask, xgboost or optuna import here: the schema is read when the config is composed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ParamKind(enum.StrEnum):
    """How one parameter of the search space is drawn."""

    float = "float"
    int = "int"
    categorical = "categorical"


class TuneParallel(enum.StrEnum):
    """Where the trials run (``tune.parallel``)."""

    # one trial per worker thread, side by side: single-node XGBoost inside a worker task on the
    # validation folds' rows (held by every worker); the study lives on the scheduler
    # (optuna-integration's DaskStorage over tune.storage)
    workers = "workers"
    # one trial at a time, each a distributed xgboost.dask fit over the whole cluster (the
    # training path of task=train); for validation folds too large for one worker
    cluster = "cluster"


class PrunerKind(enum.StrEnum):
    """Which Optuna pruner stops bad trials early."""

    median = "median"
    none = "none"


@dataclass
class ParamSpace:
    """One parameter of the search space.

    Attributes
    ----------
    kind : ParamKind
        ``float``, ``int`` (``low``..``high``, ``log`` scale optional) or ``categorical``
        (``choices``).
    low, high : float or None
        Bounds (inclusive) of a ``float`` or ``int`` parameter.
    log : bool
        Draw on a log scale.
    choices : list or None
        Values of a ``categorical`` parameter.
    """

    kind: ParamKind = ParamKind.float
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None


@dataclass
class TuneConf:
    """Schema of the ``tune`` config group.

    Attributes
    ----------
    study_name : str
        The Optuna study; a later run with the same name and storage continues it.
    storage : str or None
        Any Optuna storage URL; null: SQLite at ``<paths.data_home>/tune/optuna.db``.
    n_trials : int
        Finished (complete or pruned) trials the study should hold: a run stops there, so an
        interrupted run started again runs only what is missing.
    timeout_s : float or None
        Seconds this run may start new trials for (null: no limit).
    parallel : TuneParallel
        ``workers``: trials side by side, one per worker thread (single-node XGBoost on the
        validation folds' rows); ``cluster``: one trial at a time on the whole cluster.
    jobs : int or None
        Trials side by side with ``parallel=workers``; null: every worker thread.
    metric : str
        Metric of :func:`fraud_dask.metrics.evaluate` on each validation fold's test period,
        maximised as the mean over the validation folds.
    pruner : PrunerKind
        ``median``: a trial whose intermediate value is below the median of earlier trials at
        the same step stops; ``none``: every trial runs to the end.
    startup_trials : int
        Trials finished before the pruner stops any.
    warmup_steps : int
        Boosting rounds of the first fold before the pruner judges a trial.
    report_every : int
        Rounds between two reports of a trial's metric to the pruner (each report and check is
        a round trip to the study's storage; 1: every round).
    space : dict
        The search space: parameter name -> :class:`ParamSpace`. Names that are model options
        (``num_boost_round``, ``early_stopping_rounds``, ``pos_weight``, ...) set those,
        others XGBoost's ``params``.
    experiment : str or None
        Name of the experiment config written with the best parameters (a later run uses
        ``experiment=<name>``); null: the study's name.
    experiment_dir : str or None
        Folder of the written experiment (a ``<folder>/experiment/<name>.yaml``); null:
        ``<paths.data_home>/configs``, which ``configs/config.yaml`` puts on Hydra's search path.
        Another folder needs ``hydra.searchpath=[file://<folder>]`` on the later run.
    screen : bool
        Before the search, drop features whose signal does not hold over time (see
        ``screen_*`` and :mod:`fraud_dask.tune.screen`).
    screen_groups : bool
        Screen feature groups (one feature kind, entity and window family) instead of single
        features.
    screen_min_gain : float
        A feature (group) is kept when permuting it costs more than this much of ``metric`` on
        the later periods, averaged over the validation folds...
    screen_hold : float
        ... and more than this share of what it costs on the training periods (a signal that
        does not hold over time).
    screen_max_drop : float
        At most this share of the inputs is dropped.
    """

    study_name: str = "tune-${data.name}"
    storage: str | None = None
    n_trials: int = 30
    timeout_s: float | None = None
    parallel: TuneParallel = TuneParallel.workers
    jobs: int | None = None
    metric: str = "average_precision"
    pruner: PrunerKind = PrunerKind.median
    startup_trials: int = 5
    warmup_steps: int = 20
    report_every: int = 10
    space: dict[str, ParamSpace] = field(default_factory=dict)
    experiment: str | None = None
    experiment_dir: str | None = None
    screen: bool = False
    screen_groups: bool = True
    screen_min_gain: float = 0.0
    screen_hold: float = 0.1
    screen_max_drop: float = 0.5


def user_config_dir() -> str:
    """``<data home>/configs``: the folder ``configs/config.yaml`` puts on Hydra's search path
    (``$FRAUD_DASK_HOME``, else ``~/.local/share/fraud_dask``, as ``paths.data_home``), where
    ``task=tune`` writes its experiments by default."""
    import os

    home = os.environ.get("FRAUD_DASK_HOME") or os.path.join(
        os.environ.get("HOME", "~"), ".local", "share", "fraud_dask"
    )
    return os.path.join(home, "configs")
