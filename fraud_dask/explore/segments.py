"""Per-segment counts on Dask: the two windows' rows, frauds and fraud value; the model's misses.

Each segment column is one group-by over the rows of the two windows (a tree reduction, no
shuffle but the small distinct-card step over fraud rows); every column's aggregate is computed
in one ``dask.compute`` and comes back as a small pandas table, which
:mod:`fraud_dask.explore.stats` ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.data.schema import CANONICAL_ORDER

#: segment columns, in this order, where the source has them: the canonical entity ids that
#: name a place (client, merchant, terminal), the usual passthrough descriptions of a merchant
#: or card, and ``hour_band`` (derived from ``ts``)
SEGMENT_COLUMNS = (
    *(c for c in CANONICAL_ORDER if c in ("client_id", "merchant_id", "terminal_id")),
    "category",
    "mcc",
    "country",
    "merchant_country",
    "bin",
    "card_bin",
    "channel",
    "hour_band",
)
HOUR_BAND = "hour_band"
HOUR_BANDS = ("00-05", "06-11", "12-17", "18-23")
"""``hour_band`` values: the hour of ``ts`` (UTC) in bands of six."""


def segment_columns(available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The segment columns to use: ``wanted`` (each must exist), else every known one present.

    Raises
    ------
    fraud_dask.errors.UserError
        A wanted column is neither in the source nor ``hour_band``.
    """
    from fraud_dask.errors import UserError

    have = set(available) | ({HOUR_BAND} if "ts" in available else set())
    if wanted is None:
        return [c for c in SEGMENT_COLUMNS if c in have]
    missing = [c for c in wanted if c not in have]
    if missing:
        raise UserError(f"explore.columns: {missing} not in the source; it has {sorted(have)}")
    return list(dict.fromkeys(wanted))


