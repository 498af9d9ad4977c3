"""Fitting on the cluster: rebalanced partitions, ``xgboost.dask`` and the dask-ml baseline.

:func:`balance` spreads the training rows evenly over the workers (a time-filtered frame often
holds its rows in a few partitions, and ``xgboost.dask`` trains each worker on the partitions it
holds). :func:`fit_xgboost` trains with ``DaskQuantileDMatrix`` and hist, early stopping on a
later-in-time validation frame, class weights and native categories, on CPU or CUDA (cupy) with
the same code. :func:`fit_logistic` fits the logistic baseline with dask-ml.
"""

from __future__ import annotations

import logging
import time
import warnings as pywarnings
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.train.config import conf_value, feature_columns, xgb_params
from fraud_dask.train.encode import (
    encode_partition,
    feature_types,
    learn_categories,
    matrix_meta,
)
from fraud_dask.train.model import TrainedModel

log = logging.getLogger(__name__)


def _length(part: pd.DataFrame) -> pd.Series:
    return pd.Series([len(part)], dtype="int64")


def _take_rows(
    pieces: list[pd.DataFrame], spans: list[tuple[int, int]], prepare: Any = None
) -> pd.DataFrame:
    out = pd.concat([p.iloc[lo:hi] for p, (lo, hi) in zip(pieces, spans, strict=True)])
    return out if prepare is None else prepare(out)


def _model_rows(
    part: pd.DataFrame, columns: list[str], cats: dict, label: str, weight: float | None
) -> pd.DataFrame:
    """The float32 model matrix of ``part`` plus the label (and a class weight) columns."""
    out = encode_partition(part, columns, cats)
    y = part[label].to_numpy(dtype=np.float32)
    out[label] = y
    if weight is not None:
        out[_WEIGHT] = (1.0 + (weight - 1.0) * (y == 1)).astype(np.float32)
    return out


_WEIGHT = "__fraud_dask_weight__"


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

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
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

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
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


def _label_counts(frame: Any, label: str) -> tuple[int, int]:
    import dask

    n, pos = dask.compute(frame[label].count(), frame[label].sum())
    return int(n), int(pos)


def _model_frame(
    client: Any,
    frame: Any,
    columns: list[str],
    cats: dict,
    label: str,
    weight: float | None,
    ppw: int,
) -> tuple[Any, list[int], list[int]]:
    """:func:`balance_stratified` of ``frame`` into encoded model rows (:func:`_model_rows`)."""
    import functools

    meta = matrix_meta(columns).assign(**{label: np.empty(0, np.float32)})
    if weight is not None:
        meta[_WEIGHT] = np.empty(0, np.float32)
    prepare = functools.partial(_model_rows, columns=columns, cats=cats, label=label, weight=weight)
    return balance_stratified(client, frame, label, ppw, prepare=prepare, meta=meta)


def _matrix(frame: Any, columns: list[str], device: str, lengths: list[int]) -> Any:
    x = frame[columns]
    if device != "cuda":
        return x
    import cupy

    arr = x.to_dask_array(lengths=lengths)
    return arr.map_blocks(cupy.asarray, dtype=np.float32, meta=cupy.empty((0, len(columns))))


def _vector(series: Any, device: str, lengths: list[int]) -> Any:
    series = series.astype("float32")
    if device != "cuda":
        return series
    import cupy

    arr = series.to_dask_array(lengths=lengths)
    return arr.map_blocks(cupy.asarray, dtype=np.float32, meta=cupy.empty((0,)))


