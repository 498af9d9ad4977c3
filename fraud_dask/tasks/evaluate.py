"""``task=evaluate``: score each fold's test period with the saved models, metrics and report.

Models come from ``task.model_dir`` (default ``<run_dir>/models``, as ``task=train`` writes
them); each fold's test rows drop the cards already known compromised (the split's rule). The
metrics are exact (:func:`fraud_dask.train.evaluate.evaluate_folds`); ``test.<metric>`` is the
mean over the folds, with ``test.<metric>_std`` and ``test.per_fold``; the baseline gets the
same under ``baseline``. ``report.html`` goes to the run directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import FoldsTaskConf, models_dir, read_features, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Evaluate saved models on the test folds and write the report.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
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

    task = task_conf(cfg, FoldsTaskConf)
    frame, read = read_features(cfg, client)
    folds = folds_of(cfg, frame, task.folds)
    models = load_models(models_dir(cfg), folds)
    metrics, full = evaluate_folds(cfg, frame, models, folds, k=task.k, max_fpr=task.max_fpr)
    notes = [f"data: {cfg.data.name}"]
    metrics["report"] = write_fold_report(cfg, metrics, full, models, folds, notes)
    if read is not None:
        metrics |= read.as_dict()
    return metrics
