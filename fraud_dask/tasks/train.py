"""``task=train``: features, time-based folds, model selection on validation folds, training.

For each fold of ``task.folds`` (``test``: the prequential test folds; ``baseline``: the one
baseline fold) the model trains on the fold's training period, early-stopping on its last
``model.valid_days`` days (later in time), and the logistic baseline trains on the same period.
When ``model.search`` holds a grid, every combination is first trained and evaluated on the
validation folds, and the best mean ``model.select_metric`` is used for the test folds: the
test folds never choose anything. Models go to ``<run_dir>/models/<fold>/<model>/``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: rows and frauds per day of the frames of this run, by dask name (see daily_of)
_DAILY: dict[str, Any] = {}


def task_option(cfg: Any, key: str, default: Any) -> Any:
    """``cfg.task.<key>``, or ``default`` where the task config has no such field."""
    task = cfg.get("task") if hasattr(cfg, "get") else None
    value = task.get(key, default) if task is not None and hasattr(task, "get") else default
    return getattr(value, "value", value)


def models_dir(cfg: Any) -> str:
    """Where trained models are saved: ``task.model_dir``, else ``<run_dir>/models``."""
    given = task_option(cfg, "model_dir", None)
    return str(given) if given else f"{str(cfg.run_dir).rstrip('/')}/models"


def feature_frame(cfg: Any, client: Any) -> Any:
    """The persisted feature frame of ``cfg.data`` and ``cfg.features``.

    :func:`read_feature_frame` without the read's counts.
    """
    return read_feature_frame(cfg, client)[0]


def read_feature_frame(cfg: Any, client: Any) -> tuple[Any, Any]:
    """The persisted feature frame of ``cfg.data`` and ``cfg.features``, and what was read.

    Reads ``task.features_path`` (a dataset written by ``task=features``) when set, else reads
    the source (:func:`fraud_dask.data.read_transactions`: repeated ``tx_id`` quarantined
    unless ``data.dedupe`` is off) and builds the features lazily. The frame and the read's
    counts are persisted together (one pass over the source), since every fold reads it.

    Returns
    -------
    (dask.dataframe.DataFrame, fraud_dask.data.RowCounts or None)
        The frame, and the checked counts of the source read (rows in = kept + quarantined, by
        reason; ``.as_dict()`` for a task's result); None when read from ``task.features_path``.
    """
    from distributed import wait

    _DAILY.clear()  # a new read: no day counts of an earlier frame may be taken for it
    path = task_option(cfg, "features_path", None)
    started = time.perf_counter()
    counts = None
    if path:
        from fraud_dask.data.io import read_dataset

        frame = client.persist(read_dataset(str(path)))
    else:
        from fraud_dask.data import read_transactions
        from fraud_dask.features.build import build_features

        read = read_transactions(cfg.data)
        lazy = [build_features(read.kept, cfg.features), *read.lazy_counts()]
        frame, *persisted = client.persist(lazy)
        counts = read.counts(client.compute(persisted, sync=True))
        log.info("features of %s: %s", cfg.data.name, counts.describe())
    wait(frame)
    log.info(
        "features ready in %.1f s (%d partitions)", time.perf_counter() - started, frame.npartitions
    )
    return frame, counts


def daily_of(frame: Any) -> Any:
    """Rows and frauds per day of ``frame`` (:func:`fraud_dask.split.daily_counts`), computed
    once per frame: the fold plan, the early-stopping periods and the reports all read it."""
    from fraud_dask.split import daily_counts

    key = str(getattr(frame, "_name", id(frame)))
    if key not in _DAILY:
        if len(_DAILY) > 8:
            _DAILY.clear()
        _DAILY[key] = daily_counts(frame)
    return _DAILY[key]


def fold_plan(cfg: Any, frame: Any) -> Any:
    """The :class:`fraud_dask.split.FoldPlan` of ``cfg.split`` on the data (``mode=auto``), or
    None for a fixed split."""
    from fraud_dask.split import SplitMode, plan_folds

    mode = SplitMode(getattr(cfg.split.get("mode"), "value", cfg.split.get("mode")) or "fixed")
    if mode is not SplitMode.auto:
        return None
    search = cfg.model.get("search") or {}
    return plan_folds(
        cfg.split,
        daily_of(frame),
        label_delay_days=cfg.data.get("label_delay_days"),
        need_validation=bool(search),
    )


def folds_of(cfg: Any, frame: Any, which: str) -> list[Any]:
    """Folds ``which`` (``baseline``, ``validation`` or ``test``) of ``cfg.split`` on the data.

    With ``split.mode=auto`` the folds come from :func:`fold_plan` (the baseline is the oldest
    test fold).
    """
    from fraud_dask.split import data_time_range, make_folds

    plan = fold_plan(cfg, frame)
    if plan is None:
        return make_folds(cfg.split, which, data_time_range(frame))
    if which == "baseline":
        return [plan.folds["test"][-1]]
    if which not in plan.folds:
        raise ValueError(
            f"split.mode=auto: the history holds no {which} folds before the test folds"
        )
    return list(plan.folds[which])


def _grid(search: dict[str, list[Any]]) -> list[dict[str, Any]]:
    if not search:
        return [{}]
    names = sorted(search)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(list(search[n]) for n in names))
    ]


def model_conf(cfg: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model config as a plain dict with ``overrides`` merged into ``params``."""
    from omegaconf import OmegaConf

    conf = OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True)
    assert isinstance(conf, dict)
    params = dict(conf.get("params") or {})
    for key, value in (overrides or {}).items():
        if key in (
            "num_boost_round",
            "early_stopping_rounds",
            "valid_days",
            "valid_min_frauds",
            "imbalance",
            "pos_weight",
        ):
            conf[key] = value
        else:
            params[key] = value
    conf["params"] = params
    return {str(k): v for k, v in conf.items()}


