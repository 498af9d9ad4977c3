"""Monitoring on Dask: drift, alert rate and maturing performance per client and period.

:func:`monitor_scores` takes a lazy frame of scored rows (the model's inputs, ``score``,
``ts``, the client, the label and its time when known) and a bundle's reference
(:mod:`fraud_dask.monitor.reference`), and gets everything from one ``dask.compute``: the rows
per (client, period, input, bin) in the reference's bins, the alerts per (client, period) at the
reference's thresholds, and the exact score table (rows, frauds, fraud amount per distinct
score) of the rows whose label is known by the report date. The measures, the performance
figures (:class:`fraud_dask.metrics.ScoreCurve`) and the rules
(:mod:`fraud_dask.monitor.rules`) are then small client-side work on those tables.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.metrics import ScoreCurve
from fraud_dask.monitor.drift import (
    SCORE,
    alert_rate_p_value,
    binned_counts,
    jensen_shannon,
    n_bins,
    psi,
    psi_p_value,
)
from fraud_dask.monitor.reference import DEFAULT_CLIENT, reference_counts, specs_of

log = logging.getLogger(__name__)

_DAY_NS = 86_400 * 10**9


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def period_starts(ts: pd.Series, freq: str) -> np.ndarray:
    """The start (int64 ns, UTC midnight) of each timestamp's period: its day, or the Monday
    of its week."""
    ns = (
        ts.dt.tz_convert("UTC").astype("int64").to_numpy()
        if ts.dt.tz is not None
        else (ts.astype("int64").to_numpy())
    )
    days = np.floor_divide(ns, _DAY_NS)
    if freq == "week":
        days = days - (days + 3) % 7  # 1970-01-01 was a Thursday: day 0 -> Monday -3
    return days * _DAY_NS


def prepare_partition(
    part: pd.DataFrame,
    *,
    freq: str,
    report_ns: int,
    delay_ns: int,
    client_col: str | None,
    has_label: bool,
    amount_col: str | None,
) -> pd.DataFrame:
    """One partition with ``client`` (text), ``period`` (int64 ns) and ``known`` (the label is
    known by the report date: ``label_ts`` when the row has one, else ``ts`` plus the source's
    label delay), ``label`` and ``fraud_amount`` (0 without a label)."""
    out = part.copy()
    out["client"] = part[client_col].astype(str) if client_col else DEFAULT_CLIENT
    out["period"] = period_starts(part["ts"], freq)
    if has_label:
        ts_ns = part["ts"].astype("int64").to_numpy()
        known = ts_ns + delay_ns <= report_ns
        if "label_ts" in part.columns:
            lab = part["label_ts"]
            has = lab.notna().to_numpy()
            lab_ns = lab.astype("int64").to_numpy() if has.any() else np.zeros(len(part), "int64")
            known = np.where(has, lab_ns <= report_ns, known)
        out["known"] = known
        label = part["is_fraud"].fillna(0).astype(np.int64)
        out["label"] = label
        amount = part[amount_col].astype("float64") if amount_col else 0.0
        out["fraud_amount"] = amount * (label == 1)
    else:
        out["known"] = False
        out["label"] = np.int64(0)
        out["fraud_amount"] = 0.0
    return out


def _alert_table(part: pd.DataFrame, thresholds: list[float]) -> pd.DataFrame:
    cols = {
        "rows": np.ones(len(part), np.int64),
        "known": part["known"].astype(np.int64),
        "known_frauds": (part["known"] & (part["label"] == 1)).astype(np.int64),
        "frauds": part["label"].astype(np.int64),
    }
    for i, t in enumerate(thresholds):
        cols[f"t{i}"] = (part["score"] >= np.float32(t)).astype(np.int64)
    frame = pd.DataFrame({"client": part["client"], "period": part["period"], **cols})
    return frame.groupby(["client", "period"], sort=False).sum().reset_index()


def _fraud_cards(part: pd.DataFrame, card_col: str) -> pd.DataFrame:
    """The distinct (client, period, card) of the labelled frauds of a partition."""
    rows = part.loc[part["known"] & (part["label"] == 1), ["client", "period", card_col]]
    return rows.drop_duplicates().rename(columns={card_col: "card"})


def _known_rows(part: pd.DataFrame) -> pd.DataFrame:
    rows = part.loc[part["known"], ["client", "period", "score", "label", "fraud_amount"]]
    return rows.assign(score=rows["score"].astype("float64"))


def monitor_scores(
    scored: Any,
    reference: Mapping[str, Any],
    conf: Any,
    *,
    report_date: Any,
    label_delay_days: float,
    client_col: str | None = "client_id",
    amount_col: str | None = "amount",
    card_col: str = "card_id",
    expected_ap: Mapping[str, float | None] | None = None,
    extra: Sequence[Any] = (),
    covered: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Drift, alert rates and performance of scored rows against a bundle's reference.

    Parameters
    ----------
    scored : dask.dataframe.DataFrame
        Rows with ``ts``, ``score``, every input of the reference, and optionally the client
        column, ``is_fraud``, ``label_ts`` and ``amount_col``.
    reference : mapping
        The bundle's reference (``reference.json``).
    conf : MonitorConf
        Period length, measures and rules (``monitor``).
    report_date : str or Timestamp
        Labels known by this time count; periods mature by it.
    label_delay_days : float
        The source's label delay (rows without ``label_ts``; maturity).
    client_col, amount_col : str or None
        The client and amount columns (None or absent: one client / no fraud value).
    card_col : str
        The card column: frauds of one card are not independent, so the AP's standard error
        is widened by the square root of the labelled frauds per fraud card.
    expected_ap : mapping, optional
        Client -> test AP of the training folds (key ``*`` for every client), for the
        performance rule; default: the reference's ``test`` figures.
    extra : sequence, optional
        More lazy values computed in the same ``dask.compute`` (e.g. the source read's
        counts); their values are returned under ``_extra``.
    covered : (start, end), optional
        The monitored range; a period not wholly inside it is ``complete: false`` and no drift
        or alert-rate rule fires on it (a cut week's calendar inputs are not drift). Default:
        every period is complete. A period that holds rows of the reference's training
        ``period`` is ``in_sample: true``: the model was fitted on them, so its score there is
        not what new rows get, and no score-drift or alert-rate rule fires on it.

    Returns
    -------
    dict
        ``clients``, ``periods``, ``rows``, ``drift``, ``alert_rate``, ``performance``,
        ``alerts`` (see :func:`fraud_dask.monitor.rules.fire`).
    """
    import dask

    from fraud_dask.monitor.rules import expected_ap_of, fire

    freq = str(conf.freq)
    report = _utc(report_date)
    assert report is not None
    client_col = client_col if client_col and client_col in scored.columns else None
    has_label = "is_fraud" in scored.columns
    amount_col = amount_col if amount_col and amount_col in scored.columns else None
    specs = specs_of(reference)
    features = reference["features"]
    for c in [c for c in specs if c != SCORE and c not in scored.columns]:
        if features[c].get("source_column"):  # a source column this source lacks: not measured
            log.info("monitor: the rows have no %r column: its mix is not measured", c)
            specs.pop(c)
    missing = [c for c in specs if c != SCORE and c not in scored.columns]
    if missing:
        raise ValueError(f"monitor: input(s) {missing} of the reference missing from the rows")
    thresholds = [float(t["threshold"]) for t in reference["thresholds"]]
    kwargs: dict[str, Any] = {
        "freq": freq,
        "report_ns": int(report.value),
        "delay_ns": int(float(label_delay_days) * _DAY_NS),
        "client_col": client_col,
        "has_label": has_label,
        "amount_col": amount_col,
    }
    keep = [c for c in dict.fromkeys(
        ["ts", "score", *(c for c in specs if c != SCORE), client_col, "is_fraud", "label_ts",
         amount_col, card_col]) if c and c in scored.columns]  # fmt: skip
    rows = scored[keep]
    prepared = rows.map_partitions(
        prepare_partition, **kwargs, meta=prepare_partition(rows._meta, **kwargs)
    )
    keys = ["client", "period"]
    counts = prepared.map_partitions(
        binned_counts, specs, keys, meta=binned_counts(prepared._meta, specs, keys)
    )
    alert_meta = _alert_table(prepared._meta, thresholds)
    alerts = prepared.map_partitions(_alert_table, thresholds, meta=alert_meta)
    lazy = {"counts": counts, "alerts": alerts}
    if has_label:
        known = prepared.map_partitions(_known_rows, meta=_known_rows(prepared._meta))
        if card_col in prepared.columns:
            cards = prepared.map_partitions(
                _fraud_cards, card_col, meta=_fraud_cards(prepared._meta, card_col)
            )
            lazy["fraud_cards"] = cards
        lazy["table"] = known.groupby(["client", "period", "score"]).agg(
            n=("label", "count"),
            pos=("label", "sum"),
            fraud_amount=("fraud_amount", "sum"),
            split_out=1,
        )
    values = dask.compute(*lazy.values(), *extra)
    got = dict(zip(lazy, values[: len(lazy)], strict=True))
    counts_t = got["counts"].groupby([*keys, "feature", "bin"])["count"].sum()
    alerts_t = got["alerts"].groupby(keys).sum().sort_index()
    if not len(alerts_t):
        raise ValueError("monitor: no scored rows in the monitored period")
    table = got.get("table")
    table = table.reset_index() if table is not None else None

    length = pd.Timedelta(days=7 if freq == "week" else 1)
    lo, hi = (_utc(covered[0]), _utc(covered[1])) if covered else (None, None)

    def whole(period: Any) -> bool:
        first = pd.Timestamp(int(period), tz="UTC")
        return (lo is None or first >= lo) and (hi is None or first + length <= hi)

    fitted = reference.get("period") or {}
    fit_lo, fit_hi = _utc(fitted.get("start")), _utc(fitted.get("end"))

    def in_sample(period: Any) -> bool:
        """Whether the period holds rows the model was fitted on (its training period)."""
        if fit_lo is None or fit_hi is None:
            return False
        first = pd.Timestamp(int(period), tz="UTC")
        return first < fit_hi + pd.Timedelta(days=1) and first + length > fit_lo

    drift = _drift_rows(counts_t, alerts_t, reference, specs, conf)
    rates = _rate_rows(alerts_t, reference, conf)
    periods = set(alerts_t.index.get_level_values(1))
    complete = {_day(p): whole(p) for p in periods}
    fitted_on = {_day(p): in_sample(p) for p in periods}
    for row in [*drift, *rates]:
        row["complete"] = complete[row["period"]]
        row["in_sample"] = fitted_on[row["period"]]
    expected = dict(expected_ap) if expected_ap is not None else expected_ap_of(reference)
    clusters = None
    if got.get("fraud_cards") is not None:
        clusters = got["fraud_cards"].drop_duplicates().groupby(keys).size()
    performance = _performance_rows(
        table, alerts_t, conf, report, float(label_delay_days), freq, expected, clusters
    )
    out: dict[str, Any] = {
        "rows": int(alerts_t["rows"].sum()),
        "clients": sorted({str(c) for c in alerts_t.index.get_level_values(0)}),
        "periods": [_day(p) for p in sorted(set(alerts_t.index.get_level_values(1)))],
        "freq": freq,
        "report_date": report.isoformat(),
        "drift": drift,
        "alert_rate": rates,
        "performance": performance,
    }
    out["alerts"] = fire(out, reference, conf)
    out["_extra"] = list(values[len(lazy) :])
    return out


