"""The one door for transaction files: listing, reading (Parquet or CSV) and atomic writing.

Reading understands the layouts real producers write: pandas/pyarrow files, Spark output
(``part-*.snappy.parquet``, INT96 timestamps, ``_SUCCESS`` and ``.crc`` files, hive
``key=value`` folders). Files are listed in natural order, one partition per file, so a row's
position (file index, row) is the same however the cluster is sized. Writing is hive-partitioned
by day and atomic: data goes to a hidden sibling folder, which replaces the target only once every
partition is written.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_dask.errors import InputNotFoundError, UserError

log = logging.getLogger(__name__)

_SKIP_PREFIXES = ("_", ".")
_PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".txt")


def _natural_key(path: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def filesystem(path: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Return the fsspec filesystem and the protocol-less path of a URL.

    Parameters
    ----------
    path : str
        Local path or fsspec URL (``s3://bucket/key``, ``memory://...``).
    storage_options : dict, optional
        Passed to the filesystem (credentials, ``client_kwargs``...).

    Returns
    -------
    (fsspec.AbstractFileSystem, str)
    """
    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    return fs, root.rstrip("/")


def _wanted(rel: str, fmt: str) -> bool:
    parts = rel.split("/")
    if any(p.startswith(_SKIP_PREFIXES) for p in parts):
        return False
    name = parts[-1].lower()
    if fmt == "csv":
        return name.endswith(_CSV_SUFFIXES)
    # Spark and Hadoop writers sometimes leave the suffix off; never read their checksums.
    return name.endswith(_PARQUET_SUFFIXES) or ("." not in name and name.startswith("part-"))


def hive_values(rel: str) -> dict[str, str]:
    """Return the ``key=value`` folder names of a path relative to a dataset root."""
    out = {}
    for part in rel.split("/")[:-1]:
        if "=" in part:
            key, value = part.split("=", 1)
            out[key] = value
    return out


def list_files(
    path: str, fmt: str = "parquet", storage_options: dict[str, Any] | None = None
) -> tuple[Any, str, list[str]]:
    """List the data files of a dataset in natural order.

    Parameters
    ----------
    path : str
        A file, a folder (searched recursively; ``_*`` and ``.*`` entries are skipped as Spark and
        Hadoop markers) or a glob.
    fmt : {"parquet", "csv"}
        Which file suffixes count as data.
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    (filesystem, root, files)
        ``files`` are full protocol-less paths.

    Raises
    ------
    FileNotFoundError
        Nothing matches, or the folder holds no data file.
    """
    fs, root = filesystem(path, storage_options)
    if any(ch in root for ch in "*?["):
        files = [f for f in fs.glob(root) if fs.isfile(f)]
        root = root.split("*")[0].rsplit("/", 1)[0]
    elif fs.isfile(root):
        return fs, root.rsplit("/", 1)[0], [root]
    elif fs.isdir(root):
        files = [f for f in fs.find(root) if _wanted(f[len(root) + 1 :], fmt)]
    else:
        raise InputNotFoundError(f"data source not found: {path}")
    if not files:
        raise InputNotFoundError(f"no {fmt} files under {path}")
    return fs, root, sorted(files, key=_natural_key)


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """What the footer (or CSV header) of one data file says."""

    path: str
    hive: dict[str, str]
    schema: pa.Schema
    num_rows: int | None
    nullable: frozenset[str] | None = None
    """Top-level columns that may hold nulls by the footer's statistics (a column without
    statistics counts as nullable); None: unknown (CSV)."""


def inspect_files(fs: Any, root: str, files: Sequence[str], fmt: str) -> list[FileInfo]:
    """Read every file's footer (Parquet) or header (CSV), in parallel threads.

    Raises
    ------
    ValueError
        A file is unreadable or not a valid file of that format (the file is named).
    """

    def one(path: str) -> FileInfo:
        hive = hive_values(path[len(root) + 1 :])
        try:
            if fmt == "csv":
                with fs.open(path, "rb", compression="infer") as f:
                    header = pd.read_csv(f, nrows=0)
                schema = pa.schema([(str(c), pa.string()) for c in header.columns])
                return FileInfo(path, hive, schema, None)
            with fs.open(path, "rb") as f:
                meta = pq.ParquetFile(f).metadata
                schema = meta.schema.to_arrow_schema()
            return FileInfo(path, hive, schema, meta.num_rows, _nullable(meta))
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise UserError(f"{path}: unreadable or corrupt {fmt} file: {exc}") from None

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(files)))) as pool:
        return list(pool.map(one, files))


