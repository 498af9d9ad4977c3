"""SQL over the project's data: DuckDB views on the same Parquet datasets, through fsspec.

Views, each created only when the query names it:

- ``transactions``: the canonical, validated rows with card numbers (and ``data.pii_columns``)
  tokenized. DuckDB never reads a raw source: either ``sql.transactions`` names a dataset
  written by ``task=ingest`` (already validated and tokenized), or the source is read through
  the data layer on Dask (validation, quarantine, tokenization) and written as Parquet under
  ``sql.workdir`` first; DuckDB reads that.
- ``quarantine``: the rows that failed validation, with ``reason`` (same two ways).
- ``features``, ``scores``, ``monitor``: the outputs of ``task=features``, ``task=score`` and
  ``task=monitor`` (``sql.features``, ``sql.scores``, ``sql.monitor``).

Local folders are read by DuckDB directly; other URLs (``s3://``...) through the fsspec
filesystem of ``data.storage_options``, registered with ``duckdb.register_filesystem``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fraud_dask.errors import UserError

log = logging.getLogger(__name__)

VIEWS = ("transactions", "quarantine", "features", "scores", "monitor")
_SOURCES = {
    "features": "task=features output",
    "scores": "task=score output",
    "monitor": "task=monitor's monitor.parquet",
}


@dataclass
class SqlResult:
    """A query's result and where its views came from."""

    frame: pd.DataFrame | None
    """The result (None when it was written to ``output`` only)."""
    rows: int
    columns: list[str]
    views: dict[str, str]
    """View name -> the dataset it reads."""
    output: str | None
    materialized: dict[str, int]
    """Views validated on Dask for this query -> rows written (empty when none was needed)."""


def referenced_views(query: str) -> list[str]:
    """The view names a query mentions (as whole words, any case)."""
    return [v for v in VIEWS if re.search(rf"\b{v}\b", query, flags=re.IGNORECASE)]


def _local(fs: Any) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protocols or "local" in protocols


def _parquet_glob(path: str, storage_options: Mapping[str, Any], con: Any) -> str:
    """The DuckDB file pattern of a dataset (a folder of Parquet files, or one file)."""
    from fraud_dask.data.io import filesystem

    fs, root = filesystem(path, dict(storage_options))
    if not fs.exists(root):
        raise UserError(f"sql: {path} does not exist")
    if not _local(fs):
        con.register_filesystem(fs)
    prefix = "" if _local(fs) else f"{path.split('://', 1)[0]}://"
    if fs.isfile(root):
        return prefix + root
    if not any(f.endswith(".parquet") for f in fs.find(root)):
        raise UserError(f"sql: no Parquet file under {path}")
    return f"{prefix}{root}/**/*.parquet"


def materialize(data: Any, workdir: str, client: Any = None) -> dict[str, Any]:
    """Validate the source on Dask and write its kept rows and quarantine under ``workdir``.

    Returns
    -------
    dict
        ``transactions`` and ``quarantine`` paths, and the read's counts (``rows_in``...).
    """
    import contextlib

    import dask

    from fraud_dask.data import read_transactions
    from fraud_dask.data.io import write_datasets

    base = workdir.rstrip("/")
    paths = {"transactions": f"{base}/transactions", "quarantine": f"{base}/quarantine"}
    read = read_transactions(data)
    scheduler = (
        dask.config.set(scheduler=client) if client is not None else contextlib.nullcontext()
    )
    with scheduler:
        kept, quarantined, *values = write_datasets(
            [
                (read.kept, paths["transactions"], ("day",)),
                (read.quarantine, paths["quarantine"], None),
            ],
            dict(data.storage_options) or None,
            extra=read.lazy_counts(),
        )
    counts = read.counts(values).check("sql")
    log.info("sql: %s validated: %s", data.name, counts.describe())
    return {**paths, "rows": {"transactions": int(kept), "quarantine": int(quarantined)},
            **counts.as_dict()}  # fmt: skip