def fit_fold(
    client: Any,
    frame: Any,
    fold: Any,
    conf: dict[str, Any],
    device: str,
    seed: int,
    *,
    baseline: bool,
) -> dict[str, Any]:
    """Train the model (and the baseline) on one fold's training period.

    XGBoost early-stops on the end of the training period: ``model.valid_days`` days, or (unset)
    the shortest end that holds ``model.valid_min_frauds`` frauds
    (:func:`fraud_dask.split.valid_days_for`). What could not be met is logged and kept in the
    model's ``info["warnings"]``.
    """
    import pandas as pd

    from fraud_dask.split import select_train, valid_days_for
    from fraud_dask.train import train, train_baseline

    rows = select_train(frame, fold)
    warnings: list[dict[str, Any]] = []
    early = conf.get("kind") == "xgboost" and conf.get("early_stopping_rounds")
    valid_days = 0
    if early:
        given = conf.get("valid_days")
        if given is not None and int(given) >= fold.train_days:
            raise ValueError(
                f"model.valid_days={given} leaves no training day in fold {fold.name} "
                f"({fold.train_days} training days)"
            )
        valid_days, valid_frauds, warning = valid_days_for(
            daily_of(frame),
            fold,
            valid_days=None if given is None else int(given),
            min_frauds=int(conf.get("valid_min_frauds") or 0),
            max_share=float(conf.get("valid_max_share") or 0.25),
        )
        if warning:
            log.warning("%s", warning)
            warnings.append({"kind": "validation_frauds", "fold": fold.name, "message": warning})
        if valid_days > 0:
            log.info(
                "fold %s: early stopping on the last %d training day(s) (%d frauds)",
                fold.name,
                valid_days,
                valid_frauds,
            )
    if valid_days > 0:
        cut = fold.train_end - dt.timedelta(days=valid_days - 1)
        tz = getattr(frame["ts"].dtype, "tz", None)
        bound = pd.Timestamp(cut)
        bound = bound.tz_localize(tz) if tz is not None else bound
        fit_rows, valid_rows = rows[rows["ts"] < bound], rows[rows["ts"] >= bound]
    else:
        fit_rows, valid_rows = rows, None
    main = train(client, fit_rows, valid_rows, conf, device, seed=seed)
    for warning in main.info.get("warnings", []):
        warnings.append(warning | {"fold": fold.name})
    main.info["warnings"] = warnings
    main.info["valid_days"] = valid_days
    models = {conf["kind"]: main}
    if baseline and conf.get("baseline") and conf["kind"] == "xgboost":
        models["logistic"] = train_baseline(client, rows, conf, seed=seed)
    return models


