"""Open a source by its config and turn it into the canonical, checked, lazy transaction frame.

Every row-level check that needs only its own partition (null keys, amounts, timestamps, time
zones, labels) runs lazily inside the read. Duplicate ``tx_id`` detection (``data.dedupe``, on
by default) needs the whole read: one extra pass over the ``tx_id`` column alone finds whether
any value repeats; only when one does, a pass over the checked rows finds the first valid
occurrence of each (in file order, then row order), which is kept, and later ones are
quarantined.

- :func:`read_transactions` (what every task uses): a :class:`Frames` holding the kept rows, the
  quarantined rows and lazy counts. Compute :meth:`Frames.lazy_counts` together with the task's
  own output (one ``dask.compute``, ``client.persist`` or ``write_datasets(extra=...)``), then
  :meth:`Frames.counts` turns them into a checked :class:`RowCounts` (rows in = kept +
  quarantined, by reason) for ``metrics.json`` and the log.
- :func:`load_transactions`: only the kept rows, for callers that report nothing.
- :func:`open_source`: the opened :class:`Source` (files, footers, the planned read).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from dask.dataframe.utils import clear_known_categories

from fraud_dask.data import io
from fraud_dask.data.pan import hasher_from_conf
from fraud_dask.data.schema import ID_COLUMNS, POINT_OF_SALE, REASONS, REQUIRED, STRING_DTYPE
from fraud_dask.data.sources import PanAction, SourceConf, as_source_conf
from fraud_dask.data.validate import (
    Plan,
    _cast_id,
    _may_exceed,
    kept_rows,
    prepare_partition,
    quarantined_rows,
    text_lengths,
)
from fraud_dask.errors import InputTypeError, UserError

log = logging.getLogger(__name__)

_VALIDATED = ("tx_id", "ts", "card_id", "amount", *POINT_OF_SALE, "is_fraud", "label_ts")
_KINDS: dict[str, tuple[Any, str]] = {
    "ts": (
        lambda t: (
            pa.types.is_timestamp(t)
            or pa.types.is_date(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
        ),
        "timestamp, date, number or string",
    ),
    "amount": (
        lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
        "number or string",
    ),
    "is_fraud": (
        lambda t: pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t),
        "integer, boolean or string",
    ),
    "id": (pa.types.is_integer, "integer or string"),
}


def _kind(t: pa.DataType) -> str:
    """The family of a (decoded) Arrow type, for fixing a passthrough column's dtype."""
    if _is_string(t):
        return "text"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t):
        return "ts_utc" if t.tz is not None else "ts_naive"
    return "other"


def _is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclasses.dataclass(frozen=True)
class RowCounts:
    """What one read did with its rows: rows in = rows kept + rows quarantined, by reason.

    Counts of disjoint reads add up (``a + b``).
    """

    rows_in: int
    """Rows read (after the date range)."""
    rows_kept: int
    """Rows that passed every check (counted on the kept frame itself)."""
    by_reason: dict[str, int]
    """Quarantined rows per reason: every reason of ``schema.REASONS``, zeros included."""
    dedupe: bool
    """Whether repeated ``tx_id`` were looked for."""

    @property
    def rows_quarantined(self) -> int:
        """Rows sent to quarantine, all reasons together."""
        return sum(self.by_reason.values())

    def __add__(self, other: RowCounts) -> RowCounts:
        return RowCounts(
            rows_in=self.rows_in + other.rows_in,
            rows_kept=self.rows_kept + other.rows_kept,
            by_reason={r: self.by_reason[r] + other.by_reason[r] for r in self.by_reason},
            dedupe=self.dedupe and other.dedupe,
        )

    def check(self, what: str) -> RowCounts:
        """Return self, or raise ``RuntimeError`` (naming ``what``) when rows went missing."""
        if self.rows_in != self.rows_kept + self.rows_quarantined:
            raise RuntimeError(
                f"{what}: lost or invented rows: rows in {self.rows_in} != kept "
                f"{self.rows_kept} + quarantined {self.rows_quarantined} {self.by_reason}"
            )
        return self

    def as_dict(self) -> dict[str, Any]:
        """``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``dedupe``."""
        return {
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_quarantined": self.rows_quarantined,
            "by_reason": dict(self.by_reason),
            "dedupe": self.dedupe,
        }

    def describe(self) -> str:
        """One line for the log: ``N rows in = K kept + Q quarantined {reason: n, ...}``."""
        reasons = {r: n for r, n in self.by_reason.items() if n}
        return (
            f"{self.rows_in} rows in = {self.rows_kept} kept + {self.rows_quarantined} "
            f"quarantined {reasons}"
        )