def fit_xgboost(
    client: Any,
    train_frame: Any,
    valid_frame: Any | None,
    conf: Any,
    device: str,
    *,
    label: str = "is_fraud",
    seed: int = 0,
) -> TrainedModel:
    """Train XGBoost on the cluster (see :func:`fraud_dask.train.train`)."""
    import xgboost.dask as dxgb

    columns = feature_columns(train_frame.dtypes, conf, label)
    categorical = list(conf_value(conf, "categorical", []) or [])
    cats = learn_categories(train_frame, categorical, conf_value(conf, "categories", {}) or {})
    params = xgb_params(conf) | {"device": device, "seed": int(seed)}
    params.setdefault("nthread", 1)
    rounds = int(conf_value(conf, "num_boost_round", 100))
    stop = conf_value(conf, "early_stopping_rounds")
    ppw = int(conf_value(conf, "partitions_per_worker", 1))
    imbalance = conf_value(conf, "imbalance", "none")

    needed = [*columns, label]
    warnings: list[dict[str, Any]] = []
    n, pos = _label_counts(train_frame, label)
    if pos == 0 or pos == n:
        raise ValueError(
            f"train: the training period has {pos} fraud(s) among {n} rows; both classes are needed"
        )
    evals, valid_rows, valid_pos = None, 0, 0
    early = valid_frame is not None and stop is not None and int(stop) > 0
    if valid_frame is not None:
        valid_rows, valid_pos = _label_counts(valid_frame, label)
        if valid_pos == 0 or valid_pos == valid_rows:
            import dask.dataframe as dd

            message = (
                f"the early-stopping period holds {valid_pos} fraud(s) among {valid_rows} rows: "
                f"AUC-PR is undefined there, so early stopping is off and "
                f"model.num_boost_round={rounds} rounds are trained on the whole period"
            )
            log.warning("xgboost: %s", message)
            warnings.append({"kind": "validation_frauds", "message": message})
            train_frame = dd.concat([train_frame[needed], valid_frame[needed]])
            n, pos = n + valid_rows, pos + valid_pos
            early, valid_frame, valid_rows, valid_pos = False, None, 0, 0
    pos_weight = conf_value(conf, "pos_weight")
    pos_weight = float(pos_weight) if pos_weight is not None else (n - pos) / pos
    if imbalance == "scale_pos_weight":
        params["scale_pos_weight"] = pos_weight
    row_weight = pos_weight if imbalance == "weights" else None
    # The balanced partitions hold the encoded float32 matrix itself: the DMatrix reads them
    # without another pass over the raw rows.
    train_part, sizes, part_pos = _model_frame(
        client, train_frame[needed], columns, cats, label, row_weight, ppw
    )
    _warn_single_class(warnings, "training", part_pos, sizes)
    weight = _vector(train_part[_WEIGHT], device, sizes) if row_weight is not None else None
    types = feature_types(columns, cats)
    common = dict(feature_names=columns, feature_types=types, enable_categorical=bool(cats))
    log.info("xgboost: %d rows (%d frauds), %d inputs, device=%s", n, pos, len(columns), device)
    dtrain = dxgb.DaskQuantileDMatrix(
        client,
        _matrix(train_part, columns, device, sizes),
        _vector(train_part[label], device, sizes),
        weight=weight,
        max_bin=int(params.get("max_bin", 256)),
        **common,
    )
    if valid_frame is not None:
        valid_part, vsizes, vpos = _model_frame(
            client, valid_frame[needed], columns, cats, label, None, ppw
        )
        _warn_single_class(warnings, "early-stopping", vpos, vsizes)
        dvalid = dxgb.DaskQuantileDMatrix(
            client,
            _matrix(valid_part, columns, device, vsizes),
            _vector(valid_part[label], device, vsizes),
            ref=dtrain,
            max_bin=int(params.get("max_bin", 256)),
            **common,
        )
        # Only the later period is evaluated: the metric on the training rows would cost a pass
        # (and, for AUC-PR, a distributed sort) over them every round, for nothing.
        evals = [(dvalid, "valid")]
    started = time.perf_counter()
    out = dxgb.train(
        client,
        params,
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        early_stopping_rounds=int(stop) if early else None,
        verbose_eval=False,
    )
    booster = out["booster"]
    best = int(booster.best_iteration) if early else booster.num_boosted_rounds() - 1
    seconds = time.perf_counter() - started
    if early and best == 0:
        message = (
            f"early stopping chose round 1 of {booster.num_boosted_rounds()}: the validation "
            f"period ({valid_rows} rows, {valid_pos} frauds) did not improve after the first "
            "tree, so the model is a single tree; give early stopping a longer period "
            "(model.valid_days / model.valid_min_frauds) or check the labels"
        )
        log.warning("xgboost: %s", message)
        warnings.append({"kind": "best_round_1", "message": message})
    log.info(
        "xgboost: %d rounds in %.1f s%s",
        booster.num_boosted_rounds(),
        seconds,
        f", best round {best + 1} on the validation rows" if early else "",
    )
    info = {
        "rows": n,
        "frauds": pos,
        "valid_rows": valid_rows,
        "valid_frauds": valid_pos,
        "warnings": warnings,
        "pos_weight": pos_weight,
        "imbalance": imbalance,
        "params": params,
        "rounds_trained": booster.num_boosted_rounds(),
        "seconds": round(seconds, 2),
        "history": out.get("history", {}),
    }
    model = TrainedModel("xgboost", columns, cats, device, booster, best, None, info)
    if early and conf_value(conf, "refit", False):
        import dask.dataframe as dd

        refit_conf = _with(conf, num_boost_round=best + 1, early_stopping_rounds=None, refit=False)
        whole = dd.concat([train_frame[needed], valid_frame[needed]])
        refit = fit_xgboost(client, whole, None, refit_conf, device, label=label, seed=seed)
        refit.info |= {"early_stopping": info, "refit": True}
        refit.info["warnings"] = warnings + list(refit.info.get("warnings", []))
        return refit
    return model


def _warn_single_class(
    warnings: list[dict[str, Any]], period: str, frauds: list[int], sizes: list[int]
) -> None:
    """Note partitions that hold one class only (fewer frauds than partitions)."""
    lonely = [i for i, (p, m) in enumerate(zip(frauds, sizes, strict=True)) if p == 0 or p == m]
    if lonely:
        message = (
            f"{len(lonely)} of {len(sizes)} worker partitions of the {period} rows hold one class "
            f"only ({sum(frauds)} frauds for {len(sizes)} partitions)"
        )
        log.warning("xgboost: %s", message)
        warnings.append({"kind": "single_class_partition", "message": message})


