"""The feature frame that training and evaluation read, and its rows and frauds per day.

:func:`read_feature_frame` reads a source and builds its features (or reads a dataset written by
``task=features``), persisted once since every fold reads it; :func:`daily_of` counts its rows and
frauds per day once per frame, for the fold plan, the early-stopping periods and the reports.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: rows and frauds per day of the frames of this run, by dask name (see daily_of)
_DAILY: dict[str, Any] = {}
#: rows and frauds of day-bounded selections of those frames, by dask name and label (see
#: note_period and label_counts)
_COUNTS: dict[tuple[str, str], tuple[int, int]] = {}


def read_feature_frame(
    data: Any, features: Any, client: Any, *, features_path: str | None = None
) -> tuple[Any, Any]:
    """The persisted feature frame of a source and a feature spec, and what was read.

    Reads ``features_path`` (a dataset written by ``task=features``) when set, else reads the
    source (:func:`fraud_dask.data.read_transactions`: repeated ``tx_id`` quarantined unless
    ``data.dedupe`` is off) and builds the features lazily. The frame and the read's counts are
    persisted together (one pass over the source); its float64 features are held as float32,
    the precision every model reads them in (:func:`model_precision`).

    Parameters
    ----------
    data : DataConf or DictConfig
        The ``data`` config (the source).
    features : FeaturesConf or DictConfig
        The ``features`` config (the spec).
    client : distributed.Client
        The session's client.
    features_path : str, optional
        A features dataset to read instead of building the features.

    Returns
    -------
    (dask.dataframe.DataFrame, fraud_dask.data.RowCounts or None)
        The frame, and the checked counts of the source read (rows in = kept + quarantined, by
        reason; ``.as_dict()`` for a task's result); None when read from ``features_path``.
    """
    from distributed import wait

    _DAILY.clear()  # a new read: no day counts of an earlier frame may be taken for it
    _COUNTS.clear()
    started = time.perf_counter()
    counts = None
    if features_path:
        from fraud_dask.data.io import read_dataset

        frame = client.persist(model_precision(read_dataset(str(features_path))))
    else:
        from fraud_dask.data import read_transactions
        from fraud_dask.features.build import build_features

        read = read_transactions(data)
        lazy = [model_precision(build_features(read.kept, features)), *read.lazy_counts()]
        frame, *persisted = client.persist(lazy)
        counts = read.counts(client.compute(persisted, sync=True))
        log.info("features of %s: %s", data.name, counts.describe())
    wait(frame)
    log.info(
        "features ready in %.1f s (%d partitions)", time.perf_counter() - started, frame.npartitions
    )
    return frame, counts


def model_precision(frame: Any) -> Any:
    """``frame`` with its float64 columns as float32, except the canonical source columns.

    Every model reads its inputs as float32 (:func:`fraud_dask.train.encode.encode_partition`:
    XGBoost's own precision), so the scores, the fits and the metrics are the same; the
    persisted frame that every fold, the evaluation and the registration read takes half the
    memory (at 10 M rows of the default features, 7.4 GB of float64 would spill from two 4 GiB
    workers and every pass over it would read it back from disk). ``amount`` and the other
    canonical columns keep their type (fraud value caught sums the amounts).
    """
    import numpy as np

    from fraud_dask.data.schema import CANONICAL_ORDER

    casts = {
        c: np.float32
        for c, t in frame.dtypes.items()
        if t == np.float64 and c not in CANONICAL_ORDER
    }
    return frame.astype(casts) if casts else frame


def daily_of(frame: Any) -> Any:
    """Rows and frauds per day of ``frame`` (:func:`fraud_dask.split.daily_counts`), computed
    once per frame: the fold plan, the early-stopping periods and the reports all read it."""
    from fraud_dask.split import daily_counts

    key = str(getattr(frame, "_name", id(frame)))
    if key not in _DAILY:
        if len(_DAILY) > 8:
            _DAILY.clear()
        _DAILY[key] = daily_counts(frame)
    return _DAILY[key]


def note_period(
    selection: Any, frame: Any, first: Any, last: Any, *, label: str = "is_fraud"
) -> None:
    """Remember the rows and frauds of ``selection``, the rows of ``frame`` whose UTC day is
    in ``first`` .. ``last`` (both included), from :func:`daily_of` (no pass over the rows):
    :func:`label_counts` then answers for it without reading it.

    Nothing is remembered when the day counts could differ from the label's (a label that can
    hold nulls, a timestamp in another time zone than UTC)."""
    import pandas as pd

    name = getattr(selection, "_name", None)
    if name is None or label != "is_fraud" or label not in frame.columns:
        return
    tz = getattr(frame["ts"].dtype, "tz", None)
    if tz is not None and str(tz) != "UTC":
        return
    kind = frame[label].dtype
    if not (pd.api.types.is_integer_dtype(kind) or pd.api.types.is_bool_dtype(kind)):
        return
    if pd.api.types.is_extension_array_dtype(kind):  # nullable Int64 / boolean
        return
    daily = daily_of(frame)
    days = daily.loc[(daily.index >= first) & (daily.index <= last)]
    if len(_COUNTS) > 64:
        _COUNTS.clear()
    _COUNTS[(str(name), label)] = (int(days["rows"].sum()), int(days["frauds"].sum()))


def label_counts(frames: list[Any], label: str = "is_fraud") -> list[tuple[int, int]]:
    """Rows (non-null labels) and frauds of each frame, in one compute for those not noted by
    :func:`note_period` (the fold loop notes every period it cuts, so a fit reads no rows just
    to count them)."""
    import dask

    known = [_COUNTS.get((str(getattr(f, "_name", "")), label)) for f in frames]
    lazy = [
        part
        for f, k in zip(frames, known, strict=True)
        if k is None
        for part in (f[label].count(), f[label].sum())
    ]
    found = iter([int(v) for v in dask.compute(*lazy)] if lazy else [])
    return [k if k is not None else (next(found), next(found)) for k in known]
