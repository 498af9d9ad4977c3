"""One trial: the drawn parameters trained and scored on every validation fold.

:func:`fit_local` is single-node XGBoost on one fold's :class:`~fraud_dask.tune.rows.FoldRows`
inside a worker task, with the fit -> early stopping -> refit sequence of ``task=train``; a
:class:`PruningReporter` reports the metric of the fold's scored period after every round, so
the pruner can stop a bad trial in its first rounds. :func:`local_objective` is the trial of
``tune.parallel=workers``; :func:`cluster_objective` trains with ``xgboost.dask`` over the
whole cluster (``tune.parallel=cluster``) and reports once per fold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fraud_dask.train.config import refits
from fraud_dask.tune.rows import FoldRows
from fraud_dask.tune.space import suggest

log = logging.getLogger(__name__)


def _pruned_error() -> type[Exception]:
    import optuna

    return optuna.TrialPruned


class PruningReporter:
    """XGBoost callback: report the watched metric of each round to the trial; stop when the
    pruner says so (the fit then ends cleanly and the objective raises ``TrialPruned``)."""

    def __init__(self, trial: Any, key: tuple[str, str], offset: int, every: int = 1) -> None:
        import xgboost as xgb

        class _Callback(xgb.callback.TrainingCallback):
            def after_iteration(inner, model: Any, epoch: int, evals_log: dict) -> bool:
                return self.after_iteration(epoch, evals_log)

        self.trial, self.key, self.offset, self.every = trial, key, offset, max(int(every), 1)
        self.pruned_at: int | None = None
        self.callback = _Callback()

    def after_iteration(self, epoch: int, evals_log: dict[str, Any]) -> bool:
        if (epoch + 1) % self.every:
            return False  # each report is a round trip to the study's storage
        value = evals_log[self.key[0]][self.key[1]][-1]
        self.trial.report(float(value), step=self.offset + epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False


def _pos_weight(conf: dict[str, Any], y: np.ndarray) -> float:
    given = conf.get("pos_weight")
    pos = float(y.sum())
    return float(given) if given is not None else (len(y) - pos) / max(pos, 1.0)


def fit_local(
    rows: FoldRows,
    conf: dict[str, Any],
    *,
    seed: int,
    nthread: int = 1,
    reporter: Callable[[Any], Any] | None = None,
) -> tuple[Any, int, Any]:
    """Train XGBoost on one fold's rows as ``task=train`` would, on this process.

    Parameters
    ----------
    rows : FoldRows
        The fold.
    conf : dict
        The model config with the trial's parameters (:func:`fraud_dask.train.folds.model_conf`).
    seed, nthread : int
        XGBoost's seed and threads.
    reporter : callable, optional
        Given the watched-metric key's booster evaluation, returns an XGBoost callback
        (:class:`PruningReporter`); None: no pruning.

    Returns
    -------
    booster, int, PruningReporter or None
        The model, its best round (0-based) and the reporter used.
    """
    import xgboost as xgb

    # the model group's params (defaults and options merged) with the trial's
    params = dict(conf["params"]) | {"device": "cpu", "seed": int(seed), "nthread": int(nthread)}
    rounds = int(conf.get("num_boost_round") or 100)
    stop = conf.get("early_stopping_rounds")
    imbalance = str(conf.get("imbalance") or "none")
    max_bin = int(params.get("max_bin", 256))
    common: dict[str, Any] = {
        "feature_names": rows.columns,
        "feature_types": rows.types,
        "enable_categorical": rows.categorical,
    }

    def weights(y: np.ndarray) -> np.ndarray | None:
        if imbalance != "weights":
            return None
        return 1.0 + (_pos_weight(conf, y) - 1.0) * (y == 1)

    def matrix(x: np.ndarray, y: np.ndarray) -> Any:
        return xgb.QuantileDMatrix(x, y, weight=weights(y), max_bin=max_bin, **common)

    if imbalance == "scale_pos_weight":
        params["scale_pos_weight"] = _pos_weight(conf, rows.fit_y)
    early = rows.stop_x is not None and stop is not None and int(stop) > 0
    if early:
        assert rows.stop_y is not None
        if rows.stop_y.sum() in (0, len(rows.stop_y)):
            early = False  # one class in the early-stopping rows: as task=train, train on all
    fit_x, fit_y = rows.fit_x, rows.fit_y
    if not early and rows.stop_x is not None and rows.stop_y is not None:
        fit_x, fit_y = np.vstack([fit_x, rows.stop_x]), np.concatenate([fit_y, rows.stop_y])

    def watched(x: np.ndarray, y: np.ndarray) -> Any:
        # evaluated rows are only predicted: a plain DMatrix is predicted 4-6x faster than a
        # quantile one (the same predictions), as task=train's early-stopping rows
        return xgb.DMatrix(x, y, weight=weights(y), **common)

    dtrain = matrix(fit_x, fit_y)
    test_y = rows.test["is_fraud"].to_numpy(dtype=np.float32)
    evals = [(watched(rows.test_x, test_y), "scored")]
    if early:
        assert rows.stop_x is not None and rows.stop_y is not None
        evals.append((watched(rows.stop_x, rows.stop_y), "stop"))  # the last stops
    callback = None
    callbacks = []
    if reporter is not None:
        callback = reporter(("scored", str(params.get("eval_metric", "aucpr"))))
        callbacks.append(callback.callback)
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        early_stopping_rounds=int(stop) if early and stop is not None else None,
        verbose_eval=False,
        callbacks=callbacks,
    )
    best = int(booster.best_iteration) if early else booster.num_boosted_rounds() - 1
    pruned = callback is not None and callback.pruned_at is not None
    period_rows = len(rows.fit_y) + (len(rows.stop_y) if rows.stop_y is not None else 0)
    if early and not pruned and refits(conf, period_rows):
        assert rows.stop_x is not None and rows.stop_y is not None
        whole = matrix(np.vstack([rows.fit_x, rows.stop_x]), np.concatenate([fit_y, rows.stop_y]))
        booster = xgb.train(params, whole, num_boost_round=best + 1, verbose_eval=False)
        best = booster.num_boosted_rounds() - 1
    return booster, best, callback


def score_local(rows: FoldRows, booster: Any, best: int) -> np.ndarray:
    """Probabilities of the fold's scored rows from rounds ``0..best``."""
    import xgboost as xgb

    dm = xgb.DMatrix(
        rows.test_x,
        feature_names=rows.columns,
        feature_types=rows.types,
        enable_categorical=rows.categorical,
    )
    return np.asarray(booster.predict(dm, iteration_range=(0, best + 1)), dtype=np.float64)


