"""Writing the synthetic transactions of ``data.synthetic`` to ``data.path`` on the cluster.

The rows come from :func:`fraud_dask.data.synthetic.generate` and are written by
:func:`fraud_dask.data.io.write_datasets` (hive-partitioned by day, atomic, a rerun replaces the
dataset); the per-scenario counts are computed in the same pass, so every row is generated once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.data.config import DataConf

log = logging.getLogger(__name__)


def write_synthetic(data: DataConf, client: Client) -> dict[str, Any]:
    """Generate the synthetic dataset on the cluster and write it as Parquet.

    Parameters
    ----------
    data : fraud_dask.data.config.DataConf
        The ``data`` config: ``path``, ``synthetic``, ``storage_options`` and
        ``partition_column``.
    client : distributed.Client
        The session's client; the work runs on its cluster.

    Returns
    -------
    dict
        ``rows_written``, ``fraud_rows``, ``fraud_rate``, ``scenarios`` (rows per scenario name),
        ``customers``, ``terminals``, ``clients``, ``days``, ``partitions``, ``seconds``,
        ``rows_per_s`` and ``output`` (the dataset path).

    Raises
    ------
    ValueError
        ``data.path`` is missing, or ``data.synthetic`` is invalid (the field is named).
    RuntimeError
        The files written do not hold exactly the planned number of rows.
    """
    import dask

    from fraud_dask.data.io import write_datasets
    from fraud_dask.data.synthetic import Scenario, generate, make_plan
    from fraud_dask.data.synthetic.manifest import write_manifest

    if not data.path:
        raise ValueError("task=generate: data.path is not set (where to write the dataset)")
    path = str(data.path)
    storage_options = dict(data.storage_options)
    partition_column = data.partition_column or "day"
    conf = data.synthetic
    plan = make_plan(conf)
    ddf = generate(conf)
    log.info(
        "generating %d rows (%d customers, %d terminals, %d days) in %d partitions -> %s",
        plan.n_rows,
        plan.n_customers,
        plan.n_terminals,
        plan.n_days,
        ddf.npartitions,
        path,
    )
    # the options the data there was made with, to say what this run replaces
    replaced = _replaced(path, conf, storage_options)
    start = time.perf_counter()
    with dask.config.set(scheduler=client):
        rows, *counts = write_datasets(
            [(ddf, path, (partition_column,))],
            storage_options,
            # one tree reduction per scenario: no shuffle, and generated in the same pass
            extra=[(ddf["scenario"] == int(s)).sum() for s in Scenario],
        )
    seconds = time.perf_counter() - start
    write_manifest(path, conf, storage_options)  # which options made these rows
    scenarios = {s.name: int(n) for s, n in zip(Scenario, counts, strict=True)}
    if rows != plan.n_rows or sum(scenarios.values()) != plan.n_rows:
        raise RuntimeError(
            f"task=generate: planned {plan.n_rows} rows, wrote {rows} to {path} "
            f"(counted {sum(scenarios.values())})"
        )
    fraud = rows - scenarios[Scenario.genuine.name]
    log.info(
        "wrote %d rows (%.3f%% fraud) in %.1f s to %s", rows, 100 * fraud / rows, seconds, path
    )
    return {
        "rows_written": int(rows),
        "fraud_rows": int(fraud),
        "fraud_rate": fraud / rows,
        "scenarios": scenarios,
        "customers": plan.n_customers,
        "terminals": plan.n_terminals,
        "clients": plan.n_clients,
        "days": plan.n_days,
        "partitions": ddf.npartitions,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
        "output": path,
        **({"replaced": replaced} if replaced else {}),
    }


def _replaced(path: str, conf: Any, storage_options: dict[str, Any]) -> str | None:
    """What a write to ``path`` replaces when the data there was made with other options:
    a line for the summary (and a warning in the log); None for no data or the same options."""
    from fraud_dask.data.synthetic.manifest import (
        differences,
        generator_options,
        has_data,
        options_hash,
        read_manifest,
    )

    if not has_data(path, storage_options):
        return None
    recorded = read_manifest(path, storage_options)
    wanted = generator_options(conf)
    if recorded.get("hash") == options_hash(wanted):
        return None
    changed = differences(recorded.get("options") or {}, wanted) if recorded else []
    what = "; ".join(changed[:4]) if changed else "data without a generator record"
    log.warning("data.path=%s: replacing data generated with other options (%s)", path, what)
    return f"data generated with other options ({what})"
