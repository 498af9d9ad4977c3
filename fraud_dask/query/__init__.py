"""SQL over the project's data with DuckDB: views on the same Parquet, through fsspec.

:func:`fraud_dask.sql` (for notebooks) and ``task=sql`` run a query over the views
``transactions`` (validated, card numbers tokenized), ``quarantine``, ``features``, ``scores``
and ``monitor``; see :mod:`fraud_dask.query.views`. Options: the ``sql`` config group
(:class:`fraud_dask.query.config.SqlConf`). Importing this package imports neither dask nor
duckdb.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fraud_dask.query.config import SqlConf

__all__ = ["SqlConf", "sql"]


def sql(query: str, cfg: Any = None, *, client: Any = None, output: str | None = None) -> Any:
    """Run a SQL query over the views of a config; the result as a pandas DataFrame.

    Parameters
    ----------
    query : str
        SQL (DuckDB) naming ``transactions``, ``quarantine``, ``features``, ``scores`` or
        ``monitor``.
    cfg : Config, DictConfig or mapping, optional
        The run config (``fraud_dask.config.compose(...)``) or overrides as a mapping
        (``{"sql": {"scores": "..."}, "data": {...}}``); default: the default composition.
    client : distributed.Client, optional
        Where the source is validated when ``transactions``/``quarantine`` need it.
    output : str, optional
        Write the result to this ``.parquet``/``.csv`` path instead (returns None).

    Returns
    -------
    pandas.DataFrame or None
    """
    from fraud_dask.config import as_config
    from fraud_dask.query.views import run_query

    typed = as_config(cfg if cfg is not None else {}, task="sql") if not _typed(cfg) else cfg
    return run_query(query, typed, client=client, output=output).frame


def _typed(cfg: Any) -> bool:
    from fraud_dask.config import Config

    return isinstance(cfg, Config) and not isinstance(cfg, Mapping)
