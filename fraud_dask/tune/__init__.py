"""Model selection on the validation folds: Optuna on the cluster, feature screening.

:func:`tune` is the library behind ``task=tune``: it optionally screens the features
(:mod:`fraud_dask.tune.screen`), runs the study (:mod:`fraud_dask.tune.study`: trials side by
side in worker tasks, or one at a time on the whole cluster, pruned in their first rounds,
resumable from the storage), writes the best parameters as an experiment config
(:mod:`fraud_dask.tune.export`) and ``tune.html`` (:mod:`fraud_dask.tune.report`). Every trial
trains and scores on the validation folds only: the test folds never choose anything. The
schema is :class:`fraud_dask.tune.config.TuneConf` (``configs/tune/``). This package imports
neither dask, xgboost nor optuna until a function needs them.
"""

from __future__ import annotations

import logging
from typing import Any

from fraud_dask.tune.config import ParamKind, ParamSpace, PrunerKind, TuneConf, TuneParallel

__all__ = ["ParamKind", "ParamSpace", "PrunerKind", "TuneConf", "TuneParallel", "tune"]

log = logging.getLogger(__name__)


def tune(cfg: Any, client: Any, frame: Any) -> dict[str, Any]:
    """Screen (optionally), search, and write the experiment, ``tune.html`` and the results.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The run config: ``tune``, ``model``, ``split``, ``data``, ``features``, ``seed``,
        ``run_dir``, ``paths.data_home``.
    client : distributed.Client
        The session's client.
    frame : dask.dataframe.DataFrame
        The feature frame (:func:`fraud_dask.train.frame.read_feature_frame`).

    Returns
    -------
    dict
        ``study``, ``storage``, ``parallel``, ``jobs``, ``trials`` (counts by state, this run
        and in all), ``best`` (value, parameters, per-fold metrics), ``experiment`` (name and
        path), ``seconds``, ``folds`` (what each validation fold holds), ``screen`` (when it
        ran), ``report``.
    """
    from fraud_dask.cluster import resolve_device
    from fraud_dask.errors import UserError
    from fraud_dask.train.folds import model_conf, model_conf_of
    from fraud_dask.tune import study as st
    from fraud_dask.tune.export import experiment_dir, experiment_name, write_experiment
    from fraud_dask.tune.objective import cluster_objective
    from fraud_dask.tune.report import write_tune_report
    from fraud_dask.tune.rows import prepare_folds, validation_folds
    from fraud_dask.tune.space import max_rounds, space_of
    from fraud_dask.tune.study import FINISHED

    conf = cfg.tune
    if str(cfg.model.kind) != "xgboost":
        raise UserError(f"task=tune tunes model.kind=xgboost, got model.kind={cfg.model.kind}")
    if int(conf.n_trials) < 1:
        raise UserError(f"tune.n_trials must be >= 1, got {conf.n_trials}")
    space = space_of(conf.space)
    seed = int(cfg.seed)
    base = model_conf(cfg)
    base["search"] = {}
    name = str(conf.study_name)
    url = st.storage_url(conf.storage, str(cfg.paths.data_home))
    folds = validation_folds(cfg, frame)
    out: dict[str, Any] = {"study": name, "storage": _redact(url), "parallel": str(conf.parallel)}
    screen = None
    if conf.screen:
        from fraud_dask.tune.screen import screen_features

        screen = screen_features(client, cfg, frame, base, folds)
        base["exclude"] = sorted(set(base.get("exclude") or []) | set(screen["dropped"]))
        out["screen"] = screen
    pruner: dict[str, Any] = {
        "kind": str(conf.pruner),
        "startup_trials": int(conf.startup_trials),
        "warmup_steps": int(conf.warmup_steps),
    }
    study, found = st.open_study(name, url, seed=seed, pruner=st.make_pruner(**pruner))
    if found["finished_before"] >= int(conf.n_trials):
        log.info("tune: study %s already holds %d finished trials", name, found["finished_before"])
        ran = {"jobs": 0, "seconds": 0.0}
        out["folds"] = [{"fold": f.to_dict()} for f in folds]
    elif str(conf.parallel) == TuneParallel.workers:
        futures, facts = prepare_folds(client, cfg, frame, base, folds)
        out["folds"] = facts
        ran = st.run_on_workers(
            client,
            url,
            name,
            futures,
            base,
            space,
            jobs=conf.jobs,
            total=int(conf.n_trials),
            timeout_s=conf.timeout_s,
            seed=seed,
            metric=str(conf.metric),
            stride=max_rounds(space, base),
            pruner=pruner,
            report_every=int(conf.report_every),
        )
        client.cancel(futures)
    else:
        device = resolve_device(client, cfg.model.device)
        objective = cluster_objective(
            client,
            cfg,
            frame,
            folds,
            base,
            space,
            metric=str(conf.metric),
            device=device,
            seed=seed,
        )
        ran = st.run_on_cluster(
            study, objective, total=int(conf.n_trials), timeout_s=conf.timeout_s
        )
        out["folds"] = [{"fold": f.to_dict()} for f in folds]
    out |= ran
    trials = st.trials_table(study)
    states = [t["state"] for t in trials]
    out["trials"] = {
        "this_run": sum(s in FINISHED for s in states) - found["finished_before"],
        "total": len(trials),
        **{s.lower(): states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")},
        **found,
    }
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if not complete:
        raise UserError(f"tune: study {name} has no complete trial (all pruned or failed)")
    best = max(complete, key=lambda t: (t["value"], -t["number"]))
    out["best"] = {
        "trial": best["number"],
        "value": best["value"],
        "metric": str(conf.metric),
        "params": best["params"],
        "per_fold": best["per_fold"],
    }
    tuned = model_conf_of(base, best["params"])
    exp = experiment_name(conf.experiment, name)
    path = write_experiment(
        cfg,
        tuned,
        name=exp,
        folder=experiment_dir(conf.experiment_dir, str(cfg.paths.data_home)),
        note=[
            f"Written by task=tune: study {name}, trial {best['number']} of {len(trials)}, mean",
            f"validation {conf.metric} {best['value']:.4f} over {len(folds)} validation folds.",
            f"  python -m fraud_dask experiment={exp}",
        ],
    )
    out["experiment"] = {"name": exp, "path": str(path)}
    summary = {
        "study": name,
        "storage": out["storage"],
        "trials (complete / pruned / failed)": (
            f"{out['trials']['complete']} / {out['trials']['pruned']} / {out['trials']['fail']}"
        ),
        "this run": f"{out['trials']['this_run']} trial(s) in {out['seconds']} s, "
        f"{out['jobs']} side by side ({out['parallel']})",
        f"best mean validation {conf.metric}": best["value"],
        "best parameters": best["params"],
        "validation folds": [f.name for f in folds],
        "experiment": f"experiment={exp} ({path})",
    }
    out["report"] = str(
        write_tune_report(cfg.run_dir, summary, trials, metric=str(conf.metric), screen=screen)
    )
    out["all_trials"] = [{k: v for k, v in t.items() if k != "intermediate"} for t in trials]
    log.info(
        "tune: best mean validation %s %.4f (trial %d): %s",
        conf.metric,
        best["value"],
        best["number"],
        best["params"],
    )
    return out


def _redact(url: str) -> str:
    """A storage URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