def run_query(
    query: str,
    cfg: Any,
    *,
    client: Any = None,
    output: str | None = None,
) -> SqlResult:
    """Run ``query`` over the views of ``cfg`` with DuckDB.

    Parameters
    ----------
    query : str
        SQL (DuckDB dialect) naming any of :data:`VIEWS`.
    cfg : fraud_dask.config.Config
        Uses ``sql`` (dataset paths, ``workdir``), ``data`` (the source, its
        ``storage_options``) and ``run_dir``.
    client : distributed.Client, optional
        Where the source is validated when ``transactions`` or ``quarantine`` must be written
        first; default: the current Dask scheduler.
    output : str, optional
        Write the result there (``.parquet`` or ``.csv``) instead of returning it.

    Returns
    -------
    SqlResult

    Raises
    ------
    UserError
        An empty query, a view without a dataset, a dataset that is missing, a bad output
        suffix, or a query DuckDB rejects (its message).
    """
    import duckdb

    if not query or not query.strip():
        raise UserError('sql.query: empty; e.g. sql.query="SELECT count(*) FROM transactions"')
    conf = cfg.sql
    storage_options = dict(cfg.data.storage_options)
    wanted = referenced_views(query)
    paths: dict[str, str] = {}
    materialized: dict[str, int] = {}
    given = {"transactions": conf.transactions, "quarantine": conf.quarantine}
    if any(v in wanted and given[v] is None for v in given):
        if conf.transactions is not None and str(conf.transactions).rstrip("/") == str(
            cfg.data.path
        ).rstrip("/"):
            raise UserError("sql.transactions: the raw source data.path; give task=ingest's output")
        workdir = conf.workdir or f"{str(cfg.run_dir).rstrip('/')}/sql"
        done = materialize(cfg.data, workdir, client)
        for v in given:
            if v in wanted and given[v] is None:
                paths[v] = done[v]
                materialized[v] = done["rows"][v]
    for v in given:
        if v in wanted and given[v] is not None:
            if str(given[v]).rstrip("/") == str(cfg.data.path).rstrip("/"):
                raise UserError(
                    f"sql.{v}: {given[v]} is the raw source (data.path), which may hold card "
                    "numbers; give task=ingest's output, or null to validate it here"
                )
            paths[v] = str(given[v])
    for v, what in _SOURCES.items():
        if v in wanted:
            path = getattr(conf, v)
            if path is None:
                raise UserError(f"sql: the query names the view {v!r}: set sql.{v} ({what})")
            paths[v] = str(path)
    con = duckdb.connect()
    try:
        for name, path in paths.items():
            pattern = _parquet_glob(path, storage_options, con)
            literal = pattern.replace("'", "''")
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{literal}', "
                "hive_partitioning = true, union_by_name = true)"
            )
        try:
            relation = con.sql(query)
        except duckdb.Error as exc:
            raise UserError(f"sql.query: {str(exc).splitlines()[0]}") from exc
        if relation is None:
            raise UserError("sql.query: the statement returns no rows (use a SELECT)")
        try:
            table = relation.to_arrow_table()
        except duckdb.Error as exc:
            raise UserError(f"sql.query: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    columns = list(table.column_names)
    if output is not None:
        _write(table, output, storage_options)
        return SqlResult(None, table.num_rows, columns, paths, output, materialized)
    return SqlResult(table.to_pandas(), table.num_rows, columns, paths, None, materialized)


def _write(table: Any, output: str, storage_options: Mapping[str, Any]) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from fraud_dask.data.io import filesystem

    suffix = output.lower().rsplit(".", 1)[-1] if "." in output else ""
    if suffix not in ("parquet", "csv"):
        raise UserError(f"sql.output: got {output!r}, expected a path ending in .parquet or .csv")
    fs, path = filesystem(output, dict(storage_options))
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as f:
        if suffix == "parquet":
            pq.write_table(table, f)
        else:
            pacsv.write_csv(table, f)
    log.info("sql: %d rows -> %s", table.num_rows, output)
