"""Turn one partition of raw rows into canonical rows, each with a quarantine reason or none.

:func:`prepare_partition` is a pure pandas function of one partition (one file), applied by the
reader in ``fraud_dask.data.io``: rename by the source's mapping, cast, parse timestamps to UTC,
hash card numbers, then check every row. A row that fails gets the first failing
:class:`~fraud_dask.data.schema.Reason` in ``reason`` and the offending raw value in ``detail``.
Problems that concern a whole column (a value that cannot be cast to its type) raise at once,
naming the file and the column: they are structural, not row-level.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_dask.data.pan import PAN_CANDIDATE, PanHasher, is_pan
from fraud_dask.data.schema import (
    ID_COLUMNS,
    MISSING_ID,
    POINT_OF_SALE,
    REQUIRED,
    STRING_DTYPE,
    TS_DTYPE,
    Reason,
)
from fraud_dask.data.sources import TzPolicy
from fraud_dask.errors import UserError

POS_SHIFT = 40
"""``_pos`` = file index << POS_SHIFT | row number: a global, partition-independent row order."""
_OFFSET_RE = r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)\s*$"
_DETAIL_CHARS = 200
"""A quarantined row's ``detail`` (the offending raw value) is cut to this many characters."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a task needs to canonicalise a partition (picklable, no secrets in repr)."""

    mapping: dict[str, str]
    """Raw name -> output name, for every raw column that is kept."""
    id_kinds: dict[str, str]
    """Output ID column -> "int" or "str", fixed across files."""
    ts_format: str | None
    ts_unit: str | None
    timezone: str
    offsets: TzPolicy
    valid_from: pd.Timestamp
    valid_until: pd.Timestamp
    label_delay: pd.Timedelta
    client_id: str
    scan_columns: tuple[str, ...]
    """Columns named as holding card numbers (``card_id``, ``pii_columns``): always tokenized.
    Every other string column is scanned too (see ``refuse_unlisted``)."""
    hasher: PanHasher
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    duplicates: pd.Series | None = None
    """tx_id -> ``_pos`` of its first valid occurrence, for tx_ids seen more than once."""
    files: tuple[str, ...] = ()
    """The source's sorted file list (``_pos`` >> POS_SHIFT indexes it)."""
    extra_dtypes: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Passthrough output column -> its dtype in every partition (``"category"``: a category
    of strings), fixed across files by the reader."""
    max_value_length: int = 1024
    """Longer string values send their row to quarantine as ``oversized_value``."""
    refuse_unlisted: bool = False
    """Card numbers in a string column not in ``scan_columns`` raise instead of being hashed."""


def parse_timestamps(raw: pd.Series, plan: Plan) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse a raw timestamp column to UTC.

    Parameters
    ----------
    raw : pandas.Series
        Datetimes (naive or aware), epoch numbers, dates or strings.
    plan : Plan
        Format, unit, zone of naive values and the offset policy.

    Returns
    -------
    (pandas.Series, numpy.ndarray, numpy.ndarray)
        Parsed values (``datetime64[*, UTC]``, NaT where null or unparseable), the mask of
        non-null values that could not be parsed, and the mask of values breaking the offset
        policy (string values only).
    """
    n = len(raw)
    mixed = np.zeros(n, dtype=bool)
    dtype = raw.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        ts = raw.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        ts = raw.dt.tz_localize(plan.timezone, ambiguous="NaT", nonexistent="NaT")
        ts = ts.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        if plan.ts_unit is None:
            raise ValueError("holds numbers; set data.timestamp.unit (s, ms, us or ns)")
        ts = pd.to_datetime(raw, unit=plan.ts_unit, utc=True, errors="coerce")
    else:
        text = raw.astype(STRING_DTYPE)
        fmt = plan.ts_format or "ISO8601"
        has_offset = text.str.contains(_OFFSET_RE, regex=True, na=False).to_numpy(dtype=bool)
        present = text.notna().to_numpy()
        if plan.offsets is TzPolicy.naive:
            mixed = has_offset & present
        elif plan.offsets is TzPolicy.aware:
            mixed = ~has_offset & present
        aware = pd.to_datetime(text.where(has_offset), format=fmt, utc=True, errors="coerce")
        naive = pd.to_datetime(text.where(~has_offset), format=fmt, errors="coerce")
        if isinstance(naive.dtype, pd.DatetimeTZDtype):  # a format with %z parses offsets
            naive = naive.dt.tz_convert("UTC")
        else:
            naive = naive.dt.tz_localize(plan.timezone, ambiguous="NaT", nonexistent="NaT")
            naive = naive.dt.tz_convert("UTC")
        unit = np.datetime_data(naive.dtype.base)[0]
        ts = naive.where(~has_offset, aware.astype(f"datetime64[{unit}, UTC]"))
    bad = raw.notna().to_numpy() & ts.isna().to_numpy()
    return ts, bad, mixed


