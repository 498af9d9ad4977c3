"""Time-based splits: fixed or data-aware folds of train period, label-delay gap and test period.

- :mod:`fraud_dask.split.folds`: the :class:`SplitConf` schema, :func:`make_folds` (explicit or
  anchored folds) and the lazy selections :func:`select_train` / :func:`select_test`;
- :mod:`fraud_dask.split.auto`: ``split.mode=auto`` (the default), which sizes the folds from
  the source's span and daily fraud counts (:func:`plan_folds`), and the early-stopping period
  that holds enough frauds (:func:`valid_days_for`).
"""

from __future__ import annotations

from fraud_dask.split.auto import FoldPlan, daily_counts, plan_folds, valid_days_for
from fraud_dask.split.folds import (
    Anchor,
    Fold,
    FoldSet,
    KnownRule,
    KnownSince,
    SplitConf,
    SplitMode,
    _drop_known,
    data_time_range,
    known_compromised,
    make_folds,
    select_test,
    select_train,
    split_frame,
)

__all__ = [
    "Anchor",
    "Fold",
    "FoldPlan",
    "FoldSet",
    "KnownRule",
    "KnownSince",
    "SplitConf",
    "SplitMode",
    "_drop_known",
    "daily_counts",
    "data_time_range",
    "known_compromised",
    "make_folds",
    "plan_folds",
    "select_test",
    "select_train",
    "split_frame",
    "valid_days_for",
]
