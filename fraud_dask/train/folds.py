"""Training over time-based folds: the fold plan, one fold's models, selection, every fold.

For each fold the model trains on the fold's training period, early-stopping (a kind that
uses a validation period) on its last ``model.valid_days`` days, later in time, and the baseline
trains on the same period. When ``model.search`` holds a grid, every combination is first
trained and evaluated on the validation folds, and the best mean ``model.select_metric`` is used
for the test folds: the test folds never choose anything.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.console import progress
from fraud_dask.train.frame import daily_of, label_counts, note_period

if TYPE_CHECKING:
    from fraud_dask.config import Config

log = logging.getLogger(__name__)

#: ``model.search`` keys that are model options; the others are the kind's ``params``.
_OPTIONS = (
    "num_boost_round",
    "early_stopping_rounds",
    "valid_days",
    "valid_min_frauds",
    "imbalance",
    "pos_weight",
)


def fold_plan(cfg: Any, frame: Any, *, validation: bool = False) -> Any:
    """The :class:`fraud_dask.split.FoldPlan` of ``cfg.split`` on the data (``mode=auto``), or
    None for a fixed split; validation folds are planned for a ``model.search`` or when
    ``validation`` (``task=tune``)."""
    from fraud_dask.split import SplitMode, plan_folds

    mode = SplitMode(cfg.split.mode)
    if mode is not SplitMode.auto:
        return None
    search = cfg.model.search
    return plan_folds(
        cfg.split,
        daily_of(frame),
        label_delay_days=cfg.data.label_delay_days,
        need_validation=bool(search) or validation,
    )


def folds_of(cfg: Config, frame: Any, which: str) -> list[Any]:
    """Folds ``which`` (``baseline``, ``validation`` or ``test``) of ``cfg.split`` on the data.

    With ``split.mode=auto`` the folds come from :func:`fold_plan` (the baseline is the oldest
    test fold).
    """
    from fraud_dask.split import data_time_range, make_folds

    plan = fold_plan(cfg, frame, validation=which == "validation")
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


def model_conf(cfg: Config, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model config as a plain dict with ``overrides`` merged into ``params``."""
    from omegaconf import OmegaConf

    node = cfg.model if OmegaConf.is_config(cfg.model) else OmegaConf.structured(cfg.model)
    conf = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    assert isinstance(conf, dict)
    return model_conf_of({str(k): v for k, v in conf.items()}, overrides)