def _day(period_ns: Any) -> str:
    return pd.Timestamp(int(period_ns), tz="UTC").date().isoformat()


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _drift_rows(
    counts: pd.Series,
    alerts: pd.DataFrame,
    reference: Mapping[str, Any],
    specs: Mapping[str, Mapping[str, Any]],
    conf: Any,
) -> list[dict[str, Any]]:
    """One row per (client, period): rows, and per input and the score PSI, JS, p-value."""
    out = []
    for (client, period), rec in alerts.iterrows():
        n = int(rec["rows"])
        inputs: dict[str, dict[str, Any]] = {}
        for name, spec in specs.items():
            size = n_bins(spec)
            actual = np.zeros(size)
            try:
                part = counts.loc[(client, period, name)]
                actual[part.index.to_numpy(dtype=np.int64)] = part.to_numpy(dtype=np.float64)
            except KeyError:
                pass
            expected = reference_counts(reference, name, str(client))
            value = psi(expected, actual, float(conf.psi_epsilon))
            used = int(np.count_nonzero((expected > 0) | (actual > 0)))
            inputs[name] = {
                "kind": spec["kind"],
                "psi": _finite(value),
                "js": _finite(jensen_shannon(expected, actual))
                if spec["kind"] == "numeric"
                else None,
                "p_value": psi_p_value(value, float(expected.sum()), float(actual.sum()), used),
                "reference_rows": int(expected.sum()),
            }
            if name == SCORE:  # the score's bins travel for the report's distributions
                inputs[name]["actual"] = actual.astype(np.int64).tolist()
        score = inputs.pop(SCORE)
        out.append(
            {
                "client": str(client),
                "period": _day(period),
                "rows": n,
                "score": score,
                "features": inputs,
            }
        )
    return out


