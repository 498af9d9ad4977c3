"""Canonical transaction columns, their dtypes, and the quarantine reasons.

Every stage after ingest sees these names (see docs/architecture.md, "Canonical transaction
frame"). Sources map their raw columns onto them by config (``fraud_dask.data.config``).
"""

from __future__ import annotations

import enum

import numpy as np
import pandas as pd

TS_DTYPE = pd.DatetimeTZDtype(unit="ns", tz="UTC")
"""``ts`` and ``label_ts``: nanosecond timestamps in UTC."""

STRING_DTYPE = pd.StringDtype(na_value=np.nan)
"""pandas 3's default ``str`` dtype, used for string identifiers and text columns."""

ID_COLUMNS = ("tx_id", "card_id", "terminal_id", "merchant_id", "customer_id")
"""Identifier columns: int64 when every source file stores integers, otherwise strings."""

MISSING_ID = -1
"""An optional integer id (e.g. ``terminal_id`` where ``merchant_id`` is given) missing on a
good row; string ids keep a missing value as null."""

REQUIRED = ("tx_id", "ts", "card_id", "amount")
"""Columns every source must provide (after mapping)."""

POINT_OF_SALE = ("terminal_id", "merchant_id")
"""At least one of these must be provided."""

CANONICAL_ORDER = (
    "tx_id",
    "ts",
    "card_id",
    "amount",
    "terminal_id",
    "merchant_id",
    "client_id",
    "customer_id",
    "is_fraud",
    "label_ts",
)
"""Output column order: these first (those present), then the rest in source order."""

NON_FEATURES = ("tx_id", "ts", "label_ts", "is_fraud", "scenario", "day")
"""Columns that must never be model inputs (identifiers, labels, ground truth, layout)."""


class Reason(enum.StrEnum):
    """Why a row was sent to quarantine; the first failing check in this order wins."""

    null_key = "null_key"
    oversized_value = "oversized_value"
    """A string value (an id, free text, a raw timestamp or amount) longer than
    ``data.max_value_length`` characters; the value itself is not kept (its length is)."""
    unparseable_timestamp = "unparseable_timestamp"
    mixed_timezone = "mixed_timezone"
    timestamp_out_of_range = "timestamp_out_of_range"
    unparseable_amount = "unparseable_amount"
    """A string amount that is not a number (``"abc"``)."""
    non_finite_amount = "non_finite_amount"
    negative_amount = "negative_amount"
    label_not_binary = "label_not_binary"
    duplicate_tx_id = "duplicate_tx_id"


REASONS = tuple(r.value for r in Reason)

QUARANTINE_EXTRA = ("reason", "detail", "source_file", "source_row")
"""Columns the quarantine dataset adds to the canonical ones."""


def order_columns(columns: list[str]) -> list[str]:
    """Return ``columns`` with the canonical ones first, in canonical order.

    Parameters
    ----------
    columns : list of str
        Column names of a frame.

    Returns
    -------
    list of str
        The same names, canonical columns first, then the others in their given order.
    """
    first = [c for c in CANONICAL_ORDER if c in columns]
    return first + [c for c in columns if c not in first]


def check_canonical(df: pd.DataFrame, where: str = "frame") -> None:
    """Raise if ``df`` (a pandas frame or a dask frame's meta) breaks the data contract.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame (or ``ddf._meta``) to check.
    where : str
        Named in the error message.

    Raises
    ------
    ValueError
        A required column is missing or has the wrong dtype.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if not any(c in df.columns for c in POINT_OF_SALE):
        missing.append(" or ".join(POINT_OF_SALE))
    if missing:
        raise ValueError(f"{where}: missing canonical column(s) {missing}; got {list(df.columns)}")
    expected = {"ts": TS_DTYPE, "amount": np.dtype("float64")}
    if "label_ts" in df.columns:
        expected["label_ts"] = TS_DTYPE
    if "is_fraud" in df.columns:
        expected["is_fraud"] = np.dtype("int8")
    for col, dtype in expected.items():
        if df[col].dtype != dtype:
            raise ValueError(f"{where}: column {col!r} has dtype {df[col].dtype}, expected {dtype}")