def _cast_id(s: pd.Series, kind: str, where: str) -> pd.Series:
    if kind == "str":
        if pd.api.types.is_float_dtype(s.dtype):  # integers that pyarrow widened for nulls
            s = s.astype("Int64")
        return s.astype(STRING_DTYPE)
    try:
        return s.astype("Int64")
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: cannot cast to int64 ({exc.__class__.__name__})") from None


def _cast_amount(s: pd.Series, where: str) -> tuple[pd.Series, np.ndarray]:
    """Amounts as float64, and the mask of text values that are not numbers (NaN in the output)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise UserError(f"{where}: got booleans, expected numbers")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64"), np.zeros(len(s), dtype=bool)
    text = s.astype(STRING_DTYPE).str.strip()
    out = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = text.notna() & out.isna() & ~text.str.lower().isin(["nan", "inf", "-inf", "infinity"])
    # a card number in the amount column is not an amount (and must not be kept as one)
    candidate = text.str.fullmatch(PAN_CANDIDATE, na=False)
    if candidate.any():
        pan = candidate & text.map(is_pan, na_action="ignore").fillna(False).astype(bool)
        bad |= pan
        out = out.mask(pan)
    return out, bad.to_numpy(dtype=bool)


def _is_text(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype)


def text_lengths(s: pd.Series) -> np.ndarray | None:
    """Characters in each value of a text or categorical column (0 for nulls); None otherwise.

    Parameters
    ----------
    s : pandas.Series
        A raw column.

    Returns
    -------
    numpy.ndarray of int64, or None
        None for columns that hold no text (numbers, timestamps, booleans).
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        lengths = text_lengths(pd.Series(s.cat.categories))
        if lengths is None or not len(lengths):
            return None if lengths is None else np.zeros(len(s), dtype=np.int64)
        codes = s.cat.codes.to_numpy()
        return np.where(codes >= 0, lengths[codes], 0)
    if not _is_text(s.dtype):
        return None
    text = s if isinstance(s.dtype, pd.StringDtype) else s.astype(STRING_DTYPE)
    return text.str.len().fillna(0).to_numpy(dtype=np.int64)


def _scan(s: pd.Series, col: str, plan: Plan, where: str) -> pd.Series:
    """Tokenize the card numbers of a listed column, or of any text or categorical column."""
    if col in plan.scan_columns:
        return plan.hasher.scrub(s, where)[0]
    if not (_is_text(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype)):
        return s
    out, found = plan.hasher.scrub(s, where)
    if found and plan.refuse_unlisted:
        raise UserError(
            f"{where}: holds card numbers ({found} value(s)) but is not named in "
            "data.pii_columns (data.pan.unlisted=refuse); list it there to tokenize them, or "
            "leave the column out of data.columns"
        )
    return out