def _rate_rows(
    alerts: pd.DataFrame, reference: Mapping[str, Any], conf: Any
) -> list[dict[str, Any]]:
    """Alert rate at each reference threshold per (client, period), with the expected rate."""
    out = []
    for (client, period), rec in alerts.iterrows():
        n = int(rec["rows"])
        for i, t in enumerate(reference["thresholds"]):
            by_client = (t.get("by_client") or {}).get(str(client)) or {}
            expected = by_client.get("alert_rate")
            if expected is None or by_client.get("rows", 0) < int(conf.min_rows):
                expected = t.get("alert_rate")
            n_alerts = int(rec[f"t{i}"])
            rate = n_alerts / n if n else None
            ratio = (rate / expected) if rate is not None and expected else None
            out.append(
                {
                    "client": str(client),
                    "period": _day(period),
                    "threshold_name": t["name"],
                    "threshold": float(t["threshold"]),
                    "rows": n,
                    "alerts": n_alerts,
                    "alert_rate": rate,
                    "expected": expected,
                    "ratio": ratio,
                    "p_value": alert_rate_p_value(n_alerts, n, expected)
                    if expected is not None
                    else None,
                    "weekly_range": by_client.get("weekly_range"),
                }
            )
    return out


def ap_standard_error(part: pd.DataFrame, n_boot: int, seed: int) -> float | None:
    """Bootstrap standard error of the average precision of a score table (``score``, ``n``,
    ``pos``): each replicate draws every distinct score's frauds and genuine rows from Poisson
    laws with the observed counts (the Poisson bootstrap of the rows)."""
    t = part.groupby("score", sort=True)[["n", "pos"]].sum().iloc[::-1]
    pos = t["pos"].to_numpy(np.float64)
    neg = t["n"].to_numpy(np.float64) - pos
    if pos.sum() < 2 or n_boot < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        p = rng.poisson(pos)
        q = rng.poisson(neg)
        tps = np.cumsum(p)
        alerts = tps + np.cumsum(q)
        if tps[-1] == 0:
            continue
        precision = np.divide(tps, alerts, out=np.zeros(len(tps)), where=alerts > 0)
        values.append(float(np.sum(p / tps[-1] * precision)))
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _performance_rows(
    table: pd.DataFrame | None,
    alerts: pd.DataFrame,
    conf: Any,
    report: pd.Timestamp,
    delay_days: float,
    freq: str,
    expected: Mapping[str, float | None],
    fraud_cards: pd.Series | None = None,
) -> list[dict[str, Any]]:
    """Performance of each (client, period) on its rows with a known label, and maturity."""
    length = pd.Timedelta(days=7 if freq == "week" else 1)
    groups = (
        dict(list(table.groupby(["client", "period"], sort=False))) if table is not None else {}
    )
    out = []
    for (client, period), rec in alerts.iterrows():
        n, n_known = int(rec["rows"]), int(rec["known"])
        pending = (n - n_known) / n if n else None
        end = pd.Timestamp(int(period), tz="UTC") + length
        mature = bool(
            table is not None
            and end + pd.Timedelta(days=delay_days) <= report
            and pending is not None
            and pending <= float(conf.mature_max_pending)
        )
        row: dict[str, Any] = {
            "client": str(client),
            "period": _day(period),
            "rows": n,
            "labelled": n_known,
            "pending_share": pending,
            "mature": mature,
            "frauds_known": int(rec["known_frauds"]),
            "expected_ap": expected.get(str(client), expected.get("*")),
        }
        part = groups.get((client, period))
        if part is not None and len(part):
            curve = ScoreCurve(part[["score", "n", "pos", "fraud_amount"]])
            summary = curve.summary(float(conf.max_fpr), [float(conf.budget)])
            budget = summary["alert_budgets"][0]
            row |= {
                "average_precision": summary["average_precision"],
                "recall_at_fpr": summary["recall_at_fpr"],
                "precision_at_budget": budget["precision"],
                "recall_at_budget": budget["recall"],
                "fraud_value_caught": budget["fraud_value_caught"],
                "fraud_value_caught_at_fpr": summary["fraud_value_caught_at_fpr"],
            }
            ap, ref = row["average_precision"], row["expected_ap"]
            if (
                mature
                and ap is not None
                and ref is not None
                and ref - ap > float(conf.ap_drop)
                and row["frauds_known"] >= int(conf.min_frauds)
            ):
                se = ap_standard_error(part, int(conf.n_boot), int(conf.seed))
                n_cards = None
                if fraud_cards is not None and (client, period) in fraud_cards.index:
                    n_cards = int(fraud_cards.loc[(client, period)])
                if se is not None and n_cards:
                    se *= math.sqrt(max(row["frauds_known"] / n_cards, 1.0))
                row["ap_se"] = se
                row["fraud_cards"] = n_cards
        out.append(row)
    return out
