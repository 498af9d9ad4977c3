"""The training reference a bundle carries for monitoring: ``reference.json``.

At registration the newest fold's training rows are scored by the registered model and
described, per client, by binned distributions of every model input and of the score, plus the
decision thresholds and the alert rates they gave. Monitoring (:mod:`fraud_dask.monitor.run`)
counts new rows in the same bins. The format is plain JSON (``format:
fraud_dask.monitor.reference/1``), a few KB; ``docs/monitoring.md`` documents every field.

Computed on Dask over the persisted training rows in two small computes: first approximate
quantiles (dask's ``Series.quantile``: per-partition percentiles merged by weight), then exact
counts per client, input and bin (:func:`fraud_dask.monitor.drift.binned_counts` per partition,
the partition tables summed).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.monitor.drift import SCORE, binned_counts, n_bins

log = logging.getLogger(__name__)

FORMAT = "fraud_dask.monitor.reference/1"
FILE = "reference.json"
#: how the bin edges were found (written into the reference)
QUANTILES = "dask Series.quantile (approximate: per-partition percentiles merged by weight)"
#: the score's bin edges are at least this far apart in log-odds (see _score_edges)
SCORE_MIN_LOGIT_GAP = 0.25
#: rows a training week needs to count in an input's stability (week-to-week PSI)
STABILITY_MIN_ROWS = 500
#: categorical source columns monitored beside the model's inputs when the rows carry them
#: (``features.keep`` carries them through feature building): a shift in a client's mix
RAW_CATEGORICAL = ("category", "channel", "merchant_country", "country")
#: rows after the training period needed to take the score's reference on them
MIN_SCORE_ROWS = 1000
#: the client a source without a client column is counted under
DEFAULT_CLIENT = "default"


def _threshold_rows(part: pd.DataFrame, thresholds: Sequence[float]) -> pd.DataFrame:
    alerts = {f"t{i}": (part["score"] >= np.float32(t)).astype(np.int64) for i, t in
              enumerate(thresholds)}  # fmt: skip
    frame = pd.DataFrame(
        {"client": part["client"], "week": part["week"], "rows": 1, **alerts}, index=part.index
    )
    return frame.groupby(["client", "week"], observed=True, sort=False).sum().reset_index()


def _client_frame(frame: Any, client_col: str | None) -> Any:
    if client_col is None:
        return frame.assign(client=DEFAULT_CLIENT)
    return frame.assign(client=frame[client_col].astype(str))


def _with_week(part: pd.DataFrame) -> pd.DataFrame:
    from fraud_dask.monitor.run import period_starts

    return part.assign(week=period_starts(part["ts"], "week"))


def stability(
    weekly: pd.Series, spec: Mapping[str, Any], min_rows: int, weeks: set[int] | None
) -> dict[str, float]:
    """Per client, the largest PSI of one whole training week against the client's other
    training weeks, over the weeks with at least ``min_rows`` rows: how much the input moves by
    itself from week to week (inputs over a growing history, such as all-history target
    encodings or long risk windows, move a lot). ``weeks``: the whole weeks (None: all).

    Each week is compared with the rest, not with a whole that holds it: a monitored week is
    new rows, and an input that a few merchants or terminals dominate moves more from one week
    to an unseen one than a week does from a total it is part of."""
    from fraud_dask.monitor.drift import psi

    size = n_bins(spec)
    by_week: dict[str, dict[Any, np.ndarray]] = {}
    for (client, week, b), n in weekly.items():
        by_week.setdefault(str(client), {}).setdefault(week, np.zeros(size))[int(b)] += n
    out = {}
    for client, vectors in by_week.items():
        total = np.sum(list(vectors.values()), axis=0)
        values = [
            psi(total - v, v)
            for w, v in vectors.items()
            if v.sum() >= min_rows and (weeks is None or int(w) in weeks) and total.sum() > v.sum()
        ]
        out[client] = float(max(values)) if values else 0.0
    return out


def whole_weeks(period: Mapping[str, Any] | None) -> set[int] | None:
    """The weeks (start, int64 ns) that lie wholly inside ``period`` (``start``, ``end``
    inclusive days), or None when the period is unknown or holds no whole week."""
    if not period or not period.get("start") or not period.get("end"):
        return None
    first = pd.Timestamp(period["start"], tz="UTC")
    stop = pd.Timestamp(period["end"], tz="UTC") + pd.Timedelta(days=1)
    monday = first + pd.Timedelta(days=(7 - first.weekday()) % 7)
    out = set()
    while monday + pd.Timedelta(days=7) <= stop:
        out.add(int(monday.value))
        monday += pd.Timedelta(days=7)
    return out or None


def build_reference(
    frame: Any,
    model: Any,
    *,
    threshold: float,
    budgets: Sequence[float] = (0.01,),
    bins: int = 10,
    max_categories: int = 20,
    client_col: str = "client_id",
    period: Mapping[str, Any] | None = None,
    test: Mapping[str, Any] | None = None,
    label_inputs: Collection[str] = (),
    growing_inputs: Collection[str] = (),
    score_frame: Any = None,
    score_period: Mapping[str, Any] | None = None,
    score_rows: int | None = None,
) -> dict[str, Any]:
    """The monitoring reference of a model: its inputs on its training rows, its score and
    alert rates on the rows after them (out of sample) when given.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        The training rows (every model input; ``client_col`` when the source has clients).
    model : fraud_dask.train.Model
        The registered model (its ``columns`` and categorical ``categories``).
    threshold : float
        The decision threshold (``score.threshold``).
    budgets : sequence of float
        Alert budgets (shares of rows): the score threshold of each on the training rows is
        recorded with the decision threshold.
    bins : int
        Quantile bins of each numeric input and of the score.
    max_categories : int
        Categories kept per categorical input (the most frequent; the rest count as other).
    client_col : str
        The client column; a frame without it is one client, ``default``.
    period : mapping, optional
        The training period (``fold``, ``start``, ``end``) recorded with the reference.
    test : mapping, optional
        The test folds' figures recorded for the performance rule (``average_precision``,
        ``recall_at_fpr``, ``per_client``).
    label_inputs : collection of str
        Model inputs computed from labels (risk, target encoding): marked ``labels: true``.
    growing_inputs : collection of str
        Model inputs over the whole history (no window): marked ``grows: true``.
    score_frame : dask.dataframe.DataFrame, optional
        Rows the model was not fitted on (the period after its training rows): the score's
        bins, counts and stability and the thresholds' alert rates are taken on them, as new
        rows will score, when they hold at least ``MIN_SCORE_ROWS`` rows; otherwise (and when
        not given) on the training rows, where a fitted model scores its frauds higher.
    score_period : mapping, optional
        The period of ``score_frame`` (``start``, ``end``), recorded with the score.
    score_rows : int, optional
        The rows of ``score_frame`` when the caller knows them (else counted, one pass).

    Returns
    -------
    dict
        JSON-ready (see ``docs/monitoring.md``).
    """
    import dask

    if bins < 2:
        raise ValueError(f"monitor.bins: got {bins}, expected at least 2")
    has_client = client_col in frame.columns
    client = client_col if has_client else None
    cats = {c: list(v) for c, v in dict(model.categories).items() if c in model.columns}
    numeric = [c for c in model.columns if c not in cats]
    raw = [c for c in RAW_CATEGORICAL if c in frame.columns and c not in model.columns]
    weeks = whole_weeks(period)
    score_source, score_weeks = frame, weeks
    score_about: dict[str, Any] = {"rows": "training", **dict(period or {})}
    if score_frame is not None:
        n_after = int(len(score_frame)) if score_rows is None else int(score_rows)
        if n_after >= MIN_SCORE_ROWS:
            score_source, score_weeks = score_frame, whole_weeks(score_period)
            score_about = {"rows": "after_training", "count": n_after, **dict(score_period or {})}
        else:
            log.info(
                "monitoring reference: %d rows after the training period (< %d): the score's "
                "reference is taken on the training rows",
                n_after,
                MIN_SCORE_ROWS,
            )
    # The inputs are not persisted: ``frame`` is usually a selection of a persisted (and, at
    # scale, partly spilled) feature frame, and a copy of its rows would only spill more. They
    # are read twice (the quantiles, then the counts), each partition once per pass.
    inputs = _client_frame(frame, client)[["client", "ts", *model.columns, *raw]]
    inputs = inputs.map_partitions(_with_week, meta=_with_week(inputs._meta))
    scored = model.score(_client_frame(score_source, client))[["client", "ts", "score"]]
    started = time.perf_counter()
    scored = scored.map_partitions(_with_week, meta=_with_week(scored._meta)).persist()
    seconds: dict[str, float] = {}
    try:
        qs = [i / bins for i in range(1, bins)]
        budget_qs = [1.0 - float(b) for b in budgets]
        lazy = column_quantiles(inputs, numeric, qs)
        lazy.append(scored["score"].quantile(qs + budget_qs))
        lazy.append(inputs.groupby("client", observed=True).size())
        lazy.extend(inputs[c].astype(str).value_counts() for c in raw)
        found = dask.compute(*lazy)
        seconds["edges"] = time.perf_counter() - started
        seen = found[len(found) - len(raw) :]
        found = found[: len(found) - len(raw)]
        rows_by_client = found[-1]
        specs: dict[str, dict[str, Any]] = {}
        for col, values in zip(numeric, found[:-2], strict=True):
            specs[col] = {"kind": "numeric", "edges": _edges(values)}
        for col, values in cats.items():
            specs[col] = {"kind": "categorical", "categories": [str(v) for v in values]}
        for col, counts_of in zip(raw, seen, strict=True):
            values = counts_of[counts_of.index != "nan"].sort_index().index
            specs[col] = {"kind": "categorical", "categories": [str(v) for v in values]}
        score_q = np.asarray(found[-2], dtype=np.float64)
        score_spec = {SCORE: {"kind": "numeric", "edges": _score_edges(_edges(score_q[: len(qs)]))}}
        thresholds: list[dict[str, Any]] = [
            {"name": "decision", "threshold": float(threshold), "source": "score.threshold"}
        ] + [
            {"name": f"budget_{b:g}", "threshold": float(t), "source": f"alert budget {b:g}"}
            for b, t in zip(budgets, score_q[len(qs) :], strict=True)
        ]
        values_t = [t["threshold"] for t in thresholds]
        keys = ["client", "week"]
        in_lazy = inputs.map_partitions(
            binned_counts, specs, keys, meta=binned_counts(inputs._meta, specs, keys)
        )
        sc_lazy = scored.map_partitions(
            binned_counts, score_spec, keys, meta=binned_counts(scored._meta, score_spec, keys)
        )
        t_meta = _threshold_rows(scored._meta, values_t)
        alerts_lazy = scored.map_partitions(_threshold_rows, values_t, meta=t_meta)
        in_counts, sc_counts, alerts = dask.compute(in_lazy, sc_lazy, alerts_lazy)
        seconds["counts"] = time.perf_counter() - started - seconds["edges"]
    finally:
        del scored, inputs
    clients = {str(c): int(n) for c, n in rows_by_client.items()}
    total = int(sum(clients.values()))
    features: dict[str, dict[str, Any]] = {}
    weekly_alerts = alerts.groupby(["client", "week"], observed=True).sum()
    alerts = alerts.groupby("client", observed=True).sum().drop(columns="week")
    for table, these, its_weeks in (
        (in_counts, specs, weeks),
        (sc_counts, score_spec, score_weeks),
    ):
        weekly = table.groupby(["feature", "client", "week", "bin"], observed=True)["count"].sum()
        counts = table.groupby(["client", "feature", "bin"], observed=True)["count"].sum()
        named = set(weekly.index.get_level_values(0))
        who = sorted(clients) if these is specs else sorted(str(c) for c in alerts.index)
        for name, spec in these.items():
            per_client = {c: _vector(counts, c, name, n_bins(spec)) for c in who}
            moved = (
                stability(weekly.loc[name], spec, STABILITY_MIN_ROWS, its_weeks)
                if name in named
                else {}
            )
            if spec["kind"] == "categorical":
                spec, per_client = _top_categories(spec, per_client, max_categories)
            features[name] = spec | {"counts": per_client, "stability_psi": moved}
            if name in label_inputs:
                features[name]["labels"] = True
            if name in growing_inputs:
                features[name]["grows"] = True
            if name in raw:
                features[name]["source_column"] = True
    features[SCORE]["rows"] = score_about
    scored_total = int(alerts["rows"].sum())
    for i, t in enumerate(thresholds):
        n_alerts = int(alerts[f"t{i}"].sum())
        t["alerts"] = n_alerts
        t["alert_rate"] = n_alerts / scored_total if scored_total else None
        t["by_client"] = {
            str(c): {
                "rows": int(r["rows"]),
                "alerts": int(r[f"t{i}"]),
                "alert_rate": float(r[f"t{i}"] / r["rows"]) if r["rows"] else None,
                "weekly_range": _weekly_range(weekly_alerts.loc[c], f"t{i}", score_weeks),
            }
            for c, r in alerts.iterrows()
        }
    log.info(
        "monitoring reference: %d rows, %d client(s), %d inputs; score on %s rows; scoring and "
        "bin edges %.1f s, counts %.1f s",
        total,
        len(clients),
        len(cats) + len(numeric) + len(raw),
        score_about["rows"],
        seconds["edges"],
        seconds["counts"],
    )
    return {
        "format": FORMAT,
        "period": dict(period or {}),
        "rows": total,
        "client_column": client_col if has_client else None,
        "clients": clients,
        "bins": bins,
        "quantiles": QUANTILES,
        "score": features.pop(SCORE),
        "features": features,
        "thresholds": thresholds,
        "test": dict(test or {}),
    }


def _weekly_range(rows: pd.DataFrame, column: str, weeks: set[int] | None) -> list[float] | None:
    """Lowest and highest alert rate of the client's whole training weeks with enough rows."""
    keep = rows[rows["rows"] >= STABILITY_MIN_ROWS]
    if weeks is not None:
        keep = keep[[int(w) in weeks for w in keep.index]]
    if not len(keep):
        return None
    rates = keep[column] / keep["rows"]
    return [float(rates.min()), float(rates.max())]