def fold_metrics(rows: FoldRows, scores: np.ndarray, k: int = 100) -> dict[str, Any]:
    """:func:`fraud_dask.metrics.evaluate` of the fold's scored rows (no curves, no days)."""
    from fraud_dask.metrics import evaluate

    frame = rows.test.assign(score=scores)
    return evaluate(frame, k=k, by_day=False, by_client=False, curves=False)


def headline(got: dict[str, Any], metric: str, k: int = 100) -> dict[str, float | None]:
    """The tuned metric plus AP and CP@k of one fold's evaluation."""
    if metric not in got:
        raise ValueError(f"tune.metric: {metric!r} is not a metric of evaluate")
    keys = dict.fromkeys([metric, "average_precision", f"card_precision_at_{k}", "roc_auc"])
    return {key: got.get(key) for key in keys}


def _record(trial: Any, per_fold: list[dict[str, Any]], metric: str, started: float) -> float:
    values = [f[metric] for f in per_fold if f[metric] is not None]
    if not values:
        raise ValueError(f"tune: {metric} is undefined on every validation fold")
    trial.set_user_attr("per_fold", per_fold)
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
    return float(np.mean(values))


def local_objective(
    folds: list[FoldRows],
    base: dict[str, Any],
    space: dict[str, Any],
    *,
    metric: str,
    seed: int,
    stride: int,
    nthread: int = 1,
    report: bool = True,
    every: int = 1,
) -> Callable[[Any], float]:
    """The objective of ``tune.parallel=workers``: every validation fold on this process.

    The pruner sees the fold's scored-period metric after every ``every`` rounds, at step
    ``fold index * stride + round`` (not reported when ``report`` is false: no pruner).
    """
    from fraud_dask.train.folds import model_conf_of

    def objective(trial: Any) -> float:
        started = time.perf_counter()
        conf = model_conf_of(base, suggest(trial, space))
        per_fold = []
        for i, rows in enumerate(folds):

            def reporter(key: tuple[str, str], i: int = i) -> PruningReporter:
                return PruningReporter(trial, key, i * stride, every)

            booster, best, rep = fit_local(
                rows, conf, seed=seed, nthread=nthread, reporter=reporter if report else None
            )
            if rep is not None and rep.pruned_at is not None:
                trial.set_user_attr("pruned_at", {"fold": rows.name, "round": rep.pruned_at + 1})
                raise _pruned_error()(f"pruned in fold {rows.name} at round {rep.pruned_at + 1}")
            got = headline(fold_metrics(rows, score_local(rows, booster, best)), metric)
            per_fold.append({"fold": rows.name, "best_round": best + 1, **got})
        return _record(trial, per_fold, metric, started)

    return objective


def cluster_objective(
    client: Any,
    cfg: Any,
    frame: Any,
    folds: list[Any],
    base: dict[str, Any],
    space: dict[str, Any],
    *,
    metric: str,
    device: str,
    seed: int,
) -> Callable[[Any], float]:
    """The objective of ``tune.parallel=cluster``: ``xgboost.dask`` fits over the whole cluster
    (the path of ``task=train``), the running mean reported to the pruner after each fold."""
    from fraud_dask.metrics import evaluate
    from fraud_dask.split import select_test
    from fraud_dask.train.folds import fit_fold, model_conf_of

    def objective(trial: Any) -> float:
        started = time.perf_counter()
        conf = model_conf_of(base, suggest(trial, space))
        per_fold: list[dict[str, Any]] = []
        for i, fold in enumerate(folds):
            model = fit_fold(client, frame, fold, conf, device, seed, baseline=False)[conf["kind"]]
            test = select_test(
                frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
            )
            got = evaluate(model.score(test), by_day=False, by_client=False, curves=False)
            best = model.describe().get("best_iteration")
            per_fold.append(
                {"fold": fold.name, "best_round": None if best is None else best + 1}
                | headline(got, metric)
            )
            values = [f[metric] for f in per_fold if f[metric] is not None]
            if values:
                trial.report(float(np.mean(values)), step=i)
                if trial.should_prune():
                    trial.set_user_attr("pruned_at", {"fold": fold.name, "round": None})
                    raise _pruned_error()(f"pruned after fold {fold.name}")
        return _record(trial, per_fold, metric, started)

    return objective
