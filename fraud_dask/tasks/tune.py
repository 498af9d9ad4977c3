"""``task=tune``: an Optuna study on the validation folds; the best parameters as an experiment.

Features are built (or read from ``task.features_path``), optionally screened over time
(``tune.screen``), and the study's trials train and score on the validation folds only, side by
side in worker tasks or one at a time on the whole cluster (:func:`fraud_dask.tune.tune`).
Writes ``tune.html`` and the experiment ``<data home>/configs/experiment/<name>.yaml``, which a
later run uses as ``experiment=<name>``.

Example::

    python -m fraud_dask task=tune experiment=handbook_plus tune.n_trials=30
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import read_features, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Run (or continue) the study and write its results.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config: ``tune``, ``model``, ``split``, ``data``, ``features``, ``seed``,
        ``run_dir``; ``task.features_path``.
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        See :func:`fraud_dask.tune.tune`; when the source was read, ``rows_in``, ``rows_kept``,
        ``rows_quarantined``, ``by_reason``, ``dedupe``.
    """
    from fraud_dask.tune import tune

    frame, read = read_features(cfg, client)
    out = tune(cfg, client, frame)
    if read is not None:
        out |= read.as_dict()
    return out