@dataclasses.dataclass
class Frames:
    """The lazy results of reading a source: kept rows, quarantined rows, counts.

    Example::

        read = read_transactions(cfg.data)
        out = build_features(read.kept, cfg.features)
        frame, *lazy = client.persist([out, *read.lazy_counts()])  # one pass over the source
        counts = read.counts(dask.compute(*lazy))  # RowCounts, checked
    """

    kept: dd.DataFrame
    """Canonical good rows."""
    quarantine: dd.DataFrame
    """Bad rows with ``reason``, ``detail``, ``source_file`` and ``source_row``."""
    rows_in: Any
    """Lazy scalar: rows read (after the date range)."""
    by_reason: Any
    """Lazy series: quarantined rows per reason (reasons with no row absent)."""
    rows_kept: Any = None
    """Lazy scalar: rows of ``kept``, counted on the kept partitions themselves."""
    dedupe: bool = False
    """Whether repeated ``tx_id`` were quarantined."""
    source: str = ""
    """The source's name and path, for messages."""

    def lazy_counts(self) -> tuple[Any, Any, Any]:
        """``(rows_in, rows_kept, by_reason)``, lazy.

        Compute them in the same ``dask.compute`` (or ``client.persist``, or
        ``write_datasets(..., extra=...)``) as the task's output: the read is then shared and
        the counts cost no extra pass over the source.
        """
        return (self.rows_in, self.rows_kept, self.by_reason)

    def counts(self, values: Sequence[Any] | None = None) -> RowCounts:
        """The checked counts of this read.

        Parameters
        ----------
        values : sequence, optional
            The computed :meth:`lazy_counts`, in order. None: compute them now (a pass over
            the source of its own; prefer computing them with the task's output).

        Returns
        -------
        RowCounts

        Raises
        ------
        RuntimeError
            Rows in differ from rows kept + rows quarantined.
        """
        if values is None:
            values = dask.compute(*self.lazy_counts())
        rows_in, rows_kept, by_reason = values
        counts = RowCounts(
            rows_in=int(rows_in),
            rows_kept=int(rows_kept),
            by_reason={r: int(by_reason.get(r, 0)) for r in REASONS},
            dedupe=self.dedupe,
        )
        return counts.check(f"reading {self.source}")


def total_counts(reads: Sequence[Frames], values: Sequence[Any]) -> RowCounts:
    """The checked counts of several disjoint reads, summed.

    Parameters
    ----------
    reads : sequence of Frames
        The reads, e.g. a scoring period's history and the older rows before it.
    values : sequence
        Their computed :meth:`Frames.lazy_counts`, concatenated in the order of ``reads``.
    """
    if not reads:
        raise ValueError("total_counts: no reads")
    width = len(reads[0].lazy_counts())
    if len(values) != width * len(reads):
        raise ValueError(f"total_counts: got {len(values)} values for {len(reads)} reads")
    parts = [r.counts(values[i * width : (i + 1) * width]) for i, r in enumerate(reads)]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