def _may_exceed(s: pd.Series, limit: int) -> bool:
    """False when no value of ``s`` can be longer than ``limit`` characters (cheap test)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        # the longest value in bytes bounds its length in characters: one Arrow kernel
        longest = pc.max(pc.binary_length(pa.array(s))).as_py()
        return longest is not None and longest > limit
    if isinstance(s.dtype, pd.CategoricalDtype):
        return len(s.cat.categories) > 0
    return _is_text(s.dtype)


def _cast_extra(s: pd.Series, dtype: Any, where: str) -> pd.Series:
    """A passthrough column cast to the dtype the reader fixed for it across files."""
    try:
        if dtype == "category":
            if isinstance(s.dtype, pd.CategoricalDtype):
                if isinstance(s.cat.categories.dtype, pd.StringDtype):
                    return s
                names = _category_names(s)
                if names is not None:
                    return s.cat.rename_categories(names)
            return s.astype(STRING_DTYPE).astype("category")
        if isinstance(dtype, pd.StringDtype):
            if pd.api.types.is_float_dtype(s.dtype):
                # integers that pyarrow widened for nulls print without ".0"
                values = s.dropna()
                if ((values % 1 == 0) & (values.abs() < 2**53)).all():
                    s = s.astype("Int64")
            return s.astype(STRING_DTYPE)
        if isinstance(dtype, pd.DatetimeTZDtype) and isinstance(s.dtype, pd.DatetimeTZDtype):
            return s.dt.tz_convert("UTC").astype(dtype)
        return s.astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserError(
            f"{where}: got {s.dtype}, cannot cast to {dtype} as in the other files "
            f"({exc.__class__.__name__})"
        ) from None


def _category_names(s: pd.Series) -> pd.Index | None:
    """A categorical column's categories as text, when they stay distinct (else None)."""
    if not isinstance(s.dtype, pd.CategoricalDtype):
        return None
    names = s.cat.categories.astype(STRING_DTYPE)
    return names if names.is_unique else None


def _text_column(values: np.ndarray, index: pd.Index) -> pd.Series:
    """An object array of strings and Nones as a string column (all-null ones built directly:
    converting Nones one by one is most of a clean partition's check time)."""
    if pd.isna(values).all():
        nulls = pa.nulls(len(values), pa.large_string())
        return pd.Series(pd.array(nulls, dtype=STRING_DTYPE), index=index)
    return pd.Series(values, index=index, dtype=STRING_DTYPE)


