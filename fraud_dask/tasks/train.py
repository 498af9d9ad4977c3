"""``task=train``: features, time-based folds, model selection on validation folds, training.

For each fold of ``task.folds`` (``test``: the prequential test folds; ``baseline``: the one
baseline fold) the model trains on the fold's training period and the baseline beside it
(:func:`fraud_dask.train.folds.train_folds`); a ``model.search`` grid is decided on the
validation folds first. Models go to ``<run_dir>/models/<fold>/<model>/`` (``task.model_dir``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import FoldsTaskConf, models_dir, read_features, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Train the configured model on every fold and save it.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
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
    from fraud_dask.train.folds import train_folds

    frame, read = read_features(cfg, client)
    which = task_conf(cfg, FoldsTaskConf).folds
    out = train_folds(cfg, client, frame, which=which, model_dir=models_dir(cfg))
    out.pop("_models")
    if read is not None:
        out |= read.as_dict()
    return out