class Source:
    """An opened transaction source: files listed, footers checked, the read planned.

    Use :func:`open_source` to build one.
    """

    def __init__(self, conf: SourceConf, start: Any = None, end: Any = None) -> None:
        self.conf = conf
        self.start = _timestamp(start if start is not None else conf.start)
        self.end = _timestamp(end if end is not None else conf.end)
        fmt = conf.format.value
        self.fs, self.root, files = io.list_files(conf.path, fmt, conf.storage_options)
        files = self._prune(files)
        self.infos = io.inspect_files(self.fs, self.root, files, fmt)
        self.files = tuple(i.path for i in self.infos)
        self.mapping = self._mapping()
        self.id_kinds = self._check_types()
        self.extra_dtypes = self._extra_dtypes()
        if all(i.num_rows == 0 for i in self.infos):
            raise UserError(f"empty dataset: the files under {conf.path} hold no rows")
        self.filters = self._filters()

    # -- planning ---------------------------------------------------------------------------
    def _prune(self, files: list[str]) -> list[str]:
        """Skip hive date folders outside [start, end) (one day of slack either side)."""
        key = self.conf.partition_column
        if self.start is None and self.end is None:
            return files
        lo = (self.start - pd.Timedelta(days=1)).strftime("%Y-%m-%d") if self.start else None
        hi = (self.end + pd.Timedelta(days=1)).strftime("%Y-%m-%d") if self.end else None
        kept = []
        for f in files:
            day = io.hive_values(f[len(self.root) + 1 :]).get(key)
            if day is None or ((lo is None or day >= lo) and (hi is None or day <= hi)):
                kept.append(f)
        if not kept:
            raise UserError(f"no files of {self.conf.path} fall in [{self.start}, {self.end})")
        return kept

    def _mapping(self) -> dict[str, str]:
        conf = self.conf
        available: dict[str, None] = {}
        for info in self.infos:
            available.update(dict.fromkeys(info.schema.names))
            available.update(dict.fromkeys(info.hive))
        hive_keys = {k for info in self.infos for k in info.hive}
        if conf.columns:
            mapping = {raw: out for raw, out in conf.columns.items()}
            if conf.keep_unmapped:
                taken = set(mapping.values())
                for raw in available:
                    if raw not in mapping and raw not in taken and raw not in hive_keys:
                        mapping[raw] = raw
        else:
            mapping = {raw: raw for raw in available if raw not in hive_keys}
        outs = set(mapping.values())
        missing = [c for c in REQUIRED if c not in outs]
        if not outs & set(POINT_OF_SALE):
            missing.append(" or ".join(POINT_OF_SALE))
        if missing:
            raise UserError(
                f"{conf.path}: no column maps to required {missing}; "
                f"data.columns={dict(conf.columns)}, the files have {list(available)}"
            )
        required_raw = {raw for raw, out in mapping.items() if out in REQUIRED}
        for info in self.infos:
            if info.num_rows == 0:  # an empty file may come from a writer without the schema
                continue
            names = set(info.schema.names) | set(info.hive)
            for raw in sorted(required_raw - names):
                raise UserError(
                    f"{info.path}: missing required column {raw!r} (mapped to "
                    f"{mapping[raw]!r}); the file has {sorted(names)}"
                )
        for raw in [r for r in mapping if r not in available]:
            log.info("%s: mapped column %r is in no file; skipped", conf.path, raw)
            del mapping[raw]
        if not any(raw in available for raw, out in mapping.items() if out in POINT_OF_SALE):
            raise UserError(f"{conf.path}: needs a terminal_id or merchant_id column")
        return mapping

    def _check_types(self) -> dict[str, str]:
        kinds: dict[str, str] = {}
        for raw, out in self.mapping.items():
            rule = "id" if out in ID_COLUMNS else out
            for info in self.infos:
                if raw not in info.schema.names or info.num_rows == 0:
                    continue
                t = info.schema.field(raw).type
                if pa.types.is_null(t):  # all values null: any type will do
                    continue
                if out in ID_COLUMNS and _is_string(t):
                    kinds[out] = "str"
                numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
                if out in ("ts", "label_ts") and numeric and self.conf.timestamp.unit is None:
                    raise InputTypeError(
                        f"{info.path}: column {raw!r} ({out}) holds numbers ({t}); set "
                        "data.timestamp.unit (s, ms, us or ns)"
                    )
                if rule in _KINDS and not (_is_string(t) or _KINDS[rule][0](t)):
                    raise InputTypeError(
                        f"{info.path}: column {raw!r} ({out}) has type {t}, "
                        f"expected {_KINDS[rule][1]}"
                    )
            if out in ID_COLUMNS:
                kinds.setdefault(out, "int")
        return kinds

    def _extra_dtypes(self) -> dict[str, Any]:
        """The one dtype of each passthrough column in every partition, from the footers.

        Each file's Arrow type is mapped to a kind; the kinds of all files that hold rows give
        the column's dtype: integers (``Int64`` where a file lacks the column or its statistics
        admit nulls), floats, booleans, timestamps (microseconds; UTC when zoned), a category
        of strings where every file dictionary-encodes it, and text otherwise (also for mixed
        or other kinds, which all print). A column null in every file is text (all null).
        """
        out: dict[str, Any] = {}
        for raw, name in self.mapping.items():
            if name in _VALIDATED or name == "client_id":
                continue
            kinds: dict[str, str] = {}  # kind -> first file of that kind
            nullable = plain_text = False
            for info in self.infos:
                if info.num_rows == 0:
                    continue
                if raw not in info.schema.names:
                    nullable = True
                    if raw in info.hive:
                        kinds.setdefault("text", info.path)
                        plain_text = True
                    continue
                t = info.schema.field(raw).type
                if info.nullable is None or raw in info.nullable:
                    nullable = True
                if pa.types.is_null(t):
                    continue
                if pa.types.is_dictionary(t):
                    t = t.value_type
                elif _is_string(t):
                    plain_text = True
                kinds.setdefault(_kind(t), info.path)
            found = set(kinds)
            if not found or found <= {"text", "other"}:
                out[name] = "category" if found == {"text"} and not plain_text else STRING_DTYPE
            elif found == {"int"}:
                out[name] = "Int64" if nullable else np.dtype("int64")
            elif found <= {"int", "float"}:
                out[name] = np.dtype("float64")
            elif found == {"bool"}:
                out[name] = "boolean" if nullable else np.dtype("bool")
            elif found == {"ts_utc"}:
                out[name] = pd.DatetimeTZDtype(unit="us", tz="UTC")
            elif found == {"ts_naive"}:
                out[name] = np.dtype("datetime64[us]")
            else:
                log.warning(
                    "%s: column %r has different types across files (%s); read as text",
                    self.conf.path,
                    raw,
                    ", ".join(f"{k} in {p}" for k, p in kinds.items()),
                )
                out[name] = STRING_DTYPE
        return out

    def _filters(self) -> list[tuple[str, str, Any]] | None:
        """Pushed-down ts bounds, widened by a day: exact bounds are applied after parsing."""
        raw_ts = next(raw for raw, out in self.mapping.items() if out == "ts")
        field = next((i.schema.field(raw_ts) for i in self.infos if raw_ts in i.schema.names), None)
        if field is None or not pa.types.is_timestamp(field.type):
            return None
        out = []
        for op, bound, shift in ((">=", self.start, -1), ("<", self.end, 1)):
            if bound is None:
                continue
            value = bound + pd.Timedelta(days=shift)
            if field.type.tz is None:
                value = value.tz_convert(self.conf.timestamp.timezone).tz_localize(None)
            out.append((raw_ts, op, value))
        return out or None

    def plan(self, duplicates: pd.Series | None = None) -> Plan:
        """The per-partition plan (mapping, parsing rules, hasher, optional duplicate table)."""
        conf = self.conf
        ts_conf = conf.timestamp
        until = ts_conf.valid_until
        valid_until = (
            _timestamp(until)
            if until
            else pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=1)
        )
        pii = {conf.columns.get(c, c) for c in conf.pii_columns}
        scan = tuple(c for c in ("card_id", *sorted(pii)) if c in self.mapping.values())
        return Plan(
            mapping=self.mapping,
            id_kinds=self.id_kinds,
            ts_format=ts_conf.format,
            ts_unit=ts_conf.unit,
            timezone=ts_conf.timezone,
            offsets=ts_conf.offsets,
            valid_from=_timestamp(ts_conf.valid_from),
            valid_until=valid_until,
            label_delay=pd.Timedelta(days=conf.label_delay_days),
            client_id=conf.client_id,
            scan_columns=scan,
            hasher=hasher_from_conf(conf.pan),
            start=self.start,
            end=self.end,
            duplicates=duplicates,
            files=self.files,
            extra_dtypes=self.extra_dtypes,
            max_value_length=conf.max_value_length,
            refuse_unlisted=conf.pan.unlisted is PanAction.refuse,
        )

    def _empty(self) -> pd.DataFrame:
        fields: dict[str, pa.DataType] = {}
        # types of files that hold rows first: an empty file is never read as a partition
        for info in sorted(self.infos, key=lambda i: i.num_rows == 0):
            for f in info.schema:  # and a type over the null type of an all-null column
                if f.name not in fields or pa.types.is_null(fields[f.name]):
                    fields[f.name] = f.type
        cols = {}
        for raw in self.mapping:
            if raw in fields:
                cols[raw] = pa.array([], type=fields[raw]).to_pandas()
            else:
                cols[raw] = pd.Series([], dtype=STRING_DTYPE)
        return pd.DataFrame(cols)

    # -- frames -----------------------------------------------------------------------------
    def prepared(self, duplicates: pd.Series | None = None) -> dd.DataFrame:
        """Lazy frame of every row read, canonical, with ``reason``/``detail``/``_pos``."""
        plan = self.plan(duplicates)
        meta = prepare_partition(self._empty(), plan, "meta", 0)
        process = functools.partial(_process, plan=plan, meta=meta)
        frame = io.read_files(
            self.infos,
            fs=self.fs,
            fmt=self.conf.format.value,
            columns=list(self.mapping),
            filters=self.filters,
            csv_options=dict(self.conf.csv_options),
            process=process,
            meta=clear_known_categories(meta),
            rows_per_partition=self.conf.rows_per_partition,
        )
        return frame

    def repeated_ids(self) -> int:
        """How many ``tx_id`` values occur more than once among the rows read (0: none).

        Counted on 64-bit hashes of the values: 0 proves that no value repeats; a positive
        count is exact but for a hash collision (about 1 in 10^12 pairs of distinct ids), which
        could only add to it.

        A cheap pass that reads the ``tx_id`` column alone and casts it as the full read does,
        without the other columns' checks (oversized values are left out, as the full read
        blanks them): the rows it counts are a superset of the valid rows, so 0 here proves that
        no valid row repeats a ``tx_id``.
        """
        raw = next(r for r, c in self.mapping.items() if c == "tx_id")
        kind = self.id_kinds.get("tx_id", "int")
        meta = pd.DataFrame(
            {"tx_id": pd.Series([], dtype=STRING_DTYPE if kind == "str" else "Int64")}
        )
        process = functools.partial(
            _read_ids, raw=raw, kind=kind, limit=self.conf.max_value_length, meta=meta
        )
        ids = io.read_files(
            self.infos,
            fs=self.fs,
            fmt=self.conf.format.value,
            columns=[raw],
            filters=self.filters,
            csv_options=dict(self.conf.csv_options),
            process=process,
            meta=meta,
            label="read-tx-ids",
            rows_per_partition=self.conf.rows_per_partition,
        )
        # each partition's ids as 64-bit hashes, cut into buckets by their top bits; each
        # bucket, gathered from every partition, counts its repeated values (numpy arrays
        # between the workers: no groupby, no shuffle of a frame)
        parts = ids.to_delayed()
        bits = max(0, min(6, int(np.ceil(np.log2(max(len(parts), 1))))))
        pieces = [
            dask.delayed(_hash_buckets, nout=2**bits, pure=True)(part, bits) for part in parts
        ]
        counts = [
            dask.delayed(_repeats_in_bucket, pure=True)([p[b] for p in pieces])
            for b in range(2**bits)
        ]
        return int(sum(dask.compute(*counts)))

    def duplicates(self, prepared: dd.DataFrame) -> pd.Series:
        """Compute ``tx_id`` -> position of its first valid row, for repeated ``tx_id``.

        First :meth:`repeated_ids` (the ``tx_id`` column alone): when no value repeats, the
        answer is empty without reading the rest. Otherwise one pass over the checked rows (a
        shuffle of ``tx_id`` and position only).
        """
        if self.repeated_ids() == 0:
            index = prepared._meta["tx_id"].iloc[:0]
            return pd.Series([], index=pd.Index(index, name="tx_id"), dtype="int64", name="min")
        meta = prepared._meta[["tx_id", "_pos"]]
        valid = prepared.map_partitions(_valid_ids, meta=meta)
        agg = valid.groupby("tx_id")["_pos"].agg(
            ["min", "count"], split_out=True, shuffle_method=_shuffle_method()
        )
        table = agg[agg["count"] > 1].compute()
        return table["min"].astype("int64")

    def frames(self, *, dedupe: bool | None = None, columns: Sequence[str] | None = None) -> Frames:
        """Kept and quarantined rows and their counts, all lazy (``dedupe`` computes one pass).

        Parameters
        ----------
        dedupe : bool, optional
            Quarantine repeated ``tx_id`` among the rows read (one extra pass, computed now).
            None: ``data.dedupe`` (default True).
        columns : sequence of str, optional
            Project the kept frame to these columns (all are still read and checked).
        """
        dedupe = self.conf.dedupe if dedupe is None else bool(dedupe)
        prepared = self.prepared()
        if dedupe:
            prepared = self.prepared(self.duplicates(prepared))
        kept_meta = kept_rows(prepared._meta)
        kept = prepared.map_partitions(kept_rows, meta=kept_meta)
        rows_kept = kept.map_partitions(len, meta=(None, "int64")).sum()
        if columns is not None:
            unknown = [c for c in columns if c not in kept.columns]
            if unknown:
                raise KeyError(f"unknown column(s) {unknown}; available: {list(kept.columns)}")
            kept = kept[list(columns)]
        q = functools.partial(quarantined_rows, files=self.files)
        quarantine = prepared.map_partitions(q, meta=q(prepared._meta))
        rows_in = prepared.map_partitions(len, meta=(None, "int64")).sum()
        by_reason = prepared["reason"].value_counts()
        return Frames(
            kept=kept,
            quarantine=quarantine,
            rows_in=rows_in,
            by_reason=by_reason,
            rows_kept=rows_kept,
            dedupe=dedupe,
            source=f"{self.conf.name} ({self.conf.path})",
        )

    def rows_in_files(self) -> int | None:
        """Rows in the selected files by their footers (Parquet only; None for CSV)."""
        if any(i.num_rows is None for i in self.infos):
            return None
        return sum(int(i.num_rows or 0) for i in self.infos)


