"""``task=pipeline`` (the default): generate if missing, features, train, evaluate, report.

One run directory holds everything: the models (``models/<fold>/<model>/``), ``report.html``
and the metrics this returns (``metrics.json``): ``test.roc_auc``, ``test.average_precision``,
``test.card_precision_at_100`` (means over the folds, with ``_std`` and ``per_fold``), the
baseline's, the validation search and the seconds per stage.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import FoldsTaskConf, models_dir, read_features, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


def _dataset_exists(cfg: Config) -> bool:
    from fraud_dask.data.io import list_files

    options = dict(cfg.data.storage_options) or None
    try:
        _, _, files = list_files(str(cfg.data.path), "parquet", options)
    except (FileNotFoundError, ValueError):
        return False
    return bool(files)


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Run the whole journey on ``cfg`` in one cluster session.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config (every group).
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        The evaluation metrics (see :func:`fraud_dask.train.evaluate.evaluate_folds`) plus
        ``training``, ``search``, ``chosen_params``, ``device``, ``stages`` (seconds) and
        ``report``; the source read's ``rows_in``, ``rows_kept``, ``rows_quarantined``,
        ``by_reason``, ``dedupe``.
    """
    from fraud_dask.train.evaluate import evaluate_folds, merge_warnings, write_fold_report
    from fraud_dask.train.folds import folds_of, register_newest, train_folds

    task = task_conf(cfg, FoldsTaskConf)
    stages: dict[str, float] = {}
    out: dict[str, Any] = {}
    started = time.perf_counter()
    if cfg.data.name == "synthetic" and not _dataset_exists(cfg):
        from fraud_dask.data.synthetic.write import write_synthetic

        log.info("pipeline 1/4: generating synthetic data into %s", cfg.data.path)
        written = write_synthetic(cfg.data, client)
        out["generate"] = {k: v for k, v in written.items() if k != "scenarios"}
        stages["generate"] = time.perf_counter() - started
    log.info("pipeline 2/4: features (%s)", cfg.features.name)
    t = time.perf_counter()
    frame, read = read_features(cfg, client)
    stages["features"] = time.perf_counter() - t
    log.info("pipeline 3/4: training (%s)", cfg.model.kind)
    t = time.perf_counter()
    which = task.folds
    trained = train_folds(cfg, client, frame, which=which, model_dir=models_dir(cfg))
    models = trained.pop("_models")
    stages["train"] = time.perf_counter() - t
    log.info("pipeline 4/4: evaluation and report")
    t = time.perf_counter()
    folds = folds_of(cfg, frame, which)
    metrics, full = evaluate_folds(cfg, frame, models, folds, k=task.k, max_fpr=task.max_fpr)
    notes = [
        f"data: {cfg.data.name}; features: {cfg.features.name}; model: {trained['model']} "
        f"on {trained['device']}; folds: {trained['folds']} ({len(folds)})",
        f"chosen on the validation folds: {trained['chosen_params'] or 'the configured params'}",
        *(f"split: {reason}" for reason in trained["split"].get("reasons", [])),
    ]
    warnings = merge_warnings(trained["warnings"], metrics["warnings"])
    notes = [f"WARNING: {w['message']}" for w in warnings] + notes
    metrics["report"] = write_fold_report(cfg, metrics, full, models, folds, notes)
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