def _nullable(meta: pq.FileMetaData) -> frozenset[str]:
    """Columns of a Parquet file whose statistics admit nulls (or that have none)."""
    out: set[str] = set()
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            column = group.column(j)
            stats = column.statistics
            if stats is None or not stats.has_null_count or stats.null_count > 0:
                path = column.path_in_schema  # "a.b" is a nested field or a dotted name
                out.update((path, path.split(".", 1)[0]))
    return frozenset(out)


def _parquet_table(
    path: str,
    *,
    fs: Any,
    read_columns: Sequence[str],
    filters: list[tuple[str, str, Any]] | None,
) -> pa.Table:
    """One Parquet file's table, projected to ``read_columns`` present and filtered."""
    try:
        with fs.open(path, "rb") as f:
            pfile = pq.ParquetFile(f)
            names = set(pfile.schema_arrow.names)
            present = [c for c in read_columns if c in names]
            usable = [flt for flt in filters or [] if flt[0] in names]
            # INT96 (Spark) read at microseconds: years outside 1677-2262 do not overflow.
            return pq.read_table(
                f,
                columns=present,
                filters=usable or None,
                coerce_int96_timestamp_unit="us",
            )
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{path}: unreadable or corrupt parquet file: {exc}") from None


def _complete(pdf: pd.DataFrame, hive: dict[str, str], columns: Sequence[str]) -> pd.DataFrame:
    """Add the file's hive values, and nulls for the columns it lacks."""
    for key, value in hive.items():
        if key in columns and key not in pdf.columns:
            pdf[key] = pd.Series(value, index=pdf.index, dtype="str")
    for col in columns:
        if col not in pdf.columns:
            pdf[col] = pd.Series(None, index=pdf.index, dtype=object)
    return pdf


def read_file(
    index: int,
    path: str,
    hive: dict[str, str],
    *,
    fs: Any,
    fmt: str,
    read_columns: Sequence[str],
    filters: list[tuple[str, str, Any]] | None,
    csv_options: dict[str, Any],
    process: Callable[[pd.DataFrame, str, Any], pd.DataFrame],
) -> pd.DataFrame:
    """Read one file (projected and filtered), add its hive values, and ``process`` it.

    Missing columns come back as nulls; ``process(frame, path, index)`` does the rest.

    Raises
    ------
    ValueError
        The file cannot be read (the file is named).
    """
    columns = read_columns
    if fmt == "csv":
        try:
            with fs.open(path, "rb", compression="infer") as f:
                header = pd.read_csv(f, nrows=0, **csv_options).columns
            present = [c for c in columns if c in header]
            with fs.open(path, "rb", compression="infer") as f:
                pdf = pd.read_csv(f, usecols=present, dtype=str, **csv_options)
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"{path}: unreadable or corrupt {fmt} file: {exc}") from None
    else:
        table = _parquet_table(path, fs=fs, read_columns=columns, filters=filters)
        pdf = table.to_pandas()
    return process(_complete(pdf, hive, columns), path, index)