def _score_edges(edges: list[float], gap: float = SCORE_MIN_LOGIT_GAP) -> list[float]:
    """The score's edges, each at least ``gap`` apart from the previous kept one in log-odds.

    A tree model's scores sit on a few values; quantile edges a hair apart (0.0119, 0.0123)
    would make a move of a thousandth of probability, which changes no decision, a large PSI.
    """
    kept: list[float] = []
    last = -math.inf
    for edge in edges:
        p = min(max(edge, 1e-12), 1 - 1e-12)
        logit = math.log(p / (1 - p))
        if logit - last >= gap:
            kept.append(edge)
            last = logit
    return kept


def _partition_percentiles(
    part: pd.DataFrame, columns: Sequence[str], calc_qs: np.ndarray
) -> list[tuple[Any, int]]:
    # dask's own percentiles of a pandas Series (what Series.quantile runs per partition)
    from dask.dataframe.backends import percentile

    return [percentile(part[c].dropna(), calc_qs) for c in columns]


def _merged_quantiles(
    chunks: Sequence[list[tuple[Any, int]]], i: int, q: np.ndarray, calc_qs: np.ndarray, name: str
) -> pd.Series:
    from dask.array.percentile import merge_percentiles

    vals = [chunk[i] for chunk in chunks]
    merged = merge_percentiles(q * 100, [calc_qs] * len(vals), vals, "lower", None, False)
    return pd.Series(merged, index=q, name=name)


