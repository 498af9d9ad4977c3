"""The lazy Dask builder: entity shuffles of only the columns each stage reads, one join.

Shape: every row gets a unique row number. The lead stage (the card's, else the first) shuffles
the kept columns by its key and adds its features in place. Every other stage shuffles only the
columns its operations read (``tx_id``, ``ts``, ``amount``, the labels where needed, its key and
distinct-count columns, and the lead key) so that an entity's whole history sits in one
partition, runs :func:`~fraud_dask.features.batch.entity_features` there, and sends its features
back to the lead's partitions (a shuffle by the lead key); each output partition then matches
rows by row number, puts the features side by side and is sorted by (ts, tx_id). A
low-cardinality key (a merchant category with ten values holds a tenth of all rows) therefore
concentrates a few narrow columns in one partition, never whole rows.

Nothing is computed here. Memory is bounded by the largest partition after a shuffle (the
shuffle spills to disk), so a dataset larger than the workers' memory completes as long as
``npartitions`` keeps partitions small and no single entity's history outgrows a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from fraud_dask.features.batch import entity_features, row_features, ts_ns
from fraud_dask.features.config import FeaturesConf, as_features_conf
from fraud_dask.features.plan import Plan, Stage, make_plan

ROW = "_row"


def _with_rows(pdf: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    return pd.concat([pdf, row_features(pdf, plan)], axis=1)


def _number_rows(pdf: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    number = 0 if partition_info is None else int(partition_info["number"])
    out = pdf.copy()
    out[ROW] = (np.int64(number) << np.int64(40)) + np.arange(len(pdf), dtype=np.int64)
    return out


def _with_stage(pdf: pd.DataFrame, stage: Stage) -> pd.DataFrame:
    return pd.concat([pdf, entity_features(pdf, stage)], axis=1)


def _stage_only(pdf: pd.DataFrame, stage: Stage, carry: list[str]) -> pd.DataFrame:
    """Row number, the ``carry`` columns (the lead key, to route the rows back) and features."""
    feats = entity_features(pdf, stage).reset_index(drop=True)
    head = pdf[[ROW, *carry]].reset_index(drop=True)
    return pd.concat([head, feats], axis=1)


def _join(
    main: pd.DataFrame, *stages: pd.DataFrame, columns: list[str], carry: list[str]
) -> pd.DataFrame:
    """Put the stages' features beside the main rows (the same rows, matched by row number)."""
    main = main.sort_values(ROW, kind="stable")
    rows = main[ROW].to_numpy()
    blocks = [main.reset_index(drop=True)]
    for part in stages:
        part = part.sort_values(ROW, kind="stable")
        if not np.array_equal(part[ROW].to_numpy(), rows):
            raise RuntimeError(
                "features: a stage's rows do not match the input rows after the shuffle "
                f"({len(part)} vs {len(main)} rows)"
            )
        blocks.append(part.drop(columns=[ROW, *carry]).reset_index(drop=True))
    return _finish(pd.concat(blocks, axis=1), columns)


def _finish(pdf: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    ts = ts_ns(pdf["ts"])
    tx = pdf["tx_id"]
    tx_key = tx.to_numpy() if tx.dtype.kind in "iu" else pd.factorize(tx, sort=True)[0]
    order = np.lexsort((tx_key, ts))
    return pdf.iloc[order][columns].reset_index(drop=True)


#: ``shuffle: auto`` uses the task-based shuffle up to this many output partitions (about 4 M
#: rows at the reader's 500k rows per partition), P2P above.
AUTO_TASKS_MAX_PARTITIONS = 8


def shuffle_method(name: str, npartitions: int) -> str:
    """The Dask shuffle method for ``features.shuffle`` (``auto``, ``tasks`` or ``p2p``).

    Measured on 2 workers (docs/benchmarks.md): for a few partitions of ~500k rows the
    task-based shuffle is about 1.5-2x faster than P2P (the handbook's 1.75 M rows); with many
    partitions P2P streams through disk and is faster and steadier (10 M rows, the default
    features: 148 s with P2P, 241 s with tasks spilling).

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


def feature_columns(frame: dd.DataFrame, conf: FeaturesConf | Mapping[str, Any]) -> list[str]:
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
    conf: FeaturesConf | Mapping[str, Any],
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
    labels = (["is_fraud"] if plan.needs_label else []) + (
        ["label_ts"] if plan.needs_label_ts else []
    )
    needed = list(dict.fromkeys(["tx_id", "ts", "amount", *plan.keep, *labels]
                                + [c for st in plan.stages for c in st.columns]))  # fmt: skip
    df = frame[needed]
    if plan.rows:
        meta = _with_rows(df._meta, plan)
        df = df.map_partitions(_with_rows, plan, meta=meta)
    out = [*plan.keep, *plan.feature_names]
    if not plan.stages:
        return df.map_partitions(_finish, out, meta=_finish(df._meta, out))
    nparts = npartitions or conf.npartitions or frame.npartitions
    method = shuffle_method(conf.shuffle, nparts)
    df = df.map_partitions(_number_rows, meta=_number_rows(df._meta))
    # The lead stage (the card's, else the first) shuffles the kept columns with its own and
    # computes in place; every other stage shuffles its narrow columns by its key, computes,
    # and is sent back to the lead's partitions (by the lead key) to be joined by row number.
    lead = next((st for st in plan.stages if st.key == ("card_id",)), plan.stages[0])
    lead_key = list(lead.key)
    lead_on = lead_key[0] if len(lead_key) == 1 else lead_key
    base = ["tx_id", "ts", "amount", *labels]
    kept = [ROW, *base, *plan.keep, *plan.row_names, *lead.columns]
    main = df[list(dict.fromkeys(kept))].shuffle(
        on=lead_on, npartitions=nparts, shuffle_method=method
    )
    main = main.map_partitions(_with_stage, lead, meta=_with_stage(main._meta, lead))
    outputs = []
    for stage in plan.stages:
        if stage is lead:
            continue
        key = list(stage.key)
        cols = list(dict.fromkeys([ROW, *base, *stage.columns, *lead_key]))
        narrow = df[cols].shuffle(
            on=key[0] if len(key) == 1 else key, npartitions=nparts, shuffle_method=method
        )
        meta = _stage_only(narrow._meta, stage, lead_key)
        feats = narrow.map_partitions(_stage_only, stage, lead_key, meta=meta)
        outputs.append(feats.shuffle(on=lead_on, npartitions=nparts, shuffle_method=method))
    meta = _join(main._meta, *(o._meta for o in outputs), columns=out, carry=lead_key)
    return dd.map_partitions(
        _join, main, *outputs, columns=out, carry=lead_key, meta=meta, align_dataframes=False
    )