def _read_group(
    group: Sequence[tuple[int, str, dict[str, str]]],
    *,
    fs: Any,
    fmt: str,
    read_columns: Sequence[str],
    filters: list[tuple[str, str, Any]] | None,
    csv_options: dict[str, Any],
    process: Callable[[pd.DataFrame, str, Any], pd.DataFrame],
) -> pd.DataFrame:
    """Read consecutive files into one partition.

    Parquet files with the same schema are concatenated as Arrow tables and processed once
    (``index`` is then the file index of every row); files whose schemas differ, and any group
    whose combined processing raises, are processed file by file, so that an error names its
    file.
    """
    kwargs = {"fs": fs, "fmt": fmt, "read_columns": read_columns, "filters": filters,
              "csv_options": csv_options, "process": process}  # fmt: skip
    if len(group) > 1 and fmt != "csv":
        tables = [
            _parquet_table(path, fs=fs, read_columns=read_columns, filters=filters)
            for _, path, _ in group
        ]
        hive_keys = {k for _, _, hive in group for k in hive if k in read_columns}
        schema = tables[0].schema
        if all(t.schema.equals(schema) for t in tables[1:]) and not any(
            k in schema.names for k in hive_keys
        ):
            pdf = pa.concat_tables(tables).to_pandas()
            counts = [t.num_rows for t in tables]
            for key in sorted(hive_keys):
                values = [hive.get(key) for _, _, hive in group]
                pdf[key] = pd.Series(np.repeat(np.array(values, dtype=object), counts),
                                     index=pdf.index, dtype="str")  # fmt: skip
            index = np.repeat(np.array([i for i, _, _ in group], dtype=np.int64), counts)
            source = f"{group[0][1]} (+{len(group) - 1} more files)"
            try:
                return process(_complete(pdf, {}, read_columns), source, index)
            except (ValueError, TypeError):
                pass  # read file by file below: the error then names its file
    parts = [read_file(index, path, hive, **kwargs) for index, path, hive in group]
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