def column_quantiles(frame: Any, columns: Sequence[str], qs: Sequence[float]) -> list[Any]:
    """Lazy quantiles of many columns of a Dask frame, reading each partition once.

    The same computation as ``frame[c].quantile(qs)`` for every column (Dask's percentiles of
    each partition at ``qs`` plus 0 and 100, merged with ``merge_percentiles``), but one task
    per partition computes them for every column: a quantile graph per column loads every
    partition once per column, which on a spilled frame reads it from disk as many times.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
    columns : sequence of str
    qs : sequence of float
        Quantiles in [0, 1].

    Returns
    -------
    list of dask.delayed.Delayed
        One ``pandas.Series`` (indexed by the sorted ``qs``) per column, in ``columns`` order.
    """
    import dask

    if not columns:
        return []
    q = np.sort(np.asarray(qs, dtype=np.float64), kind="mergesort")
    calc_qs = np.pad(q * 100, 1, mode="constant")
    calc_qs[-1] = 100
    cols = list(columns)
    per_part = [
        dask.delayed(_partition_percentiles, pure=True)(part, cols, calc_qs)
        for part in frame[cols].to_delayed()
    ]
    return [
        dask.delayed(_merged_quantiles, pure=True)(per_part, i, q, calc_qs, c)
        for i, c in enumerate(cols)
    ]