def select(
    client: Any, frame: Any, cfg: Any, device: str, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Try the ``model.search`` grid on the validation folds; return the winner and the table."""
    from fraud_dask.metrics import evaluate
    from fraud_dask.split import select_test

    search = model_conf(cfg).get("search") or {}
    grid = _grid(search)
    if len(grid) == 1:
        return grid[0], []
    metric = str(cfg.model.get("select_metric", "average_precision"))
    folds = folds_of(cfg, frame, "validation")
    table = []
    for i, combo in enumerate(grid):
        conf = model_conf(cfg, combo)
        scores = []
        for fold in folds:
            model = fit_fold(client, frame, fold, conf, device, seed, baseline=False)[conf["kind"]]
            test = select_test(
                frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
            )
            got = evaluate(model.score(test), by_day=False, by_client=False, curves=False)
            if metric not in got:
                raise ValueError(f"model.select_metric: {metric!r} is not a metric of evaluate")
            scores.append(got[metric])
        mean = sum(scores) / len(scores)
        table.append({"params": combo, metric: mean, "per_fold": scores})
        log.info("search %d/%d %s: %s = %.4f", i + 1, len(grid), combo, metric, mean)
    best = max(table, key=lambda r: r[metric])
    log.info("chosen on %d validation folds: %s", len(folds), best["params"])
    return dict(best["params"]), table


def train_folds(cfg: Any, client: Any, frame: Any) -> dict[str, Any]:
    """Select on validation folds, train every fold of ``task.folds``, save the models."""
    from fraud_dask.cluster import resolve_device

    seed = int(cfg.get("seed", 0))
    device = resolve_device(client, cfg.model.device)
    chosen, table = select(client, frame, cfg, device, seed)
    conf = model_conf(cfg, chosen)
    which = str(task_option(cfg, "folds", "test"))
    folds = folds_of(cfg, frame, which)
    root = models_dir(cfg)
    trained: dict[str, dict[str, Any]] = {}
    info = {}
    plan = fold_plan(cfg, frame)
    warnings: list[dict[str, Any]] = []
    if plan is not None:
        for reason in plan.reasons:
            log.info("split: %s", reason)
        for message in plan.warnings:
            log.warning("split: %s", message)
            warnings.append({"kind": "test_frauds", "message": message})
    for i, fold in enumerate(folds):
        started = time.perf_counter()
        models = fit_fold(client, frame, fold, conf, device, seed, baseline=True)
        trained[fold.name] = models
        for name, model in models.items():
            model.info["fold"] = fold.to_dict()
            model.save(f"{root}/{fold.name}/{name}")
        main = models[conf["kind"]]
        stopping = main.info.get("early_stopping", main.info)
        info[fold.name] = {
            "fold": fold.to_dict(),
            "rows": main.info.get("rows"),
            "frauds": main.info.get("frauds"),
            "valid_days": main.info.get("valid_days", 0),
            "valid_rows": stopping.get("valid_rows", 0),
            "valid_frauds": stopping.get("valid_frauds", 0),
            "best_iteration": main.best_iteration,
            "warnings": list(main.info.get("warnings", [])),
            "seconds": round(time.perf_counter() - started, 2),
        }
        warnings.extend(info[fold.name]["warnings"])
        log.info(
            "trained fold %s (%d/%d) in %.1f s",
            fold.name,
            i + 1,
            len(folds),
            info[fold.name]["seconds"],
        )
    return {
        "device": device,
        "folds": which,
        "model": conf["kind"],
        "chosen_params": chosen,
        "search": table,
        "training": info,
        "split": plan.to_dict() if plan is not None else {"mode": "fixed"},
        "warnings": warnings,
        "model_dir": root,
        "_models": trained,
    }


def run(cfg: Any, client: Any) -> dict[str, Any]:
    """Train the configured model on every fold and save it.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The run config: ``data``, ``features``, ``split``, ``model``, ``seed``, ``run_dir``;
        ``task.folds`` (``test`` or ``baseline``), ``task.features_path``, ``task.model_dir``.
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        ``device``, ``folds``, ``chosen_params``, ``search`` (validation table), ``training``
        (rows, frauds, best iteration and seconds per fold) and ``model_dir``; when the source
        was read, ``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``dedupe``.
    """
    frame, read = read_feature_frame(cfg, client)
    out = train_folds(cfg, client, frame)
    out.pop("_models")
    if read is not None:
        out |= read.as_dict()
    return out
