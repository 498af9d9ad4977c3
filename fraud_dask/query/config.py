"""Schema of the ``sql`` config group (``task=sql`` and :func:`fraud_dask.sql`); no dask import."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SqlConf:
    """Schema of the ``sql`` group: a query, where its result goes, the datasets behind views.

    Views (each defined only when the query names it): ``transactions`` (canonical, validated,
    card numbers tokenized), ``quarantine`` (rows that failed validation, with ``reason``),
    ``features``, ``scores`` and ``monitor``. DuckDB reads them as Parquet through fsspec (local
    folders and ``s3://``, with ``data.storage_options``).
    """

    # the SQL query (DuckDB dialect); required by task=sql
    query: str | None = None
    # null: print the result (at most max_rows rows); a path ending in .parquet or .csv (local
    # or any fsspec URL): write the whole result there
    output: str | None = None
    max_rows: int = 50
    # a dataset written by task=ingest (validated and tokenized) for the `transactions` view;
    # null: the source `data` is read and validated on Dask and written under workdir first
    # (never the raw files: they may hold card numbers)
    transactions: str | None = None
    # task=ingest's quarantine dataset for the `quarantine` view; null: as for transactions
    quarantine: str | None = None
    # task=features output (features.output of that run) for the `features` view
    features: str | None = None
    # task=score output (score.output of that run) for the `scores` view
    scores: str | None = None
    # task=monitor results (its run directory's monitor.parquet) for the `monitor` view
    monitor: str | None = None
    # where validated transactions and quarantine are written when needed (null: <run_dir>/sql)
    workdir: str | None = None
