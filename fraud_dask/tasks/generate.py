"""``task=generate``: write the synthetic transactions of ``data.synthetic`` to ``data.path``.

See :func:`fraud_dask.data.synthetic.write.write_synthetic`: hive-partitioned by day, atomic (a
rerun replaces the dataset), every row generated once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Generate the synthetic dataset on the cluster and write it as Parquet.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config; uses ``cfg.data.path``, ``cfg.data.synthetic``, and optionally
        ``cfg.data.storage_options`` and ``cfg.data.partition_column`` (default ``day``).
    client : distributed.Client
        The session's client; the work runs on its cluster.

    Returns
    -------
    dict
        See :func:`~fraud_dask.data.synthetic.write.write_synthetic`.
    """
    from fraud_dask.data.synthetic.write import write_synthetic

    return write_synthetic(cfg.data, client)