def _shuffle_method() -> str:
    """P2P under a distributed client; the task shuffle under a local scheduler (P2P needs
    workers), so the data layer also works with ``dask.config.set(scheduler="sync")``."""
    import dask

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return "tasks"
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return "tasks"
    return "p2p"


def _read_ids(
    pdf: pd.DataFrame,
    source: str,
    index: Any,
    *,
    raw: str,
    kind: str,
    limit: int,
    meta: pd.DataFrame,
) -> pd.DataFrame:
    """One partition's non-null ``tx_id`` values, cast as :func:`prepare_partition` casts them.

    Values longer than ``limit`` characters are left out (the full read quarantines them before
    any cast), so a cast error here is the one the full read raises.
    """
    s = pdf[raw]
    lengths = text_lengths(s) if _may_exceed(s, limit) else None
    if lengths is not None:
        s = s.mask(lengths > limit)
    ids = _cast_id(s, kind, f"{source}: column {raw!r} (tx_id)")
    return pd.DataFrame({"tx_id": ids[ids.notna()].astype(meta["tx_id"].dtype)})


def _hash_buckets(pdf: pd.DataFrame, bits: int) -> tuple[np.ndarray, ...]:
    """The 64-bit hashes of one partition's ``tx_id``, split into ``2**bits`` buckets by their
    top bits (bucket ``b`` holds the hashes whose top bits are ``b``)."""
    h = pd.util.hash_pandas_object(pdf["tx_id"], index=False).to_numpy()
    if bits == 0:
        return (h,)
    top = (h >> np.uint64(64 - bits)).astype(np.uint8)
    order = np.argsort(top, kind="stable")  # a radix sort of small integers
    edges = np.searchsorted(top[order], np.arange(1, 2**bits, dtype=np.uint8))
    return tuple(np.split(h[order], edges))