def prepare_partition(pdf: pd.DataFrame, plan: Plan, source: str, index: Any) -> pd.DataFrame:
    """Canonicalise and check one partition.

    Parameters
    ----------
    pdf : pandas.DataFrame
        Raw rows of one file (raw column names).
    plan : Plan
        The source's mapping and parsing rules.
    source : str
        File name, used in error messages.
    index : int or numpy.ndarray
        Index of the file in the source's sorted file list (for ``_pos``), or the file index
        of every row when the partition holds several files (consecutive rows per file).

    Returns
    -------
    pandas.DataFrame
        Output columns (canonical and passthrough), plus ``reason`` and ``detail`` (strings,
        null for a good row) and ``_pos`` (int64). Integer IDs are ``Int64`` and ``is_fraud``
        ``Int8`` here, so that bad rows can hold nulls; kept rows are cast to int64/int8.

    Raises
    ------
    ValueError
        A column cannot be cast to its canonical type (names the file and the column).
    """
    raw_for = {out: raw for raw, out in plan.mapping.items()}
    df = pdf[list(plan.mapping)].rename(columns=plan.mapping)
    n = len(df)
    out: dict[str, Any] = {}
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)

    def where(col: str) -> str:
        return f"{source}: column {raw_for.get(col, col)!r} ({col})"

    flagged = np.zeros(n, dtype=bool)

    def flag(mask: np.ndarray, why: Reason, what: pd.Series | None = None, col: str = "") -> None:
        new = mask & ~flagged
        if not new.any():
            return
        flagged[new] = True
        reason[new] = why.value
        if what is not None:
            text = what[new].astype(STRING_DTYPE).fillna("<null>")
            # a raw value may hold a card number, and is kept short
            text, _ = plan.hasher.scrub(text, where(col or "detail"))
            prefix = f"{col}=" if col else ""
            detail[new] = (prefix + text.str.slice(0, _DETAIL_CHARS)).to_numpy(dtype=object)

    # Oversized values are measured on the raw text and blanked before anything parses, scans
    # or writes them; a blanked key is not a null key.
    oversized = np.zeros(n, dtype=bool)
    sizes = None
    blanked: dict[str, np.ndarray] = {}
    for col in df.columns:
        if not _may_exceed(df[col], plan.max_value_length):
            continue
        lengths = text_lengths(df[col])
        if lengths is None:
            continue
        big = lengths > plan.max_value_length
        if big.any():
            if sizes is None:
                sizes = pd.Series(np.full(n, "", dtype=object), index=df.index)
            first = big & ~oversized
            sizes[first] = [f"{col}=<{k} characters>" for k in lengths[first]]
            oversized |= big
            blanked[col] = big
            df[col] = df[col].mask(big)

    for col in df.columns:
        if col in plan.id_kinds:
            out[col] = _cast_id(df[col], plan.id_kinds[col], where(col))
        elif col == "amount":
            out[col], amount_bad = _cast_amount(df[col], where(col))
        elif col in ("ts", "label_ts", "is_fraud", "client_id"):
            continue
        elif col in plan.extra_dtypes:
            out[col] = _cast_extra(df[col], plan.extra_dtypes[col], where(col))
        else:
            s = df[col]
            out[col] = s.astype(STRING_DTYPE) if s.dtype == object else s
    for col in list(out):
        out[col] = _scan(out[col], col, plan, where(col))

    try:
        ts, ts_bad, mixed = parse_timestamps(df["ts"], plan)
    except ValueError as exc:
        raise UserError(f"{where('ts')}: {exc}") from None
    out["ts"] = ts
    keys = [c for c in ("tx_id", "card_id") if c in out]

    def missing(col: str, values: pd.Series) -> np.ndarray:
        mask = values.isna().to_numpy()
        return mask & ~blanked[col] if col in blanked else mask

    null_key = np.zeros(n, dtype=bool)
    for c in keys:
        null_key |= missing(c, out[c])
    pos_cols = [c for c in POINT_OF_SALE if c in out]
    if pos_cols:
        null_key |= np.logical_and.reduce([missing(c, out[c]) for c in pos_cols])
    null_key |= missing("ts", df["ts"])
    flag(null_key, Reason.null_key)
    if sizes is not None:
        flag(oversized, Reason.oversized_value, sizes)
    flag(ts_bad, Reason.unparseable_timestamp, df["ts"], "ts")

    if "label_ts" in df.columns:
        try:
            label_ts, label_bad, label_mixed = parse_timestamps(df["label_ts"], plan)
        except ValueError as exc:
            raise UserError(f"{where('label_ts')}: {exc}") from None
        flag(label_bad, Reason.unparseable_timestamp, df["label_ts"], "label_ts")
        mixed |= label_mixed
    flag(mixed, Reason.mixed_timezone, df["ts"], "ts")
    low, high = plan.valid_from, plan.valid_until
    out_of_range = ((ts < low) | (ts > high)).to_numpy(dtype=bool)
    flag(out_of_range, Reason.timestamp_out_of_range, df["ts"], "ts")
    # Out-of-range values may not fit nanoseconds: drop them before the cast.
    out["ts"] = ts.where(~out_of_range).astype(TS_DTYPE)
    default_label_ts = out["ts"] + plan.label_delay
    if "label_ts" in df.columns:
        lt = label_ts.where(label_ts.isna() | ((label_ts >= low) & (label_ts <= high)))
        out["label_ts"] = lt.astype(TS_DTYPE).fillna(default_label_ts)
    else:
        out["label_ts"] = default_label_ts

    flag(amount_bad, Reason.unparseable_amount, df["amount"], "amount")
    amount = out["amount"].to_numpy()
    with np.errstate(invalid="ignore"):
        flag(~np.isfinite(amount), Reason.non_finite_amount, out["amount"], "amount")
        flag(amount < 0, Reason.negative_amount, out["amount"], "amount")
    if "is_fraud" in df.columns:
        raw_label = df["is_fraud"]
        if pd.api.types.is_numeric_dtype(raw_label.dtype):
            label = raw_label.astype("float64")
        else:
            label = pd.to_numeric(raw_label.astype(STRING_DTYPE), errors="coerce")
        binary = label.isin([0, 1]).to_numpy()
        flag(~binary, Reason.label_not_binary, raw_label, "is_fraud")
        out["is_fraud"] = label.where(binary).astype("Int8")
    # scanned as a category: each distinct client once
    client_names = _category_names(df["client_id"]) if "client_id" in df.columns else None
    if client_names is not None:
        # a categorical column (a canonical dataset's): its categories as text, codes kept
        raw_client = df["client_id"].cat.rename_categories(client_names)
        if raw_client.isna().any():
            if plan.client_id not in raw_client.cat.categories:
                raw_client = raw_client.cat.add_categories([plan.client_id])
            raw_client = raw_client.fillna(plan.client_id)
        client = raw_client
    elif "client_id" in df.columns:
        client = df["client_id"].astype(STRING_DTYPE).fillna(plan.client_id).astype("category")
    else:  # the source's one client, as a category built directly
        one = pd.Index([plan.client_id], dtype=STRING_DTYPE)
        codes = np.zeros(n, dtype=np.int8)
        client = pd.Series(pd.Categorical.from_codes(codes, categories=one), index=df.index)
    out["client_id"] = _scan(client, "client_id", plan, where("client_id"))

    if np.ndim(index) == 0:
        pos = (np.int64(index) << np.int64(POS_SHIFT)) + np.arange(n, dtype=np.int64)
    else:  # several files in one partition: each row's file index, rows in file order
        files = np.asarray(index, dtype=np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(files)) + 1]
        within = np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))
        pos = (files << np.int64(POS_SHIFT)) + within
    if plan.duplicates is not None and n:
        idx = plan.duplicates.index.get_indexer(out["tx_id"])
        seen = idx >= 0
        first = plan.duplicates.to_numpy()[idx[seen]]
        dup = np.zeros(n, dtype=bool)
        dup[seen] = first != pos[seen]
        if dup.any():
            first_of = np.zeros(n, dtype=np.int64)
            first_of[seen] = first
            text = [
                f"first={plan.files[p >> POS_SHIFT]}:{p & ((1 << POS_SHIFT) - 1)}"
                for p in first_of[dup]
            ]
            what = pd.Series(np.full(n, "", dtype=object), index=df.index)
            what[dup] = text
            flag(dup, Reason.duplicate_tx_id, what, "tx_id")  # detail: tx_id=first=FILE:ROW

    result = pd.DataFrame(out, index=df.index)[[c for c in _order(df.columns) if c in out]]
    result["reason"] = _text_column(reason, df.index)
    result["detail"] = _text_column(detail, df.index)
    result["_pos"] = pos
    if plan.start is not None or plan.end is not None:
        keep = np.ones(n, dtype=bool)
        tsv = result["ts"]
        if plan.start is not None:
            keep &= ~(tsv < plan.start).to_numpy()
        if plan.end is not None:
            keep &= ~(tsv >= plan.end).to_numpy()
        result = result[keep]
    return result.reset_index(drop=True)


