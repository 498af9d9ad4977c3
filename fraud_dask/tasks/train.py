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


def folds_of(cfg: Any, frame: Any, which: str) -> list[Any]:
    """Folds ``which`` (``baseline``, ``validation`` or ``test``) of ``cfg.split`` on the data."""
    from fraud_dask.split import data_time_range, make_folds

    return make_folds(cfg.split, which, data_time_range(frame))


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
            "imbalance",
            "pos_weight",
        ):
            conf[key] = value
        else:
            params[key] = value
    conf["params"] = params
    return conf


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
    """Train the model (and the baseline) on one fold's training period."""
    import pandas as pd

    from fraud_dask.split import select_train
    from fraud_dask.train import train, train_baseline

    rows = select_train(frame, fold)
    valid_days = int(conf.get("valid_days") or 0)
    early = conf.get("kind") == "xgboost" and valid_days > 0 and conf.get("early_stopping_rounds")
    if early:
        if valid_days >= fold.train_days:
            raise ValueError(
                f"model.valid_days={valid_days} leaves no training day in fold {fold.name} "
                f"({fold.train_days} training days)"
            )
        cut = fold.train_end - dt.timedelta(days=valid_days - 1)
        tz = getattr(frame["ts"].dtype, "tz", None)
        bound = pd.Timestamp(cut)
        bound = bound.tz_localize(tz) if tz is not None else bound
        fit_rows, valid_rows = rows[rows["ts"] < bound], rows[rows["ts"] >= bound]
    else:
        fit_rows, valid_rows = rows, None
    models = {conf["kind"]: train(client, fit_rows, valid_rows, conf, device, seed=seed)}
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
    for i, fold in enumerate(folds):
        started = time.perf_counter()
        models = fit_fold(client, frame, fold, conf, device, seed, baseline=True)
        trained[fold.name] = models
        for name, model in models.items():
            model.info["fold"] = fold.to_dict()
            model.save(f"{root}/{fold.name}/{name}")
        main = models[conf["kind"]]
        info[fold.name] = {
            "fold": fold.to_dict(),
            "rows": main.info.get("rows"),
            "frauds": main.info.get("frauds"),
            "best_iteration": main.best_iteration,
            "seconds": round(time.perf_counter() - started, 2),
        }
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