def _repeats_in_bucket(arrays: list[np.ndarray]) -> int:
    """How many distinct values occur more than once in the concatenated arrays."""
    h = np.sort(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.uint64)
    if len(h) < 2:
        return 0
    same = h[1:] == h[:-1]
    # a value repeated k times gives a run of k - 1 ``same``; count the runs
    return int(np.count_nonzero(same[1:] & ~same[:-1]) + int(same[0]))


def _valid_ids(pdf: pd.DataFrame) -> pd.DataFrame:
    return pdf.loc[pdf["reason"].isna(), ["tx_id", "_pos"]]


def _process(pdf: pd.DataFrame, source: str, index: Any, *, plan: Plan, meta: pd.DataFrame):
    out = prepare_partition(pdf, plan, source, index)
    for col, dtype in meta.dtypes.items():
        if out[col].dtype != dtype and not isinstance(dtype, pd.CategoricalDtype):
            try:
                out[col] = out[col].astype(dtype)
            except (TypeError, ValueError):
                raise InputTypeError(
                    f"{source}: column {col!r} has type {out[col].dtype}, expected {dtype} "
                    "(as in the first file)"
                ) from None
    return out


def open_source(
    data_cfg: SourceConf | Mapping[str, Any], *, start: Any = None, end: Any = None
) -> Source:
    """List, inspect and check a source's files; nothing is read beyond footers.

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The ``data`` config.
    start, end : str or Timestamp, optional
        Keep rows with start <= ts < end (UTC when naive); override ``data.start``/``data.end``.

    Returns
    -------
    Source

    Raises
    ------
    FileNotFoundError
        No data file at ``data.path``.
    ValueError
        Corrupt file, missing required column (file and column named), or empty dataset.
    TypeError
        A column's stored type cannot be cast to its canonical type.
    """
    return Source(as_source_conf(data_cfg), start, end)


