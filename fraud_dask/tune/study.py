"""The Optuna study behind ``task=tune``: its storage, resuming it, and running its trials.

A study lives in ``tune.storage`` (any Optuna storage URL; default SQLite under the data home)
under ``tune.study_name``, so an interrupted run started again continues the same study: the
trial numbers go on, finished trials are kept, and a trial the interruption left running is
marked failed and queued again with its parameters. ``tune.n_trials`` counts the study's
finished (complete or pruned) trials, so the second run only runs what is missing.

Trials run either side by side inside worker tasks (:func:`run_on_workers`: one trial per worker
thread, single-node XGBoost on the validation folds' rows held by every worker, the study
reached through optuna-integration's ``DaskStorage`` on the scheduler), or one at a time on the
whole cluster (:func:`run_on_cluster`). One run drives a study at a time.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

from fraud_dask.cluster import scheduler_workers

log = logging.getLogger(__name__)

#: Trial states that count towards ``tune.n_trials``.
FINISHED = ("COMPLETE", "PRUNED")


def storage_url(storage: str | None, data_home: str) -> str:
    """``tune.storage``, or SQLite at ``<data_home>/tune/optuna.db`` (a SQLite file's folder is
    created)."""
    if storage:
        url = str(storage)
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return url
    path = Path(data_home).expanduser().resolve() / "tune" / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _states(*names: str) -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return tuple(TrialState[n] for n in names)


def make_pruner(kind: str, startup_trials: int, warmup_steps: int) -> Any:
    """Optuna's median pruner (or none) with the configured warm-up."""
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=int(startup_trials), n_warmup_steps=int(warmup_steps)
    )


