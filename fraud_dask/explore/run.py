"""Emerging risk over a source: windows, segment counts on Dask, ranking, the model's misses."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.errors import UserError
from fraud_dask.explore.config import ExploreConf
from fraud_dask.explore.report import strength
from fraud_dask.explore.segments import (
    HOUR_BAND,
    miss_counts,
    segment_columns,
    window_counts,
)
from fraud_dask.explore.stats import emerging, misses

log = logging.getLogger(__name__)


@dataclass
class Windows:
    """Baseline ``[baseline_start, recent_start)`` and recent ``[recent_start, recent_end)``."""

    baseline_start: pd.Timestamp
    recent_start: pd.Timestamp
    recent_end: pd.Timestamp

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in vars(self).items()}


def _utc(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise UserError(f"explore.{name}: got {value!r}, expected an ISO date") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def resolve_windows(conf: ExploreConf, data_end: pd.Timestamp | None) -> Windows:
    """The two windows from the config and (when the recent end is not given) the data's end.

    Parameters
    ----------
    conf : ExploreConf
    data_end : pandas.Timestamp or None
        The newest transaction time; the recent window ends at the midnight after it.

    Raises
    ------
    UserError
        A date that does not parse, a non-positive length, or windows out of order.
    """
    for name in ("recent_days", "baseline_days", "top"):
        if getattr(conf, name) < 1:
            raise UserError(f"explore.{name}: got {getattr(conf, name)}, expected >= 1")
    if not 0 < conf.fdr < 1:
        raise UserError(f"explore.fdr: got {conf.fdr}, expected a rate in (0, 1)")
    end = _utc(conf.recent_end, "recent_end")
    if end is None:
        if data_end is None:
            raise UserError("explore: the source has no rows to explore")
        end = pd.Timestamp(data_end).tz_convert("UTC").floor("D") + pd.Timedelta(days=1)
    start = _utc(conf.recent_start, "recent_start") or end - pd.Timedelta(days=conf.recent_days)
    base = _utc(conf.baseline_start, "baseline_start") or start - pd.Timedelta(
        days=conf.baseline_days
    )
    if not base < start < end:
        raise UserError(
            f"explore: windows out of order: baseline_start {base}, recent_start {start}, "
            f"recent_end {end} (expected increasing)"
        )
    return Windows(base, start, end)


def records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """JSON-ready rows (numpy scalars as Python ones, inf and NaN as None)."""
    out = []
    for row in frame[columns or list(frame.columns)].to_dict("records"):
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


def rank_segments(
    frame: Any, conf: ExploreConf, windows: Windows, extra: Any = ()
) -> dict[str, Any]:
    """Count, test and rank the segments of ``frame`` (the rows of both windows, lazy).

    Returns
    -------
    dict
        ``columns``, ``totals`` (per window), ``table`` (every tested segment, ranked, pandas),
        ``segments`` (segments with rows), ``tested``, ``significant``, ``extra`` (computed).
    """
    if "is_fraud" not in frame.columns:
        raise UserError("explore: the source has no is_fraud column (labels are needed)")
    columns = segment_columns(list(frame.columns), conf.columns)
    if not columns:
        raise UserError("explore: the source has none of the segment columns")
    if str(conf.unit) == "cards" and "card_id" not in frame.columns:
        raise UserError("explore.unit=cards: the source has no card_id")
    table, totals, extra_values = window_counts(
        frame,
        columns,
        baseline_start=windows.baseline_start,
        recent_start=windows.recent_start,
        recent_end=windows.recent_end,
        unit=str(conf.unit),
        extra=extra,
    )
    ranked = emerging(table, fdr=conf.fdr, min_frauds=conf.min_frauds)
    ranked["strength"] = [strength(v) for v in ranked["log_p"]]
    return {
        "columns": columns,
        "totals": totals,
        "table": ranked,
        "segments": len(table),
        "tested": len(ranked),
        "significant": int(ranked["significant"].sum()),
        "extra": extra_values,
    }


def champion_misses(
    data: Any, bundle: Any, columns: list[str], windows: Windows, threshold: float
) -> pd.DataFrame:
    """Score the recent window with ``bundle`` and rank segments by the fraud value missed.

    The bundle's features are rebuilt over the window and the history they need
    (:func:`fraud_dask.score.batch.read_period`), the segment columns carried through.
    """
    from fraud_dask.features.build import build_features
    from fraud_dask.score.batch import read_period, rows_in_period, score_features

    carried = [c for c in columns if c != HOUR_BAND]
    features = dict(bundle.features)
    features["keep"] = list(
        dict.fromkeys([*features.get("keep", []), "ts", "amount", "is_fraud", *carried])
    )
    period = read_period(data, features, windows.recent_start, windows.recent_end)
    feats = build_features(period.frame, features)
    feats = rows_in_period(feats, windows.recent_start, windows.recent_end)
    keep = list(dict.fromkeys(["ts", "amount", "is_fraud", *carried]))
    scored = score_features(feats, bundle.model, top=0, threshold=threshold, keep=keep)
    return misses(miss_counts(scored, columns))
