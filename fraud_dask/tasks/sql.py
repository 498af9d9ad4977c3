"""``task=sql``: a SQL query over the project's data with DuckDB; a table printed or a file.

Views: ``transactions`` (canonical, validated, card numbers tokenized), ``quarantine``,
``features``, ``scores``, ``monitor`` (see :mod:`fraud_dask.query.views`). Without
``sql.transactions`` (a dataset written by ``task=ingest``) the source is validated on the
cluster and written under ``sql.workdir`` first, so DuckDB never reads raw card numbers.

Example::

    python -m fraud_dask task=sql \\
        sql.query="SELECT category, count(*) n, avg(is_fraud) rate FROM transactions GROUP BY 1"
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Run ``sql.query``; print the result (``sql.max_rows`` rows) or write it to ``sql.output``.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        Uses ``sql``, ``data`` and ``run_dir``.
    client : distributed.Client
        Validates the source when a view needs it.

    Returns
    -------
    dict
        ``query``, ``rows``, ``columns``, ``views`` (name -> dataset), ``materialized`` (views
        validated for this run -> rows), ``output`` (a path, or null when printed), ``preview``
        (the first ``sql.max_rows`` rows, when printed) and ``seconds``.
    """
    import pandas as pd

    from fraud_dask.errors import UserError
    from fraud_dask.query.views import run_query

    started = time.perf_counter()
    conf = cfg.sql
    if conf.query is None:
        raise UserError('sql.query: not set; e.g. sql.query="SELECT count(*) FROM transactions"')
    if conf.max_rows < 0:
        raise UserError(f"sql.max_rows: got {conf.max_rows}, expected >= 0")
    result = run_query(conf.query, cfg, client=client, output=conf.output)
    out: dict[str, Any] = {
        "query": conf.query,
        "rows": result.rows,
        "columns": result.columns,
        "views": result.views,
        "materialized": result.materialized,
        "output": result.output,
    }
    if result.frame is not None:
        shown = result.frame.head(conf.max_rows)
        with pd.option_context("display.max_columns", 50, "display.width", 200):
            print(shown.to_string(index=False))
        if result.rows > len(shown):
            print(f"({result.rows} rows, {len(shown)} shown; sql.output=FILE writes them all)")
        out["preview"] = [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in shown.astype(object).where(shown.notna(), None).to_dict("records")
        ]
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out
