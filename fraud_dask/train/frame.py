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


def read_feature_frame(
    data: Any, features: Any, client: Any, *, features_path: str | None = None
) -> tuple[Any, Any]:
    """The persisted feature frame of a source and a feature spec, and what was read.

    Reads ``features_path`` (a dataset written by ``task=features``) when set, else reads the
    source (:func:`fraud_dask.data.read_transactions`: repeated ``tx_id`` quarantined unless
    ``data.dedupe`` is off) and builds the features lazily. The frame and the read's counts are
    persisted together (one pass over the source).

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
    started = time.perf_counter()
    counts = None
    if features_path:
        from fraud_dask.data.io import read_dataset

        frame = client.persist(read_dataset(str(features_path)))
    else:
        from fraud_dask.data import read_transactions
        from fraud_dask.features.build import build_features

        read = read_transactions(data)
        lazy = [build_features(read.kept, features), *read.lazy_counts()]
        frame, *persisted = client.persist(lazy)
        counts = read.counts(client.compute(persisted, sync=True))
        log.info("features of %s: %s", data.name, counts.describe())
    wait(frame)
    log.info(
        "features ready in %.1f s (%d partitions)", time.perf_counter() - started, frame.npartitions
    )
    return frame, counts


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
