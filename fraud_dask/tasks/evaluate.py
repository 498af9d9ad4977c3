"""``task=evaluate``: score each fold's test period with the saved models, metrics and report.

Models come from ``task.model_dir`` (default ``<run_dir>/models``, as ``task=train`` writes
them); each fold's test rows drop the cards already known compromised (the split's rule). The
metrics are exact (:func:`fraud_dask.train.evaluate.evaluate_folds`); ``test.<metric>`` is the
mean over the folds, with ``test.<metric>_std`` and ``test.per_fold``; the baseline gets the
same under ``baseline``. ``report.html`` goes to the run directory.
"""

from __future__ import annotations

from typing import Any

from fraud_dask.tasks import models_dir, read_features, task_option


def run(cfg: Any, client: Any) -> dict[str, Any]:
    """Evaluate saved models on the test folds and write the report.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The run config; ``task.model_dir``, ``task.folds``, ``task.k`` (100), ``task.max_fpr``.
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        ``test`` (means, stds and per-fold values of ROC AUC, AP, CP@k, recall at FPR),
        ``baseline`` likewise, ``details`` and ``report`` (the HTML path); when the source was
        read, ``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``dedupe``.
    """
    from fraud_dask.train.evaluate import evaluate_folds, load_models, write_fold_report
    from fraud_dask.train.folds import folds_of

    frame, read = read_features(cfg, client)
    folds = folds_of(cfg, frame, str(task_option(cfg, "folds", "test")))
    models = load_models(models_dir(cfg), folds)
    k, max_fpr = int(task_option(cfg, "k", 100)), float(task_option(cfg, "max_fpr", 0.01))
    metrics, full = evaluate_folds(cfg, frame, models, folds, k=k, max_fpr=max_fpr)
    notes = [f"data: {cfg.data.name}"]
    metrics["report"] = write_fold_report(cfg, metrics, full, models, folds, notes)
    if read is not None:
        metrics |= read.as_dict()
    return metrics