def open_study(name: str, url: str, *, seed: int, pruner: Any) -> tuple[Any, dict[str, Any]]:
    """Create or load the study; requeue the trials an interrupted run left running.

    Returns
    -------
    optuna.Study, dict
        The study and what was found: ``resumed`` (it existed), ``finished_before``,
        ``requeued`` (trial numbers left running).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    existed = name in {s.study_name for s in optuna.get_all_study_summaries(url)}
    study = optuna.create_study(
        study_name=name,
        storage=url,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
    )
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=_states("RUNNING")):
        study._storage.set_trial_state_values(trial._trial_id, _states("FAIL")[0])
        study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
        requeued.append(trial.number)
    if requeued:
        log.warning(
            "tune: trial(s) %s were left running by an interrupted run: queued again", requeued
        )
    finished = len(study.get_trials(deepcopy=False, states=_states(*FINISHED)))
    if existed:
        log.info("tune: study %s continues in %s (%d trial(s) finished)", name, url, finished)
    return study, {"resumed": existed, "finished_before": finished, "requeued": requeued}


def _remaining(study: Any, total: int) -> int:
    return total - len(study.get_trials(deepcopy=False, states=_states(*FINISHED)))


def _stop_at(total: int) -> Any:
    from optuna.study import MaxTrialsCallback

    return MaxTrialsCallback(total, states=_states(*FINISHED))


def run_on_cluster(
    study: Any, objective: Any, *, total: int, timeout_s: float | None
) -> dict[str, Any]:
    """Run trials one at a time from this process (each one uses the whole cluster)."""
    from fraud_dask.console import progress_bar

    started = time.perf_counter()
    with progress_bar(desc="trials", total=total, unit="trial") as bar:
        bar.update(total - _remaining(study, total))  # finished by earlier runs of the study
        if _remaining(study, total) > 0:
            study.optimize(
                objective,
                n_trials=_remaining(study, total),
                timeout=timeout_s,
                callbacks=[_stop_at(total), lambda _study, _trial: bar.update(1)],
                gc_after_trial=True,
            )
    return {"jobs": 1, "seconds": round(time.perf_counter() - started, 1)}


def _worker_trials(
    storage: Any,
    name: str,
    folds: list[Any],
    base: dict[str, Any],
    space: dict[str, Any],
    settings: dict[str, Any],
) -> int:
    """A worker task: run trials of the study until it holds ``total`` finished trials."""
    import optuna

    from fraud_dask.tune.objective import local_objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=settings["seed"]),
        pruner=make_pruner(**settings["pruner"]),
    )
    objective = local_objective(
        folds,
        base,
        space,
        metric=settings["metric"],
        seed=settings["model_seed"],
        stride=settings["stride"],
        nthread=settings["nthread"],
        report=settings["pruner"]["kind"] != "none",
        every=settings["report_every"],
    )
    ran = [0]

    def counted(trial: Any) -> float:
        ran[0] += 1
        return objective(trial)

    if _remaining(study, settings["total"]) > 0:
        study.optimize(
            counted,
            timeout=settings["timeout_s"],
            callbacks=[_stop_at(settings["total"])],
            gc_after_trial=True,
        )
    return ran[0]


def _experimental() -> type[Warning]:
    from optuna.exceptions import ExperimentalWarning

    return ExperimentalWarning


def _quiet_experimental() -> None:
    # the scheduler (in this process for a LocalCluster) and the workers unpickle it too
    warnings.filterwarnings("ignore", "DaskStorage is experimental", category=_experimental())


def run_on_workers(
    client: Any,
    url: str,
    name: str,
    folds: list[Any],
    base: dict[str, Any],
    space: dict[str, Any],
    *,
    jobs: int | None,
    total: int,
    timeout_s: float | None,
    seed: int,
    metric: str,
    stride: int,
    pruner: dict[str, Any],
    report_every: int = 1,
) -> dict[str, Any]:
    """Run trials side by side: ``jobs`` worker tasks (default: one per worker thread), each
    running trials of the study through ``DaskStorage`` until ``total`` are finished."""
    import optuna
    from optuna_integration.dask import DaskStorage

    client.wait_for_workers(1, timeout=120)
    workers = scheduler_workers(client)
    slots = [addr for addr, w in sorted(workers.items()) for _ in range(int(w["nthreads"]))]
    jobs = int(jobs or len(slots))
    if jobs < 1:
        raise ValueError(f"tune.jobs must be >= 1, got {jobs}")
    _quiet_experimental()  # DaskStorage is "experimental" since optuna 3.1
    client.run(_quiet_experimental)
    storage = DaskStorage(url, client=client)
    # a resumed study must not replay the draws of the run before it: the samplers' seeds
    # move on with the trials the study already holds
    offset = len(optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False))
    started = time.perf_counter()
    futures = [
        client.submit(
            _worker_trials,
            storage,
            name,
            folds,
            base,
            space,
            {
                "seed": seed + 1000 * offset + j,  # side by side samplers draw apart
                "model_seed": seed,
                "metric": metric,
                "stride": stride,
                "nthread": 1,
                "total": total,
                "timeout_s": timeout_s,
                "pruner": pruner,
                "report_every": report_every,
            },
            workers=[slots[j % len(slots)]],
            allow_other_workers=True,
            pure=False,
            key=f"tune-trials-{name}-{j}-{time.time_ns()}",
        )
        for j in range(jobs)
    ]
    _follow(futures, url, name, total)
    ran = client.gather(futures)
    return {
        "jobs": jobs,
        "trials_per_job": list(ran),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _follow(futures: list[Any], url: str, name: str, total: int, poll_s: float = 1.0) -> None:
    """Draw the trials bar while worker tasks run them: the study's finished trials, read from
    its storage (the workers write there through ``DaskStorage``) every ``poll_s`` seconds."""
    from fraud_dask.console import progress_bar, progress_enabled

    if not progress_enabled():
        return
    import optuna

    with progress_bar(desc="trials", total=total, unit="trial") as bar:
        shown = 0
        while True:
            finished = all(f.done() for f in futures)  # before the count: none is missed
            study = optuna.load_study(study_name=name, storage=url)
            done = min(total, len(study.get_trials(deepcopy=False, states=_states(*FINISHED))))
            bar.update(done - shown)
            shown = done
            if finished:
                return
            time.sleep(poll_s)


def trials_table(study: Any) -> list[dict[str, Any]]:
    """Every trial of the study: number, state, value, parameters, per-fold metrics, timing."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 2)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": dict(t.params),
                "per_fold": t.user_attrs.get("per_fold"),
                "pruned_at": t.user_attrs.get("pruned_at"),
                "seconds": seconds,
                "intermediate": {int(k): float(v) for k, v in t.intermediate_values.items()},
            }
        )
    return rows
