"""The lazy Dask builder: one shuffle per entity key, then the batch kernels per partition.

Shape (measured fastest in ../shared/STACK.md): for each entity key, shuffle the rows so that an
entity's whole history sits in one partition, then run :func:`~fraud_dask.features.batch.
entity_features` on each partition with an explicit ``meta``. The stages are chained (the rows
carry the features already computed), so k entity keys cost k shuffles and no join. The last
step sorts each output partition by (ts, tx_id).

Nothing is computed here. Memory is bounded by the largest partition after a shuffle (the
shuffle itself spills to disk), so a dataset larger than the workers' memory completes as long as
``npartitions`` keeps partitions small and no single entity's history outgrows a worker.
"""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from fraud_dask.features.batch import calendar_features, entity_features, ts_ns
from fraud_dask.features.config import FeaturesConf, as_features_conf
from fraud_dask.features.plan import Plan, Stage, make_plan


def _with_calendar(pdf: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    return pd.concat([pdf, calendar_features(pdf, plan)], axis=1)


def _with_stage(pdf: pd.DataFrame, stage: Stage, drop: list[str]) -> pd.DataFrame:
    feats = entity_features(pdf, stage)
    return pd.concat([pdf.drop(columns=drop), feats], axis=1)


def _finish(pdf: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    ts = ts_ns(pdf["ts"])
    tx = pdf["tx_id"]
    tx_key = tx.to_numpy() if tx.dtype.kind in "iu" else pd.factorize(tx, sort=True)[0]
    order = np.lexsort((tx_key, ts))
    return pdf.iloc[order][columns].reset_index(drop=True)


#: ``shuffle: auto`` uses the task-based shuffle up to this many output partitions.
AUTO_TASKS_MAX_PARTITIONS = 64


def shuffle_method(name: str, npartitions: int) -> str:
    """The Dask shuffle method for ``features.shuffle`` (``auto``, ``tasks`` or ``p2p``).

    Measured on 2 workers (docs/benchmarks.md): for a few partitions of ~500k rows the
    task-based shuffle is about 1.5-2x faster than P2P; P2P keeps memory flat when there are
    many partitions.

    Raises
    ------
    ValueError
        Unknown name.
    """
    if name == "auto":
        return "tasks" if npartitions <= AUTO_TASKS_MAX_PARTITIONS else "p2p"
    if name in ("tasks", "p2p"):
        return name
    raise ValueError(f"features.shuffle must be auto, tasks or p2p, got {name!r}")


def feature_columns(frame: dd.DataFrame, conf: Any) -> list[str]:
    """The feature column names ``build_features(frame, conf)`` adds (calendar first).

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        The canonical input frame (only its columns are read).
    conf : FeaturesConf, DictConfig or mapping
        The ``features`` config.

    Returns
    -------
    list of str
    """
    return make_plan(conf, list(frame.columns)).feature_names


def build_features(
    frame: dd.DataFrame,
    conf: Any,
    *,
    label_delay: str | pd.Timedelta | None = None,
    npartitions: int | None = None,
) -> dd.DataFrame:
    """Point-in-time features of a canonical transaction frame, lazily.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Canonical transactions (``tx_id``, ``ts``, ``amount``, entity columns, ``is_fraud`` and
        ``label_ts`` where risk or target encoding need them), in any partitioning.
    conf : FeaturesConf, DictConfig or mapping
        The ``features`` config.
    label_delay : str or Timedelta, optional
        Where the frame has no ``label_ts``, take ``ts + label_delay`` as the time each label
        became known (e.g. ``"7D"``).
    npartitions : int, optional
        Partitions after each shuffle; default ``conf.npartitions``, else the input's.

    Returns
    -------
    dask.dataframe.DataFrame
        The ``conf.keep`` columns present in the input, then the feature columns; each
        partition sorted by (ts, tx_id). Values do not depend on the input partitioning.

    Raises
    ------
    ValueError
        A needed column is missing (named), or the config is invalid.
    """
    conf = conf if isinstance(conf, FeaturesConf) else as_features_conf(conf)
    if not isinstance(frame, dd.DataFrame):
        raise ValueError(
            f"build_features: expected a dask DataFrame, got {type(frame).__name__} "
            "(for a pandas frame use fraud_dask.features.batch.features_frame)"
        )
    columns = list(frame.columns)
    if label_delay is not None and "label_ts" not in columns:
        frame = frame.assign(label_ts=frame["ts"] + pd.Timedelta(label_delay))
        columns.append("label_ts")
    plan = make_plan(conf, columns)
    if plan.needs_label and "is_fraud" not in columns:
        raise ValueError("features: risk / target-encoding specs need 'is_fraud' in the input")
    if plan.needs_label_ts and "label_ts" not in columns:
        raise ValueError(
            "features: a risk or target-encoding spec without `delay` needs 'label_ts' in the "
            "input; pass build_features(..., label_delay='7D') or set the spec's `delay`"
        )
    needed = ["tx_id", "ts", "amount", *plan.keep]
    if plan.needs_label:
        needed.append("is_fraud")
    if plan.needs_label_ts:
        needed.append("label_ts")
    for stage in plan.stages:
        needed.extend(stage.columns)
    needed = list(dict.fromkeys(needed))
    df = frame[needed]
    if plan.calendar:
        meta = _with_calendar(df._meta, plan)
        df = df.map_partitions(_with_calendar, plan, meta=meta)
    nparts = npartitions or conf.npartitions or frame.npartitions
    method = shuffle_method(conf.shuffle, nparts)
    for i, stage in enumerate(plan.stages):
        later = {c for s in plan.stages[i + 1 :] for c in s.columns}
        drop = [c for c in stage.columns if c not in later and c not in plan.keep]
        key = list(stage.key)
        df = df.shuffle(
            on=key[0] if len(key) == 1 else key, npartitions=nparts, shuffle_method=method
        )
        meta = _with_stage(df._meta, stage, drop)
        df = df.map_partitions(_with_stage, stage, drop, meta=meta)
    out = [*plan.keep, *plan.feature_names]
    meta = _finish(df._meta, out)
    return df.map_partitions(_finish, out, meta=meta)