def _order(columns: pd.Index) -> list[str]:
    from fraud_dask.data.schema import order_columns

    cols = list(columns)
    for extra in ("client_id", "label_ts"):
        if extra not in cols:
            cols.append(extra)
    return order_columns(cols)


def kept_rows(pdf: pd.DataFrame) -> pd.DataFrame:
    """Return the good rows of a prepared partition with canonical dtypes.

    Parameters
    ----------
    pdf : pandas.DataFrame
        Output of :func:`prepare_partition`.

    Returns
    -------
    pandas.DataFrame
        Rows without a reason; ``reason``, ``detail`` and ``_pos`` dropped; integer IDs int64,
        ``is_fraud`` int8.
    """
    good = pdf[pdf["reason"].isna()].drop(columns=["reason", "detail", "_pos"])
    ints = [c for c in good.columns if c in ID_COLUMNS and good[c].dtype == "Int64"]
    for col in ints:
        # an optional id (terminal_id with merchant_id present, customer_id) may be missing on a
        # good row: MISSING_ID stands for it, so the column keeps one integer dtype everywhere
        if col not in REQUIRED and good[col].isna().any():
            good = good.assign(**{col: good[col].fillna(MISSING_ID)})
    casts = dict.fromkeys(ints, "int64")
    if "is_fraud" in good.columns:
        casts["is_fraud"] = "int8"
    return good.astype(casts) if casts else good


def quarantined_rows(pdf: pd.DataFrame, files: tuple[str, ...]) -> pd.DataFrame:
    """Return the bad rows of a prepared partition, with ``source_file`` and ``source_row``.

    Parameters
    ----------
    pdf : pandas.DataFrame
        Output of :func:`prepare_partition`.
    files : tuple of str
        The source's sorted file list (``_pos`` indexes it).

    Returns
    -------
    pandas.DataFrame
        Rows with a reason; nullable dtypes kept so nothing is lost.
    """
    bad = pdf[pdf["reason"].notna()]
    pos = bad["_pos"].to_numpy()
    names = np.asarray(files, dtype=object)[pos >> POS_SHIFT] if len(files) else []
    bad = bad.drop(columns=["_pos"])
    bad["source_file"] = pd.Series(names, index=bad.index, dtype=STRING_DTYPE)
    bad["source_row"] = pos & ((1 << POS_SHIFT) - 1)
    return bad