def model_conf_of(conf: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plain model config with ``overrides`` merged: model options (``num_boost_round``,
    ``early_stopping_rounds``, ``pos_weight``, ...) replace the option, other names go into
    ``params``."""
    conf = dict(conf)
    params = dict(conf.get("params") or {})
    for key, value in (overrides or {}).items():
        if key in _OPTIONS:
            conf[key] = value
        else:
            params[key] = value
    conf["params"] = params
    return {str(k): v for k, v in conf.items()}


def early_stopping_split(
    frame: Any, rows: Any, fold: Any, conf: dict[str, Any], warnings: list[dict[str, Any]]
) -> tuple[Any, Any | None, int]:
    """The fold's training rows cut into (fit rows, early-stopping rows or None, their days).

    The early-stopping period is ``model.valid_days`` days, or (unset) the shortest end of the
    training period that holds ``model.valid_min_frauds`` frauds
    (:func:`fraud_dask.split.valid_days_for`); what could not be met is a warning.
    """
    import pandas as pd

    from fraud_dask.split import valid_days_for

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
    if valid_days <= 0:
        return rows, None, 0
    log.info(
        "fold %s: early stopping on the last %d training day(s) (%d frauds)",
        fold.name,
        valid_days,
        valid_frauds,
    )
    cut = fold.train_end - dt.timedelta(days=valid_days - 1)
    tz = getattr(frame["ts"].dtype, "tz", None)
    bound = pd.Timestamp(cut)
    bound = bound.tz_localize(tz) if tz is not None else bound
    fit_rows, valid_rows = rows[rows["ts"] < bound], rows[rows["ts"] >= bound]
    note_period(fit_rows, frame, fold.train_start, cut - dt.timedelta(days=1))
    note_period(valid_rows, frame, cut, fold.train_end)
    return fit_rows, valid_rows, valid_days


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

    A kind that early-stops (:attr:`~fraud_dask.train.Model.uses_validation`) does so on the
    end of the training period (see :func:`early_stopping_split`). What could not be met is logged
    and kept in the model's ``info["warnings"]``.

    Returns
    -------
    dict
        Model name (its kind; :data:`fraud_dask.train.BASELINE` for the baseline) -> model.
    """
    from fraud_dask.split import select_train
    from fraud_dask.train import BASELINE, model_class, train, train_baseline

    rows = select_train(frame, fold)
    note_period(rows, frame, fold.train_start, fold.train_end)
    warnings: list[dict[str, Any]] = []
    fit_rows, valid_rows, valid_days = rows, None, 0
    if model_class(conf["kind"]).uses_validation and conf.get("early_stopping_rounds"):
        fit_rows, valid_rows, valid_days = early_stopping_split(frame, rows, fold, conf, warnings)
    main = train(client, fit_rows, valid_rows, conf, device, seed=seed)
    for warning in main.info.get("warnings", []):
        warnings.append(warning | {"fold": fold.name})
    main.info["warnings"] = warnings
    main.info["valid_days"] = valid_days
    models = {conf["kind"]: main}
    if baseline and conf.get("baseline") and BASELINE not in models:
        models[BASELINE] = train_baseline(client, rows, conf, seed=seed)
    return models


def select(
    client: Any, frame: Any, cfg: Config, device: str, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Try the ``model.search`` grid on the validation folds; return the winner and the table."""
    from fraud_dask.metrics import evaluate
    from fraud_dask.split import select_test

    search = model_conf(cfg).get("search") or {}
    grid = _grid(search)
    if len(grid) == 1:
        return grid[0], []
    metric = cfg.model.select_metric
    folds = folds_of(cfg, frame, "validation")
    table = []
    for i, combo in enumerate(progress(grid, desc="search", unit="combination")):
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


def _fold_facts(fold: Any, main: Any, seconds: float) -> dict[str, Any]:
    """What ``training`` reports of one fold's main model."""
    stopping = main.info.get("early_stopping", main.info)
    return {
        "fold": fold.to_dict(),
        "rows": main.info.get("rows"),
        "frauds": main.info.get("frauds"),
        "valid_days": main.info.get("valid_days", 0),
        "valid_rows": stopping.get("valid_rows", 0),
        "valid_frauds": stopping.get("valid_frauds", 0),
        "best_iteration": main.describe().get("best_iteration"),
        "warnings": list(main.info.get("warnings", [])),
        "seconds": round(seconds, 2),
    }


def train_folds(
    cfg: Config, client: Any, frame: Any, *, which: str = "test", model_dir: str
) -> dict[str, Any]:
    """Select on validation folds, train every fold of ``which``, save the models.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config: ``data``, ``split``, ``model``, ``seed``.
    client : distributed.Client
        The session's client.
    frame : dask.dataframe.DataFrame
        The feature frame (:func:`fraud_dask.train.frame.read_feature_frame`).
    which : str
        ``test`` (the prequential test folds) or ``baseline`` (one split).
    model_dir : str
        Models go to ``<model_dir>/<fold>/<model>/``.

    Returns
    -------
    dict
        ``device``, ``folds``, ``model``, ``chosen_params``, ``search`` (validation table),
        ``training`` (per fold: rows, frauds, early stopping, best iteration, warnings,
        seconds), ``split``, ``warnings``, ``model_dir`` and ``_models`` (fold -> name -> model).
    """
    from fraud_dask.cluster import resolve_device

    seed = int(cfg.seed)
    device = resolve_device(client, cfg.model.device)
    chosen, table = select(client, frame, cfg, device, seed)
    conf = model_conf(cfg, chosen)
    folds = folds_of(cfg, frame, which)
    trained: dict[str, dict[str, Any]] = {}
    info = {}
    plan = fold_plan(cfg, frame)
    warnings: list[dict[str, Any]] = []
    if plan is not None:
        for reason in plan.reasons:
            log.info("split: %s", reason)
        for message in plan.warnings:
            log.warning("split: %s", message)
            named = re.match(r"test fold (\S+) holds", message)
            warnings.append(
                {"kind": "test_frauds", "message": message}
                | ({"fold": named.group(1)} if named else {})
            )
    for i, fold in enumerate(progress(folds, desc="folds", unit="fold")):
        started = time.perf_counter()
        models = fit_fold(client, frame, fold, conf, device, seed, baseline=True)
        trained[fold.name] = models
        for name, model in models.items():
            model.info["fold"] = fold.to_dict()
            model.save(f"{model_dir}/{fold.name}/{name}")
        info[fold.name] = _fold_facts(fold, models[conf["kind"]], time.perf_counter() - started)
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
        "model_dir": model_dir,
        "_models": trained,
    }


def register_newest(
    cfg: Config, frame: Any, models: dict[str, Any], folds: list[Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """Register the newest fold's model (the one trained on the most recent data).

    The bundle carries the feature spec, the run's config (secrets redacted), the evaluation
    metrics, the source (``data.name`` and the redacted ``data.path``), the training period
    (the fold's first and last training day, its rows and frauds), a fingerprint of those
    rows and the monitoring reference (``reference.json``: binned inputs and score on those
    rows, the thresholds and their alert rates, see ``docs/monitoring.md``). It goes to
    ``registry.name`` (by default ``fraud-<data.name>``).
    """
    from fraud_dask.config import redacted
    from fraud_dask.monitor.reference import registration_reference
    from fraud_dask.registry import REFERENCE, Registry, data_fingerprint, redact_url
    from fraud_dask.split import select_train
    from fraud_dask.split.folds import select_after_train

    newest = max(folds, key=lambda f: f.train_end)
    model = models[newest.name][str(cfg.model.kind)]
    rows = select_train(frame, newest)
    # the training reference for monitoring: binned inputs on the training rows, the score and
    # its alert rates on the rows after them (gap and test: scored as new rows will be)
    after = select_after_train(frame, newest)
    first = newest.train_end + dt.timedelta(days=1)
    note_period(rows, frame, newest.train_start, newest.train_end)
    note_period(after, frame, first, newest.test_end)
    (_, frauds), (n_after, _) = label_counts([rows, after])
    started = time.perf_counter()
    fingerprint = data_fingerprint(rows)
    log.info("registration: the rows' fingerprint in %.1f s", time.perf_counter() - started)
    training = {
        "fold": newest.name,
        "start": newest.train_start.isoformat(),
        "end": newest.train_end.isoformat(),
        "rows": fingerprint["rows"],
        "frauds": frauds,
    }
    after_period = {"start": first.isoformat(), "end": newest.test_end.isoformat()}
    reference = registration_reference(
        cfg,
        rows,
        model,
        metrics,
        training,
        after=after,
        after_period=after_period,
        after_rows=n_after,
    )
    name = str(cfg.registry.name)
    config = redacted(cfg)
    config.data.path = redact_url(str(config.data.path))  # redacted() sees keys, not URLs
    registry = Registry.from_conf(cfg.registry)
    version = registry.register(
        name,
        model,
        features=cfg.features,
        config=config,
        metrics=metrics,
        fingerprint=fingerprint,
        source={"name": cfg.data.name, "path": cfg.data.path},  # redacted by the registry
        training=training,
        extra_files={REFERENCE: reference},
        promote=bool(cfg.registry.promote_on_register),
        alias=str(cfg.registry.alias),
    )
    log.info(
        "registered %s version %d (fold %s, trained %s..%s) in %s",
        name,
        version,
        newest.name,
        training["start"],
        training["end"],
        cfg.registry.path,
    )
    return {
        "name": name,
        "version": version,
        "fold": newest.name,
        "path": str(cfg.registry.path),
    }