def _hour_band(ts: pd.Series) -> np.ndarray:
    return (ts.dt.hour.to_numpy() // 6).astype(np.int8)


def _windows(
    part: pd.DataFrame, columns: list[str], edges: tuple[Any, Any, Any], card: bool
) -> pd.DataFrame:
    lo, mid, hi = edges
    ts = part["ts"]
    window = np.full(len(part), -1, dtype=np.int8)
    window[((ts >= lo) & (ts < mid)).to_numpy()] = 0
    window[((ts >= mid) & (ts < hi)).to_numpy()] = 1
    fraud = part["is_fraud"].to_numpy().astype(np.int64)
    out = pd.DataFrame(
        {
            **{c: part[c] for c in columns if c != HOUR_BAND},
            "window": window,
            "fraud": fraud,
            "fraud_value": part["amount"].to_numpy() * fraud,
        },
        index=part.index,
    )
    if HOUR_BAND in columns:
        out[HOUR_BAND] = _hour_band(ts)
    if card:
        out["card_id"] = part["card_id"]
    return out[window >= 0]


def _label(column: str, values: pd.Series) -> pd.Series:
    if column == HOUR_BAND:
        return values.map(lambda v: HOUR_BANDS[int(v)])
    return values.astype(str)


def window_counts(
    frame: Any,
    columns: Sequence[str],
    *,
    baseline_start: pd.Timestamp,
    recent_start: pd.Timestamp,
    recent_end: pd.Timestamp,
    unit: str = "cards",
    extra: Sequence[Any] = (),
) -> tuple[pd.DataFrame, dict[str, Any], list[Any]]:
    """Rows, frauds and fraud value of each segment in the baseline and recent windows.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Canonical transactions with ``ts``, ``amount``, ``is_fraud`` (and ``card_id`` for
        ``unit="cards"``) and the segment columns (``hour_band`` is derived).
    columns : sequence of str
        Segment columns.
    baseline_start, recent_start, recent_end : pandas.Timestamp
        Baseline ``[baseline_start, recent_start)``, recent ``[recent_start, recent_end)``.
    unit : {"cards", "rows"}
        ``frauds_*`` count fraud rows, or distinct cards among them per segment and window.
    extra : sequence
        Other lazy values computed in the same pass (e.g. the read's row counts).

    Returns
    -------
    (pandas.DataFrame, dict, list)
        The table (:data:`fraud_dask.explore.stats.COUNT_COLUMNS` plus ``fraud_rows_base`` and
        ``fraud_rows_recent``), the totals per window (``rows``, ``fraud_rows``,
        ``fraud_value``), and the computed ``extra``.
    """
    import dask

    columns = list(columns)
    card = unit == "cards"
    meta = _windows(frame._meta, columns, (recent_start,) * 3, card)
    rows = frame.map_partitions(
        _windows, columns, (baseline_start, recent_start, recent_end), card, meta=meta
    )
    lazy: dict[str, Any] = {
        "totals": rows.groupby("window").agg(
            rows=("fraud", "count"), fraud_rows=("fraud", "sum"), fraud_value=("fraud_value", "sum")
        )
    }
    frauds = rows[rows["fraud"] == 1]
    for c in columns:
        lazy[c] = rows.groupby([c, "window"], observed=True).agg(
            n=("fraud", "count"), fraud_rows=("fraud", "sum"), value=("fraud_value", "sum")
        )
        if card:
            pairs = frauds[[c, "window", "card_id"]].drop_duplicates()
            lazy[f"{c}/cards"] = pairs.groupby([c, "window"], observed=True).size()
    got, extra_values = dask.compute(lazy, list(extra))
    tables = []
    for c in columns:
        g = got[c].reset_index()
        if card:
            cards = got[f"{c}/cards"].rename("frauds").reset_index()
            g = g.merge(cards, on=[c, "window"], how="left")
            g["frauds"] = g["frauds"].fillna(0).astype(np.int64)
        else:
            g["frauds"] = g["fraud_rows"]
        wide = g.pivot_table(
            index=c,
            columns="window",
            values=["n", "frauds", "fraud_rows", "value"],
            aggfunc="sum",
            fill_value=0,
            observed=True,
        )
        out = pd.DataFrame({"column": c, "value": _label(c, pd.Series(wide.index))})
        for name, (src, window) in {
            "n_base": ("n", 0),
            "n_recent": ("n", 1),
            "frauds_base": ("frauds", 0),
            "frauds_recent": ("frauds", 1),
            "fraud_rows_base": ("fraud_rows", 0),
            "fraud_rows_recent": ("fraud_rows", 1),
            "value_base": ("value", 0),
            "value_recent": ("value", 1),
        }.items():
            values = wide[(src, window)] if (src, window) in wide.columns else 0
            out[name] = np.asarray(values, dtype=float if src == "value" else np.int64)
        tables.append(out)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    totals = got["totals"].reindex([0, 1], fill_value=0)
    summary = {
        name: {k: float(v) if k == "fraud_value" else int(v) for k, v in totals.loc[w].items()}
        for name, w in (("baseline", 0), ("recent", 1))
    }
    return table, summary, list(extra_values)


def _caught(part: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    fraud = part["is_fraud"].to_numpy().astype(np.int64)
    caught = fraud * part["alert"].to_numpy().astype(np.int64)
    amount = part["amount"].to_numpy()
    out = pd.DataFrame(
        {
            **{c: part[c] for c in columns if c != HOUR_BAND},
            "fraud": fraud,
            "caught": caught,
            "fraud_value": amount * fraud,
            "caught_value": amount * caught,
        },
        index=part.index,
    )
    if HOUR_BAND in columns:
        out[HOUR_BAND] = _hour_band(part["ts"])
    return out


def miss_counts(scored: Any, columns: Sequence[str]) -> pd.DataFrame:
    """Frauds and fraud value per segment, all and alerted, of scored rows.

    Parameters
    ----------
    scored : dask.dataframe.DataFrame
        Rows with ``ts``, ``amount``, ``is_fraud``, ``alert`` and the segment columns.
    columns : sequence of str
        Segment columns.

    Returns
    -------
    pandas.DataFrame
        ``column``, ``value``, ``rows``, ``frauds``, ``caught``, ``fraud_value``,
        ``caught_value``: the table :func:`fraud_dask.explore.stats.misses` ranks.
    """
    import dask

    columns = list(columns)
    meta = _caught(scored._meta, columns)
    rows = scored.map_partitions(_caught, columns, meta=meta)
    lazy = {
        c: rows.groupby(c, observed=True).agg(
            rows=("fraud", "count"),
            frauds=("fraud", "sum"),
            caught=("caught", "sum"),
            fraud_value=("fraud_value", "sum"),
            caught_value=("caught_value", "sum"),
        )
        for c in columns
    }
    (got,) = dask.compute(lazy)
    tables = []
    for c in columns:
        g = got[c].reset_index()
        tables.append(
            pd.DataFrame(
                {
                    "column": c,
                    "value": _label(c, g[c]),
                    **{k: g[k].to_numpy() for k in ("rows", "frauds", "caught")},
                    "fraud_value": g["fraud_value"].to_numpy(float),
                    "caught_value": g["caught_value"].to_numpy(float),
                }
            )
        )
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
