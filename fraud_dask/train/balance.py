"""Training rows spread over the workers before a fit.

:func:`balance` spreads the training rows evenly over the workers (a time-filtered frame often
holds its rows in a few partitions, and ``xgboost.dask`` trains each worker on the partitions it
holds); :func:`balance_stratified` also deals the frauds evenly over them. Both can transform each
balanced partition in the same task (``prepare``), so the persisted frame holds, say, the encoded
model matrix instead of the raw rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.cluster import scheduler_workers


def sample_genuine(
    part: pd.DataFrame, label: str, rate: float, seed: int, partition_info: dict | None = None
) -> pd.DataFrame:
    """Every fraud of ``part`` and each genuine row with probability ``rate`` (seeded by the
    partition number, so a rerun draws the same rows); for ``map_partitions``."""
    number = (partition_info or {}).get("number", 0)
    draw = np.random.default_rng([seed, number]).random(len(part))
    keep = (part[label].to_numpy() == 1) | (draw < rate)
    return part[keep]


def genuine_rate(total: int, frauds: int, max_rows: int | None) -> float:
    """The share of the genuine rows kept so that about ``max_rows`` rows remain with every
    fraud (1.0: no sampling, when ``max_rows`` is unset or not exceeded)."""
    if not max_rows or total <= int(max_rows) or total <= frauds:
        return 1.0
    rate = max(0.0, int(max_rows) - frauds) / (total - frauds)
    return min(1.0, max(rate, 1e-6))


def _length(part: pd.DataFrame) -> pd.Series:
    return pd.Series([len(part)], dtype="int64")


def _take_rows(
    pieces: list[pd.DataFrame], spans: list[tuple[int, int]], prepare: Any = None
) -> pd.DataFrame:
    out = pd.concat([p.iloc[lo:hi] for p, (lo, hi) in zip(pieces, spans, strict=True)])
    return out if prepare is None else prepare(out)


def _split_rows(
    part: pd.DataFrame,
    label: str,
    pos_offset: int,
    neg_offset: int,
    neg_bounds: np.ndarray,
    n: int,
) -> tuple[pd.DataFrame, ...]:
    """Cut one partition into ``n`` pieces: frauds dealt round-robin by their global rank,
    genuine rows into contiguous ranges of their global rank (``neg_bounds``)."""
    y = part[label].to_numpy() == 1
    dest = np.empty(len(part), dtype=np.int64)
    dest[y] = (pos_offset + np.arange(int(y.sum()))) % n
    neg_rank = neg_offset + np.arange(int((~y).sum()))
    dest[~y] = np.searchsorted(neg_bounds, neg_rank, side="right") - 1
    return tuple(part[dest == i] for i in range(n))


def _concat(pieces: list[pd.DataFrame], prepare: Any = None) -> pd.DataFrame:
    out = pd.concat(pieces)
    return out if prepare is None else prepare(out)


def _label_by_part(part: pd.DataFrame, label: str) -> pd.DataFrame:
    y = part[label].to_numpy() == 1
    return pd.DataFrame({"n": [len(part)], "pos": [int(y.sum())]})


def balance_stratified(
    client: Any,
    frame: Any,
    label: str,
    parts_per_worker: int = 1,
    prepare: Any = None,
    meta: Any = None,
) -> tuple[Any, list[int], list[int]]:
    """Like :func:`balance`, but the frauds are dealt evenly over the partitions.

    A time-ordered split of a short, clean period can leave a worker without a single fraud
    (its local AUC-PR is undefined, XGBoost warns on every round, and the sketch of that worker
    sees one class); dealing the frauds round-robin gives every partition ``pos // n`` or one
    more. Rows move only to their destination (each input partition is cut once).

    Returns
    -------
    (dask.dataframe.DataFrame, list of int, list of int)
        The persisted frame, the partition lengths, and the frauds per partition.
    """
    import dask
    import dask.dataframe as dd

    workers = sorted(scheduler_workers(client))
    if not workers:
        raise ValueError("balance: the cluster has no worker")
    frame = client.persist(frame)
    counts = frame.map_partitions(
        _label_by_part, label, meta=pd.DataFrame({"n": [0], "pos": [0]}).iloc[:0]
    ).compute()
    lengths, pos = counts["n"].to_numpy(), counts["pos"].to_numpy()
    total, total_pos = int(lengths.sum()), int(pos.sum())
    if total == 0:
        raise ValueError("balance: the training frame has no rows")
    n = max(1, min(len(workers) * max(1, int(parts_per_worker)), total))
    neg = lengths - pos
    total_neg = int(neg.sum())
    pos_offsets = np.concatenate([[0], np.cumsum(pos)])[:-1]
    neg_offsets = np.concatenate([[0], np.cumsum(neg)])[:-1]
    # genuine rows fill each partition up to an even total, after its share of the frauds
    pos_per = np.array([(total_pos - i + n - 1) // n for i in range(n)])
    sizes = np.linspace(0, total, n + 1).round().astype(int)
    neg_per = np.maximum(np.diff(sizes) - pos_per, 0)
    neg_per[-1] = total_neg - int(neg_per[:-1].sum())
    neg_bounds = np.concatenate([[0], np.cumsum(neg_per)])[:-1]
    pieces = [
        dask.delayed(_split_rows, nout=n)(
            part, label, int(pos_offsets[j]), int(neg_offsets[j]), neg_bounds, n
        )
        for j, part in enumerate(frame.to_delayed())
    ]
    futures = []
    for i in range(n):
        task = dask.delayed(_concat)([p[i] for p in pieces], prepare)
        worker = workers[i % len(workers)]
        futures.append(client.compute(task, workers=[worker], allow_other_workers=False))
    out = client.persist(
        dd.from_delayed(futures, meta=frame._meta if meta is None else meta, verify_meta=False)
    )
    return out, [int(a + b) for a, b in zip(pos_per, neg_per, strict=True)], pos_per.tolist()


def balance(
    client: Any, frame: Any, parts_per_worker: int = 1, prepare: Any = None, meta: Any = None
) -> tuple[Any, list[int]]:
    """Spread a frame's rows evenly over the workers, keeping row order.

    Parameters
    ----------
    client : distributed.Client
        The cluster session.
    frame : dask.dataframe.DataFrame
        Rows to train on (any partitioning; empty partitions allowed).
    parts_per_worker : int
        Partitions each worker holds afterwards.
    prepare : callable, optional
        Applied to each balanced pandas partition in the same task (e.g. encoding the model
        matrix), so that the persisted frame holds its output instead of the raw rows.
    meta : pandas.DataFrame, optional
        Empty frame of ``prepare``'s output (default: the frame's own meta).

    Returns
    -------
    (dask.dataframe.DataFrame, list of int)
        The frame, persisted, as ``n_workers * parts_per_worker`` partitions of equal size
        (within one row), partition ``i`` held by worker ``i mod n_workers``; and the partition
        lengths.

    Raises
    ------
    ValueError
        The frame has no rows, or the cluster has no worker.
    """
    import dask
    import dask.dataframe as dd

    workers = sorted(scheduler_workers(client))
    if not workers:
        raise ValueError("balance: the cluster has no worker")
    frame = client.persist(frame)
    lengths = frame.map_partitions(_length, meta=pd.Series(dtype="int64")).compute().to_numpy()
    total = int(lengths.sum())
    if total == 0:
        raise ValueError("balance: the training frame has no rows")
    n = max(1, min(len(workers) * max(1, int(parts_per_worker)), total))
    bounds = np.linspace(0, total, n + 1).round().astype(int)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    parts = frame.to_delayed()
    futures, sizes = [], []
    for i in range(n):
        a, b = bounds[i], bounds[i + 1]
        idx = [j for j in range(len(parts)) if starts[j] < b and starts[j + 1] > a]
        spans = [(max(a - starts[j], 0), min(b, starts[j + 1]) - starts[j]) for j in idx]
        task = dask.delayed(_take_rows)(
            [parts[j] for j in idx], [tuple(map(int, s)) for s in spans], prepare
        )
        worker = workers[i % len(workers)]
        futures.append(client.compute(task, workers=[worker], allow_other_workers=False))
        sizes.append(int(b - a))
    # Persisting the frame built on the futures keeps them alive with it (and makes it
    # convertible to a dask array, which a frame over bare futures is not).
    out = client.persist(
        dd.from_delayed(futures, meta=frame._meta if meta is None else meta, verify_meta=False)
    )
    return out, sizes
