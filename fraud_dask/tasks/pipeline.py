"""``task=pipeline`` (the default): generate if missing, features, train, evaluate, report.

One run directory holds everything: the models (``models/<fold>/<model>/``), ``report.html``
and the metrics this returns (``metrics.json``): ``test.roc_auc``, ``test.average_precision``,
``test.card_precision_at_100`` (means over the folds, with ``_std`` and ``per_fold``), the
baseline's, the validation search and the seconds per stage.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def _dataset_exists(cfg: Any) -> bool:
    from fraud_dask.data.io import list_files

    options = cfg.data.get("storage_options") or None
    try:
        _, _, files = list_files(str(cfg.data.path), "parquet", options)
    except (FileNotFoundError, ValueError):
        return False
    return bool(files)


def run(cfg: Any, client: Any) -> dict[str, Any]:
    """Run the whole journey on ``cfg`` in one cluster session.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The run config (every group).
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        The evaluation metrics (see :func:`fraud_dask.tasks.evaluate.run`) plus ``training``,
        ``search``, ``chosen_params``, ``device``, ``stages`` (seconds) and ``report``; the
        source read's ``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``dedupe``.
    """
    from fraud_dask.tasks.evaluate import evaluate_folds, report
    from fraud_dask.tasks.train import folds_of, read_feature_frame, task_option, train_folds

    stages: dict[str, float] = {}
    out: dict[str, Any] = {}
    started = time.perf_counter()
    if cfg.data.name == "synthetic" and not _dataset_exists(cfg):
        from fraud_dask.tasks.generate import run as generate

        log.info("pipeline 1/4: generating synthetic data into %s", cfg.data.path)
        out["generate"] = {k: v for k, v in generate(cfg, client).items() if k != "scenarios"}
        stages["generate"] = time.perf_counter() - started
    log.info("pipeline 2/4: features (%s)", cfg.features.name)
    t = time.perf_counter()
    frame, read = read_feature_frame(cfg, client)
    stages["features"] = time.perf_counter() - t
    log.info("pipeline 3/4: training (%s)", cfg.model.kind)
    t = time.perf_counter()
    trained = train_folds(cfg, client, frame)
    models = trained.pop("_models")
    stages["train"] = time.perf_counter() - t
    log.info("pipeline 4/4: evaluation and report")
    t = time.perf_counter()
    folds = folds_of(cfg, frame, str(task_option(cfg, "folds", "test")))
    metrics, full = evaluate_folds(cfg, frame, models, folds)
    notes = [
        f"data: {cfg.data.name}; features: {cfg.features.name}; model: {trained['model']} "
        f"on {trained['device']}; folds: {trained['folds']} ({len(folds)})",
        f"chosen on the validation folds: {trained['chosen_params'] or 'the configured params'}",
        *(f"split: {reason}" for reason in trained["split"].get("reasons", [])),
    ]
    warnings = trained["warnings"] + metrics["warnings"]
    notes = [f"WARNING: {w['message']}" for w in warnings] + notes
    metrics["report"] = report(cfg, metrics, full, models, folds, notes)
    stages["evaluate"] = time.perf_counter() - t
    if cfg.registry.register:
        t = time.perf_counter()
        out["registry"] = register_newest(cfg, frame, models, folds, metrics)
        stages["register"] = time.perf_counter() - t
    stages["total"] = time.perf_counter() - started
    out |= metrics | trained
    out["warnings"] = warnings
    if read is not None:  # what the source read did: rows in = kept + quarantined, by reason
        out |= read.as_dict()
    out["stages"] = {k: round(v, 2) for k, v in stages.items()}
    log.info("pipeline done in %.1f s; report: %s", stages["total"], metrics["report"])
    return out


def register_newest(
    cfg: Any, frame: Any, models: dict[str, Any], folds: list[Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """Register the newest fold's model (the one trained on the most recent data).

    The bundle carries the feature spec, the run's config (secrets redacted), the evaluation
    metrics, the source (``data.name`` and the redacted ``data.path``), the training period
    (the fold's first and last training day, its rows and frauds) and a fingerprint of those
    rows. It goes to ``registry.name`` (by default ``fraud-<data.name>``).
    """
    from fraud_dask.__main__ import redacted
    from fraud_dask.registry import Registry, data_fingerprint, redact_url
    from fraud_dask.split import select_train

    newest = max(folds, key=lambda f: f.train_end)
    kind = str(getattr(cfg.model.kind, "value", cfg.model.kind))
    model = models[newest.name][kind]
    rows = select_train(frame, newest)
    fingerprint = data_fingerprint(rows)
    training = {
        "fold": newest.name,
        "start": newest.train_start.isoformat(),
        "end": newest.train_end.isoformat(),
        "rows": fingerprint["rows"],
        "frauds": int(rows["is_fraud"].sum().compute()),
    }
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
        source=cfg.data,
        training=training,
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
