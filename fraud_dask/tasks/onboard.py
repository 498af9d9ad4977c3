"""``task=onboard``: from a client's data YAML to a consultation-ready answer, in one run.

1. **Profile** the source on Dask (:func:`fraud_dask.onboard.profile_source`): rows in, kept and
   quarantined by reason (repeated ``tx_id`` included), span, rows per day and week, columns
   mapped and unmapped, null rates, distinct entities, amounts, fraud per month, label delay,
   card numbers tokenized, redacted examples of the quarantined rows.
2. **Features** of the configured set; specs whose columns the source lacks are skipped, and
   the report says which and why.
3. **Folds from the data** (``split.mode=auto``, the default): their lengths and the reasons.
4. **The client model** trained and evaluated under the time protocol (as ``task=pipeline``),
   with the guards' warnings; registered under ``registry.name`` (``fraud-<data.name>``).
5. **The current champion** (``task.champion``: a registry model name; default
   ``registry.name``) scored on the same test rows when its inputs can be computed from this
   source (its own feature spec is rebuilt on the same rows when it differs).
6. The metrics a client asks about, per model: AP, recall at 1% FPR, precision and recall at
   alert budgets, fraud value caught, per fold (with its rows and frauds) and per month;
   ``onboard.html`` (readable offline), ``metrics.json`` and a short console summary.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import OnboardTaskConf, models_dir, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)

#: counts kept beside the client-facing figures of an evaluation (fraud_dask.metrics.evaluate)
CLIENT_KEYS = ("n", "n_fraud", "fraud_rate")


def _client_figures(ev: dict[str, Any], k: int) -> dict[str, Any]:
    """The figures a client asks about, from one :func:`fraud_dask.metrics.evaluate` result."""
    keys = (
        "average_precision",
        "recall_at_fpr",
        "fraud_value_caught_at_fpr",
        "precision_at_fpr",
        "roc_auc",
        f"card_precision_at_{k}",
        *CLIENT_KEYS,
    )
    return {key: ev.get(key) for key in dict.fromkeys(keys)}


def _budgets(ev: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("budget", "n_alerts", "precision", "recall", "fraud_value_caught", "threshold")
    return [{key: row.get(key) for key in keep} for row in ev.get("alert_budgets", [])]


def _month(part: Any) -> Any:
    import pandas as pd

    ts = part["ts"]
    if getattr(ts.dtype, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return part.assign(month=pd.array(ts.dt.strftime("%Y-%m"), dtype="str"))


def _pooled(scored: list[Any], k: int, max_fpr: float) -> dict[str, Any]:
    """Metrics of every fold's scored test rows together, and per calendar month.

    Each fold's rows are scored by that fold's own model (prequential pooling).
    """
    import dask.dataframe as dd
    import pandas as pd

    from fraud_dask.metrics import evaluate

    cols = ["ts", "card_id", "amount", "is_fraud", "score"]
    union = dd.concat([s[cols] for s in scored])
    meta = union._meta.assign(month=pd.array([], dtype="str"))
    union = union.map_partitions(_month, meta=meta)
    # the month is evaluated as evaluate's per-group breakdown (one pass for both)
    ev = evaluate(
        union, k=k, max_fpr=max_fpr, by_day=False, by_client=True, curves=False, client_col="month"
    )
    per_month = {
        month: _client_figures(m, k) for month, m in sorted(ev.pop("per_client", {}).items())
    }
    return _client_figures(ev, k) | {"alert_budgets": _budgets(ev), "per_month": per_month}


def _champion(cfg: Config, registry: Any) -> tuple[Any, str | None]:
    """The champion bundle to compare with, or (None, why not)."""
    name = str(task_conf(cfg, OnboardTaskConf).champion or cfg.registry.name)
    if name not in registry.names():
        return None, f"no model named {name!r} in the registry {registry.url} yet"
    aliases = registry.aliases(name)
    if "champion" not in aliases:
        return None, f"model {name!r} has no champion alias"
    return registry.load(name, "champion"), None


def _champion_frame(cfg: Config, bundle: Any, kept: Any, frame: Any, client: Client) -> Any:
    """The rows with the champion's own features: ``frame`` when its spec is this run's."""
    from omegaconf import OmegaConf

    from fraud_dask.features.build import build_features

    # the bundle's spec is plain JSON: this run's spec in the same form
    ours = OmegaConf.to_container(OmegaConf.structured(cfg.features), enum_to_str=True)
    assert isinstance(ours, dict)
    theirs = dict(bundle.features)
    comparable = {k: v for k, v in theirs.items() if k not in ("name", "output", "npartitions")}
    if comparable == {k: v for k, v in ours.items() if k in comparable}:
        return frame
    return client.persist(build_features(kept, theirs))


def _champion_warnings(bundle: Any, cfg: Config, folds: list[Any]) -> list[dict[str, Any]]:
    import datetime as dt

    out = []
    source = bundle.source or {}
    end = (bundle.training or {}).get("end")
    if source.get("name") == str(cfg.data.name) and end:
        last = dt.date.fromisoformat(str(end)[:10])
        overlap = [f.name for f in folds if f.test_start <= last]
        if overlap:
            out.append(
                {
                    "kind": "champion_in_sample",
                    "message": (
                        f"the champion {bundle.name} v{bundle.version} was trained on this source "
                        f"up to {last}: its scores on test fold(s) {', '.join(overlap)} are in "
                        "sample and flatter it"
                    ),
                }
            )
    return out


def _shown_folds(
    split: dict[str, Any], training: dict[str, Any], folds: list[Any]
) -> dict[str, dict[str, Any]]:
    """The evaluated folds as the report shows them, with their training rows and frauds."""
    shown = {f["name"]: f for f in split["folds"].get("test", [])}
    for fold in folds:
        entry = training.get(fold.name, {})
        shown.setdefault(fold.name, fold.to_dict())
        shown[fold.name] |= {
            "train_rows": entry.get("rows"),
            "train_frauds": entry.get("frauds"),
            "valid_days": entry.get("valid_days"),
            "valid_frauds": entry.get("valid_frauds"),
        }
    return shown


def _evaluation(
    cfg: Config,
    client: Client,
    frame: Any,
    kept: Any,
    folds: list[Any],
    *,
    models: dict[str, Any],
    full: dict[str, dict[str, Any]],
    main: str,
    k: int,
    max_fpr: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The client model (``models``: fold -> model, ``full``: its evaluation per fold, shown as
    ``main``) beside the champion on the same test rows: pooled figures, per fold and per month,
    notes; and the champion's warnings."""
    from fraud_dask.metrics import evaluate
    from fraud_dask.registry import Registry
    from fraud_dask.split import select_test

    warnings: list[dict[str, Any]] = []
    registry = Registry.from_conf(cfg.registry)
    bundle, why_not = _champion(cfg, registry)
    champ_frame = None
    if bundle is not None:
        try:
            champ_frame = _champion_frame(cfg, bundle, kept, frame, client)
            missing = [c for c in bundle.model.columns if c not in champ_frame.columns]
            if missing:
                champ_frame, why_not = (
                    None,
                    f"its inputs {missing} cannot be built from this source",
                )
        except ValueError as err:  # the champion's spec needs columns this source lacks
            champ_frame, why_not = None, f"its features cannot be built from this source ({err})"
    champ_label = f"champion {bundle.name} v{bundle.version}" if bundle is not None else ""
    if champ_frame is None and bundle is not None:
        log.warning("onboard: the champion %s is not compared: %s", champ_label, why_not)
    scored: dict[str, list[Any]] = {main: []}
    per_fold: dict[str, dict[str, Any]] = {main: {}}
    for fold in folds:
        period = {"test_period": f"{fold.test_start}..{fold.test_end}"}
        per_fold[main][fold.name] = _client_figures(full[fold.name], k) | period
        test = select_test(
            frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
        )
        scored[main].append(models[fold.name].score(test))
        if champ_frame is not None:
            ctest = select_test(
                champ_frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
            )
            cscored = bundle.model.score(ctest).persist()
            ev = evaluate(cscored, k=k, max_fpr=max_fpr, by_day=False, curves=False)
            per_fold.setdefault(champ_label, {})[fold.name] = _client_figures(ev, k) | period
            scored.setdefault(champ_label, []).append(cscored)
    evaluation: dict[str, Any] = {"models": {}, "notes": []}
    for label, parts in scored.items():
        evaluation["models"][label] = _pooled(parts, k, max_fpr) | {"per_fold": per_fold[label]}
    if bundle is not None and champ_frame is not None:
        warnings += _champion_warnings(bundle, cfg, folds)
        trained_on = (bundle.source or {}).get("name", "an unknown source")
        trained_in = bundle.training or {}
        evaluation["notes"].append(
            f"{champ_label} (trained on {trained_on}, {trained_in.get('start', '?')}.."
            f"{trained_in.get('end', '?')}) scored on the same test rows"
        )
    elif why_not:
        evaluation["notes"].append(f"no champion compared: {why_not}")
    evaluation["notes"].append(
        "pooled: every fold's test rows, each scored by the model trained for that fold; "
        "cards already known compromised before a test day are left out of it"
    )
    return evaluation, warnings


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Onboard ``cfg.data``: profile, folds, features, client model, champion, report.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config (every group); ``task.champion`` names the registry model whose
        champion is compared (default: ``registry.name``).
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        ``profile``, ``split`` (folds, reasons), ``skipped_features``, ``evaluation`` (per model:
        pooled figures, ``per_fold``, ``per_month``, ``alert_budgets``), ``test`` (the client
        model's means over the folds, as ``task=pipeline``), ``warnings``, ``rows_in``,
        ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``registry``, ``report`` and
        ``stages`` (seconds).
    """
    from distributed import wait

    from fraud_dask.data.load import open_source
    from fraud_dask.features.build import build_features
    from fraud_dask.features.plan import make_plan
    from fraud_dask.onboard import console_summary, profile_source, write_onboard_report
    from fraud_dask.train.evaluate import evaluate_folds, merge_warnings
    from fraud_dask.train.folds import fold_plan, folds_of, register_newest, train_folds

    stages: dict[str, float] = {}
    started = t = time.perf_counter()
    task = task_conf(cfg, OnboardTaskConf)
    k, max_fpr = task.k, task.max_fpr

    log.info("onboard 1/5: profiling %s (%s)", cfg.data.name, cfg.data.path)
    source = open_source(cfg.data)
    read = source.frames()
    profile = profile_source(source, read, client=client)
    stages["profile"] = time.perf_counter() - t

    log.info("onboard 2/5: features (%s)", cfg.features.name)
    t = time.perf_counter()
    conf = cfg.features
    plan = make_plan(conf, list(read.kept.columns))
    skipped = [str(note) for note in plan.skipped]
    frame, *lazy = client.persist([build_features(read.kept, conf), *read.lazy_counts()])
    counts = read.counts(client.compute(lazy, sync=True))
    wait(frame)
    log.info("onboard: %s; %d features", counts.describe(), len(plan.feature_names))
    stages["features"] = time.perf_counter() - t

    log.info("onboard 3/5: folds and training (%s)", cfg.model.kind)
    t = time.perf_counter()
    which = task.folds
    trained = train_folds(cfg, client, frame, which=which, model_dir=models_dir(cfg))
    models = trained.pop("_models")
    folds = folds_of(cfg, frame, which)
    split = trained["split"] if fold_plan(cfg, frame) is not None else {"mode": "fixed"}
    split = dict(split)
    split.setdefault("folds", {"test": [f.to_dict() for f in folds]})
    shown = _shown_folds(split, trained["training"], folds)
    stages["train"] = time.perf_counter() - t

    log.info("onboard 4/5: evaluation of the client model and the champion")
    t = time.perf_counter()
    metrics, full = evaluate_folds(cfg, frame, models, folds, k=k, max_fpr=max_fpr)
    for fold in folds:
        ev = full[metrics["model"]][fold.name]
        shown[fold.name] |= {"test_rows_kept": ev.get("n"), "test_frauds_kept": ev.get("n_fraud")}
    report_split = {k: v for k, v in split.items() if k != "folds"} | {
        "folds": [shown[f.name] for f in folds]
    }
    warnings = merge_warnings(trained["warnings"], metrics["warnings"])
    main = metrics["model"]
    evaluation, champion_warnings = _evaluation(
        cfg,
        client,
        frame,
        read.kept,
        folds,
        models={fold.name: models[fold.name][main] for fold in folds},
        full=full[main],
        main=f"client model ({main})",
        k=k,
        max_fpr=max_fpr,
    )
    warnings += champion_warnings
    stages["evaluate"] = time.perf_counter() - t

    out: dict[str, Any] = {}
    if cfg.registry.register:
        t = time.perf_counter()
        out["registry"] = register_newest(cfg, frame, models, folds, metrics)
        stages["register"] = time.perf_counter() - t

    log.info("onboard 5/5: report")
    messages = [w["message"] for w in warnings]
    report = write_onboard_report(
        cfg.run_dir,
        profile=profile,
        split=report_split,
        skipped_features=skipped,
        evaluation=evaluation,
        warnings=messages,
        title=f"Onboarding {cfg.data.name}",
    )
    stages["total"] = time.perf_counter() - started
    out |= {
        "source": str(cfg.data.name),
        "profile": profile,
        "split": split,
        "skipped_features": skipped,
        "features": plan.feature_names,
        "evaluation": evaluation,
        "test": metrics["test"],
        "model": main,
        "training": trained["training"],
        "device": trained["device"],
        "warnings": warnings,
        "report": str(report),
        "stages": {key: round(v, 2) for key, v in stages.items()},
    }
    out |= counts.as_dict()
    print(
        console_summary(
            profile,
            split=report_split,
            evaluation=evaluation,
            warnings=messages,
            report_path=report,
        ),
        flush=True,
    )
    return out