def group_files(
    infos: Sequence[FileInfo], rows_per_partition: int | None
) -> list[list[tuple[int, str, dict[str, str]]]]:
    """Consecutive files, in order, in ``ceil(rows / rows_per_partition)`` balanced groups.

    Row counts come from the footers; a file is never split (a file larger than the target
    makes its group larger). Files with no row are left out (one is kept when all are empty).
    One group per file when ``rows_per_partition`` is None or a row count is unknown (CSV).
    """
    picks = [(i, info) for i, info in enumerate(infos) if info.num_rows != 0]
    if not picks:
        picks = [(0, infos[0])]
    if rows_per_partition is None or any(info.num_rows is None for _, info in picks):
        return [[(i, info.path, info.hive)] for i, info in picks]
    # k groups of about total / k rows each (1.2 M rows at 500k: 3 x 400k); a file goes to
    # the group holding its middle row, so groups stay consecutive and balanced
    sizes = np.array([info.num_rows for _, info in picks], dtype=np.int64)
    total = int(sizes.sum())
    k = max(1, -(-total // max(1, rows_per_partition)))
    middle = np.cumsum(sizes) - sizes / 2
    which = np.minimum(k - 1, (middle * k // max(total, 1)).astype(np.int64))
    groups: list[list[tuple[int, str, dict[str, str]]]] = []
    last = -1
    for g, (i, info) in zip(which.tolist(), picks, strict=True):
        if g != last:
            groups.append([])
            last = g
        groups[-1].append((i, info.path, info.hive))
    return groups


def read_files(
    infos: Sequence[FileInfo],
    *,
    fs: Any,
    fmt: str,
    columns: Sequence[str],
    filters: list[tuple[str, str, Any]] | None,
    csv_options: dict[str, Any],
    process: Callable[[pd.DataFrame, str, int], pd.DataFrame],
    meta: pd.DataFrame,
    label: str = "read-transactions",
    rows_per_partition: int | None = None,
) -> dd.DataFrame:
    """A lazy frame of the files, each read by :func:`read_file`.

    One partition per file, or (``rows_per_partition``) one per run of consecutive files, in
    balanced groups of about that many rows (:func:`group_files`).
    """
    return dd.from_map(
        _read_group,
        group_files(infos, rows_per_partition),
        fs=fs,
        fmt=fmt,
        read_columns=list(columns),
        filters=filters,
        csv_options=csv_options,
        process=process,
        meta=meta,
        label=label,
        enforce_metadata=False,
    )


def _with_day(df: dd.DataFrame, column: str) -> dd.DataFrame:
    if column in df.columns:
        if df[column].dtype != "str":  # hive reads give categories of every date: use strings
            return df.assign(**{column: df[column].astype("str")})
        return df
    if "ts" not in df.columns:
        raise ValueError(f"cannot partition by {column!r}: the frame has neither it nor 'ts'")
    day = df["ts"].map_partitions(_utc_day, meta=pd.Series([], dtype="str", name=column))
    return df.assign(**{column: day})


def _utc_day(ts: pd.Series) -> pd.Series:
    """YYYY-MM-DD (UTC) of each timestamp, via numpy (strftime is ~50x slower)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    days = np.datetime_as_string(ts.to_numpy().astype("datetime64[D]"), unit="D")
    return pd.Series(days, index=ts.index, dtype="str", name=ts.name)


def write_dataset(
    df: dd.DataFrame,
    path: str,
    *,
    partition_on: Sequence[str] | None = ("day",),
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = True,
    compute: bool = True,
) -> int | Callable[[], int]:
    """Write a lazy frame as a Parquet dataset, atomically.

    The data is written to a hidden sibling folder (``.<name>.tmp-<uuid>``); only when every
    partition is written does it replace ``path`` (the old dataset is moved aside, the new one
    moved in, the old one deleted). A failure while writing leaves ``path`` as it was and removes
    the partial output; a rerun replaces the dataset, never adds to it.

    Parameters
    ----------
    df : dask.dataframe.DataFrame
        The rows; with ``partition_on=("day",)`` and no ``day`` column, ``day`` (YYYY-MM-DD,
        UTC) is derived from ``ts``.
    path : str
        Target folder, local or any fsspec URL (``s3://...``).
    partition_on : sequence of str or None
        Hive partition columns; None writes a flat folder of ``part.NNNNN.parquet`` files.
    storage_options : dict, optional
        fsspec options (used by the client and the workers).
    overwrite : bool
        If False and ``path`` exists, raise ``FileExistsError``.
    compute : bool
        If False, return a function that writes when called, so that several writes share one
        ``dask.compute`` (see :func:`write_datasets`).

    Returns
    -------
    int
        Rows written, counted from the written files' footers.
    """
    return write_datasets([(df, path, partition_on)], storage_options, overwrite, compute)


def write_datasets(
    items: Sequence[tuple[dd.DataFrame, str, Sequence[str] | None]],
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = True,
    compute: bool = True,
    extra: Sequence[Any] = (),
) -> Any:
    """Write several frames (and compute ``extra`` lazies) in one ``dask.compute``, atomically.

    Each ``(frame, path, partition_on)`` is written as :func:`write_dataset` does; shared inputs
    are read once. Returns the list of rows written per dataset, followed by the computed
    ``extra`` values when any are given.
    """
    plans = []
    for df, path, partition_on in items:
        fs, root = filesystem(path, storage_options)
        if not root:
            raise ValueError(f"refusing to write to the root of {path!r}")
        if fs.exists(root) and not overwrite:
            raise FileExistsError(f"dataset exists and overwrite=False: {path}")
        _restore_interrupted(fs, root)
        parent, name = root.rsplit("/", 1) if "/" in root else ("", root)
        tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex}" if parent else f".{name}.tmp"
        if partition_on:
            for col in partition_on:
                df = _with_day(df, col) if col == "day" else df
        tmp_url = fs.unstrip_protocol(tmp)
        job = df.to_parquet(
            tmp_url,
            partition_on=list(partition_on) if partition_on else None,
            storage_options=storage_options,
            write_index=False,
            write_metadata_file=False,
            name_function=lambda i: f"part.{i:05d}.parquet",
            schema=arrow_overrides(df._meta) or "infer",
            compute=False,
        )
        plans.append((fs, root, tmp, job))

    def run() -> Any:
        try:
            results = dask.compute(*[p[3] for p in plans], *extra)
        except BaseException:
            for fs, _, tmp, _ in plans:
                if fs.exists(tmp):
                    fs.rm(tmp, recursive=True)
            raise
        counts = [_commit(fs, root, tmp) for fs, root, tmp, _ in plans]
        if extra:
            return counts + list(results[len(plans) :])
        return counts

    if not compute:
        return run
    out = run()
    return out[0] if len(items) == 1 and not extra else out


def arrow_overrides(meta: pd.DataFrame) -> dict[str, pa.DataType]:
    """Arrow types that every partition of a frame with this meta can be written as.

    Dask infers a dataset's schema from the meta, where a category's values are unknown: a
    category of strings would get the dictionary type of an empty or placeholder category
    (``dictionary<values=null>`` for a source's dictionary-encoded column) and 8-bit indices
    (which a partition with more than 127 values overflows). Categories are therefore written
    with 32-bit indices and the value type of their categories.

    Parameters
    ----------
    meta : pandas.DataFrame
        The frame's meta (``ddf._meta``).

    Returns
    -------
    dict
        Column -> Arrow type, for the categorical columns; the rest is inferred.
    """
    out = {}
    for col, dtype in meta.dtypes.items():
        if not isinstance(dtype, pd.CategoricalDtype):
            continue
        values = dtype.categories.dtype
        if pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
            value_type = pa.large_string()
        else:
            try:
                value_type = pa.from_numpy_dtype(values)
            except (TypeError, ValueError, pa.ArrowException):
                continue  # an exotic category: left to inference
        out[str(col)] = pa.dictionary(pa.int32(), value_type)
    return out


def _restore_interrupted(fs: Any, root: str) -> None:
    """If a commit died between its two moves, put the previous dataset back."""
    parent, name = root.rsplit("/", 1) if "/" in root else ("", root)
    if fs.exists(root) or not parent:
        return
    olds = sorted(fs.glob(f"{parent}/.{name}.old-*"))
    if olds:
        log.warning("restoring %s from an interrupted commit (%s)", root, olds[-1])
        _move_tree(fs, olds[-1], root)


def _commit(fs: Any, root: str, tmp: str) -> int:
    files = [f for f in fs.find(tmp) if f.endswith(".parquet")]
    rows = sum(_footer_rows(fs, f) for f in files)
    parent, name = root.rsplit("/", 1) if "/" in root else ("", root)
    old = f"{parent}/.{name}.old-{uuid.uuid4().hex}"
    if fs.exists(root):
        _move_tree(fs, root, old)
    _move_tree(fs, tmp, root)
    if fs.exists(old):
        fs.rm(old, recursive=True)
    fs.invalidate_cache()
    return rows


def _move_tree(fs: Any, src: str, dst: str) -> None:
    """Rename a folder (local: one atomic rename; object stores: copy each object, then delete)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "file" in protocols or "local" in protocols:
        fs.mv(src, dst, recursive=True)
        return
    files = fs.find(src)
    fs.copy(files, [dst + f[len(src) :] for f in files])
    fs.rm(files)
    fs.invalidate_cache()


def _footer_rows(fs: Any, path: str) -> int:
    with fs.open(path, "rb") as f:
        return int(pq.ParquetFile(f).metadata.num_rows)


def count_rows(path: str, storage_options: dict[str, Any] | None = None) -> int:
    """Count a Parquet dataset's rows from its footers (no data is read).

    Parameters
    ----------
    path : str
        Dataset folder or file.
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    int
    """
    fs, root, files = list_files(path, "parquet", storage_options)
    return sum(_footer_rows(fs, f) for f in files)


def read_dataset(
    path: str,
    *,
    columns: Sequence[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dd.DataFrame:
    """Read a Parquet dataset written by :func:`write_dataset` (features, scores...) as is.

    Hive partition columns come back as strings (not categories of every value).
    For transaction sources use ``fraud_dask.data.load_transactions``, which also validates.

    Parameters
    ----------
    path : str
        Dataset folder, file or glob.
    columns : sequence of str, optional
        Projection pushed down to Parquet.
    filters : list of (column, op, value), optional
        pyarrow filters pushed down to Parquet (row groups and hive folders).
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    dask.dataframe.DataFrame
    """
    df = dd.read_parquet(
        path,
        columns=list(columns) if columns is not None else None,
        filters=filters,
        storage_options=storage_options,
        dataset={"partitioning": "hive"},
    )
    _, root, files = list_files(path, "parquet", storage_options)
    hive = set(hive_values(files[0][len(root) + 1 :]))
    cats = [c for c, t in df.dtypes.items() if c in hive and isinstance(t, pd.CategoricalDtype)]
    return df.astype({c: "str" for c in cats}) if cats else df