def read_transactions(
    data_cfg: SourceConf | Mapping[str, Any],
    *,
    columns: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    dedupe: bool | None = None,
) -> Frames:
    """Read a source: its canonical, checked, PAN-tokenised good rows plus lazy counts.

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The ``data`` config (``cfg.data``).
    columns : sequence of str, optional
        Canonical columns of the kept frame (all are still read where checks need them).
    start, end : str or Timestamp, optional
        Keep rows with start <= ts < end; pushed down to Parquet (hive ``day`` folders outside
        the range are not opened; row groups are filtered by statistics).
    dedupe : bool, optional
        Quarantine repeated ``tx_id`` among the rows read, keeping the first valid occurrence.
        It costs one pass over the rows read (``tx_id`` only), computed here. None (the
        default): ``data.dedupe``, which is True unless the config turns it off.

    Returns
    -------
    Frames
        ``kept`` (see :func:`load_transactions`), ``quarantine``, and the lazy counts:
        compute :meth:`Frames.lazy_counts` with the task's output and pass them to
        :meth:`Frames.counts` for a checked :class:`RowCounts`.
    """
    return open_source(data_cfg, start=start, end=end).frames(dedupe=dedupe, columns=columns)


def load_transactions(
    data_cfg: SourceConf | Mapping[str, Any],
    *,
    columns: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    dedupe: bool | None = None,
) -> dd.DataFrame:
    """The canonical, checked, PAN-tokenised lazy frame of a source's good rows.

    The kept frame of :func:`read_transactions` (same parameters), for callers that report no
    counts; tasks use :func:`read_transactions` so that every run says what it read.

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The ``data`` config (``cfg.data``).
    columns : sequence of str, optional
        Canonical columns to return (all are still read where checks need them).
    start, end : str or Timestamp, optional
        Keep rows with start <= ts < end (pushed down to Parquet).
    dedupe : bool, optional
        Drop repeated ``tx_id`` among the rows read (one extra pass, computed here). None:
        ``data.dedupe`` (default True).

    Returns
    -------
    dask.dataframe.DataFrame
        Canonical columns (``tx_id``, ``ts`` UTC ns, ``card_id``, ``amount`` float64,
        ``terminal_id``/``merchant_id``, ``client_id`` category, ``is_fraud`` int8, ``label_ts``),
        then passthrough columns (e.g. ``scenario``). Quarantined rows are left out: use
        :func:`read_transactions` to see them and their counts.
    """
    return read_transactions(data_cfg, columns=columns, start=start, end=end, dedupe=dedupe).kept