def _edges(values: Any) -> list[float]:
    """Sorted distinct finite quantile values: the interior bin edges."""
    x = np.asarray(values, dtype=np.float64)
    return [float(v) for v in np.unique(x[np.isfinite(x)])]


def _vector(counts: pd.Series, client: str, feature: str, size: int) -> list[int]:
    out = np.zeros(size, dtype=np.int64)
    try:
        part = counts.loc[(client, feature)]
    except KeyError:
        return out.tolist()
    out[part.index.to_numpy(dtype=np.int64)] = part.to_numpy(dtype=np.int64)
    return out.tolist()


def _top_categories(
    spec: dict[str, Any], per_client: dict[str, list[int]], keep: int
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Keep the ``keep`` most frequent categories; fold the others into the "other" bin."""
    cats = list(spec["categories"])
    if len(cats) <= keep:
        return spec, per_client
    total = np.sum([np.asarray(v) for v in per_client.values()], axis=0)
    order = np.argsort(-total[: len(cats)], kind="stable")[:keep]
    order = np.sort(order)
    out = {}
    for client, vec in per_client.items():
        v = np.asarray(vec, dtype=np.int64)
        other = v[: len(cats)].sum() - v[order].sum() + v[len(cats)]
        out[client] = [*v[order].tolist(), int(other), int(v[len(cats) + 1])]
    return {"kind": "categorical", "categories": [cats[i] for i in order]}, out


def dumps(reference: Mapping[str, Any]) -> bytes:
    """The reference as the bytes of ``reference.json`` (sorted keys, indented)."""
    import json

    return (json.dumps(reference, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def check_reference(reference: Any, where: str = FILE) -> dict[str, Any]:
    """``reference`` if it is a reference this version reads, else a ValueError naming why."""
    if not isinstance(reference, Mapping) or reference.get("format") != FORMAT:
        got = reference.get("format") if isinstance(reference, Mapping) else type(reference)
        raise ValueError(f"{where}: format {got!r}, expected {FORMAT!r}")
    for key in ("score", "features", "thresholds", "clients"):
        if key not in reference:
            raise ValueError(f"{where}: no {key!r} in the reference")
    return dict(reference)


def reference_counts(reference: Mapping[str, Any], name: str, client: str) -> np.ndarray:
    """The reference counts of input ``name`` (or the score, :data:`SCORE`) for ``client``;
    a client the reference does not know gets the counts summed over every client."""
    spec = reference["score"] if name == SCORE else reference["features"][name]
    counts = spec["counts"]
    if client in counts:
        return np.asarray(counts[client], dtype=np.float64)
    return np.sum([np.asarray(v, dtype=np.float64) for v in counts.values()], axis=0)


def specs_of(reference: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Input (and :data:`SCORE`) -> bin spec without the counts."""
    out = {
        name: {k: v for k, v in spec.items() if k != "counts"}
        for name, spec in reference["features"].items()
    }
    out[SCORE] = {k: v for k, v in reference["score"].items() if k != "counts"}
    return out


def test_figures(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The training folds' test figures a reference keeps: the mean AP and recall at FPR over
    the folds, and each client's mean AP over the folds where it had frauds."""
    test = metrics.get("test") or {}
    out: dict[str, Any] = {
        k: test.get(k) for k in ("average_precision", "recall_at_fpr", "roc_auc")
    }
    details = (metrics.get("details") or {}).get(metrics.get("model")) or {}
    per_client: dict[str, list[float]] = {}
    for fold in details.values():
        for client, figures in (fold.get("per_client") or {}).items():
            if figures.get("average_precision") is not None:
                per_client.setdefault(str(client), []).append(figures["average_precision"])
    out["per_client"] = {
        c: {"average_precision": float(np.mean(v)), "folds": len(v)}
        for c, v in sorted(per_client.items())
    }
    return out


def _outputs(features: Any, keep: Any) -> list[str]:
    from fraud_dask.features.plan import make_plan, spec_columns

    plan = make_plan(features, spec_columns(features))
    return [name for s in plan.stages for op in s.ops if keep(op) for _, name in op.outputs]


def label_fed_inputs(features: Any) -> list[str]:
    """The outputs of a features config computed from labels (risk, target encoding)."""
    return _outputs(features, lambda op: op.reads_labels)


def growing_inputs(features: Any) -> list[str]:
    """The outputs of a features config over the whole history (no window: all-history
    frequency and target encodings), which grow with the source's age."""
    return _outputs(features, lambda op: op.reach is None)


def registration_reference(
    cfg: Any,
    rows: Any,
    model: Any,
    metrics: Mapping[str, Any],
    period: Mapping[str, Any],
    after: Any = None,
    after_period: Mapping[str, Any] | None = None,
    after_rows: int | None = None,
) -> bytes:
    """``reference.json`` of a model being registered: :func:`build_reference` on its training
    rows (and its score on ``after``, the rows of ``after_period`` that followed them) with the
    run's decision threshold (``score.threshold``), the ``monitor`` bins and the test figures
    of ``metrics``; ``after_rows``: the rows of ``after`` when known."""
    ref = build_reference(
        rows,
        model,
        threshold=float(cfg.score.threshold),
        budgets=(float(cfg.monitor.budget),),
        bins=int(cfg.monitor.bins),
        max_categories=int(cfg.monitor.max_categories),
        period={k: period.get(k) for k in ("fold", "start", "end")},
        test=test_figures(metrics),
        label_inputs=label_fed_inputs(cfg.features),
        growing_inputs=growing_inputs(cfg.features),
        score_frame=after,
        score_period=after_period,
        score_rows=after_rows,
    )
    return dumps(ref)