def _with(conf: Any, **changes: Any) -> dict[str, Any]:
    import dataclasses

    from omegaconf import OmegaConf

    if dataclasses.is_dataclass(conf) and not isinstance(conf, type):
        base = OmegaConf.to_container(OmegaConf.structured(conf), resolve=True, enum_to_str=True)
    elif isinstance(conf, dict):
        base = dict(conf)
    else:
        base = OmegaConf.to_container(conf, resolve=True, enum_to_str=True)
    assert isinstance(base, dict)
    return base | changes


def fit_logistic(
    client: Any, train_frame: Any, conf: Any, *, label: str = "is_fraud", seed: int = 0
) -> TrainedModel:
    """Fit the logistic baseline with dask-ml on standardized numeric inputs.

    Categorical inputs are left out (the baseline is linear in the numeric inputs); missing
    values count as the training mean. ``C``, ``solver``, ``max_iter``, ``penalty`` and ``tol``
    come from ``baseline_params`` (or ``params`` when ``kind`` is logistic). dask-glm's L-BFGS
    stops when every component of the gradient of the loss summed over the rows is below
    ``tol`` (default 1e-4: far stricter than scikit-learn's, whose loss is a mean);
    ``tol_per_row`` instead sets ``tol`` to ``tol_per_row * rows``, scikit-learn's test.
    """
    import dask
    from dask_ml.linear_model import LogisticRegression

    categorical = set(conf_value(conf, "categorical", []) or [])
    columns = [c for c in feature_columns(train_frame.dtypes, conf, label) if c not in categorical]
    kind = conf_value(conf, "kind", "xgboost")
    given = conf_value(conf, "params" if kind == "logistic" else "baseline_params", {}) or {}
    lr_params = {"C": 1.0, "solver": "lbfgs", "max_iter": 200} | {
        k: v for k, v in given.items() if k in ("C", "solver", "max_iter", "tol", "penalty")
    }
    tol_per_row = given.get("tol_per_row")
    if tol_per_row is not None and "tol" in given:
        raise ValueError(
            f"logistic baseline: got tol={given['tol']!r} and tol_per_row={tol_per_row!r}; "
            "give one of them"
        )
    part, sizes = balance(client, train_frame[[*columns, label]], 1)
    x = part.map_partitions(encode_partition, columns, {}, meta=matrix_meta(columns))
    mean, std, n, pos = dask.compute(
        x.mean(), x.std(ddof=0), part[label].count(), part[label].sum()
    )
    if tol_per_row is not None:
        # dask-glm sums the loss over the rows, so its gradient test scales with them;
        # scikit-learn's tol applies to the mean loss: the same test is tol_per_row * rows.
        lr_params["tol"] = float(tol_per_row) * int(n)
    mean = np.array(mean.fillna(0.0), dtype=np.float64)
    scale = np.array(std.fillna(0.0), dtype=np.float64)
    constant = scale == 0
    scale[constant] = 1.0
    # Inputs constant over the training period carry no signal (and dask-glm rejects more than
    # one constant column): fit on the others, give them a zero coefficient.
    varying = [c for c, flat in zip(columns, constant, strict=True) if not flat]
    if not varying:
        raise ValueError(f"logistic baseline: every input is constant in training: {columns}")
    keep = ~constant
    z = x.map_partitions(
        lambda p: ((p - mean) / scale).fillna(0.0).astype("float64").loc[:, keep],
        meta=pd.DataFrame({c: pd.Series(dtype="float64") for c in varying}),
    ).to_dask_array(lengths=sizes)
    y = part[label].astype("float64").to_dask_array(lengths=sizes)
    # the solver passes over the matrix once per iteration: hold it in worker memory
    z, y = dask.persist(z, y)
    started = time.perf_counter()
    with pywarnings.catch_warnings():
        # dask-glm sets the deprecated `fuse_ave_width` config key on every fit: nothing a
        # user can act on
        pywarnings.filterwarnings("ignore", message=".*fuse_ave_width.*", category=FutureWarning)
        est = LogisticRegression(random_state=seed, **lr_params).fit(z, y)
    seconds = time.perf_counter() - started
    coef = {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "intercept": float(np.ravel(est.intercept_)[0]),
    }
    full = np.zeros(len(columns))
    full[keep] = np.asarray(est.coef_, dtype=float).ravel()
    coef["coef"] = full.tolist()  # in input order, zero for the constant inputs
    info = {
        "rows": int(n),
        "frauds": int(pos),
        "params": lr_params,
        "dropped": sorted(categorical),
        "constant": [c for c, flat in zip(columns, constant, strict=True) if flat],
        "seconds": round(seconds, 2),
    }
    log.info(
        "logistic baseline: %d rows, %d inputs, fitted in %.1f s", int(n), len(columns), seconds
    )
    return TrainedModel("logistic", columns, {}, "cpu", None, None, coef, info)
