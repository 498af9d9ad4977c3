"""``monitor.parquet``: a monitoring run's measures as one long table, for SQL and notebooks.

``task=monitor`` writes it beside ``metrics.json``; the ``monitor`` view of ``task=sql``
(``sql.monitor``) reads it. One row per client, period, measured thing and measure:

- ``client_id`` (string): the client (``default`` on a one-client source);
- ``period`` (date): the period's first day (UTC; Monday for ``monitor.freq=week``);
- ``kind`` (string): ``drift``, ``alert_rate`` or ``performance``;
- ``name`` (string): for ``drift`` the input (``score`` for the model's score), for
  ``alert_rate`` the threshold's name (``decision``, ``budget_0.01``...), for
  ``performance`` the metric;
- ``measure`` (string): ``psi``, ``js``, ``p_value`` (drift); ``alert_rate``, ``expected``,
  ``ratio``, ``alerts``, ``p_value`` (alert rate); ``value`` (performance);
- ``value`` (double): the figure (null where it could not be measured);
- ``rows`` (int64): rows of the client in the period;
- ``complete`` (bool): the period lies wholly inside the monitored range (drift and
  alert-rate rules fire on complete periods only);
- ``in_sample`` (bool): the period holds rows the model was fitted on (no score-drift or
  alert-rate rule fires on it);
- ``pending_share`` (double): share of the period's rows whose label is not known by the
  report date;
- ``mature`` (bool): the period's labels are complete by the source's label delay;
- ``alert`` (bool): a rule fired on this (kind, name, client, period).

Example with ``task=sql``::

    python -m fraud_dask task=sql sql.monitor=outputs/.../monitor.parquet \\
      sql.query="SELECT client_id, period, value FROM monitor
                 WHERE kind='drift' AND name='score' AND measure='psi' ORDER BY value DESC"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FILE = "monitor.parquet"

#: the performance figures of a period that become rows (``kind = performance``)
PERFORMANCE = (
    "average_precision",
    "recall_at_fpr",
    "precision_at_budget",
    "recall_at_budget",
    "fraud_value_caught",
    "fraud_value_caught_at_fpr",
    "expected_ap",
    "labelled",
    "frauds_known",
)

SCHEMA = pa.schema(
    [
        ("client_id", pa.string()),
        ("period", pa.date32()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("measure", pa.string()),
        ("value", pa.float64()),
        ("rows", pa.int64()),
        ("complete", pa.bool_()),
        ("in_sample", pa.bool_()),
        ("pending_share", pa.float64()),
        ("mature", pa.bool_()),
        ("alert", pa.bool_()),
    ]
)

#: alert kind -> the table's kind
_KIND = {
    "score_drift": "drift",
    "feature_drift": "drift",
    "alert_rate": "alert_rate",
    "performance": "performance",
}


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def results_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """The long table of a :func:`fraud_dask.monitor.run.monitor_scores` result (its
    ``drift``, ``alert_rate``, ``performance`` and ``alerts``); columns as :data:`SCHEMA`."""
    fired = {
        (_KIND[a["kind"]], str(a["name"]), str(a["client_id"]), str(a["period"]))
        for a in result.get("alerts", [])
    }
    maturity = {
        (str(p["client"]), str(p["period"])): (p.get("pending_share"), p.get("mature"))
        for p in result.get("performance", [])
    }
    complete = {
        (str(r["client"]), str(r["period"])): (r.get("complete"), r.get("in_sample"))
        for r in [*result.get("drift", []), *result.get("alert_rate", [])]
    }
    rows: list[tuple[Any, ...]] = []

    def add(kind: str, name: str, rec: Mapping[str, Any], measures: Mapping[str, Any]) -> None:
        client, period = str(rec["client"]), str(rec["period"])
        pending, mature = maturity.get((client, period), (None, None))
        alert = (kind, name, client, period) in fired
        for measure, value in measures.items():
            rows.append(
                (
                    client,
                    period,
                    kind,
                    name,
                    measure,
                    _num(value),
                    int(rec["rows"]),
                    *complete.get((client, period), (None, None)),
                    _num(pending),
                    mature,
                    alert,
                )
            )

    for rec in result.get("drift", []):
        for name, m in [("score", rec["score"]), *rec["features"].items()]:
            add("drift", name, rec, {k: m.get(k) for k in ("psi", "js", "p_value")})
    for rec in result.get("alert_rate", []):
        keys = ("alert_rate", "expected", "ratio", "alerts", "p_value")
        add("alert_rate", str(rec["threshold_name"]), rec, {k: rec.get(k) for k in keys})
    for rec in result.get("performance", []):
        for metric in PERFORMANCE:
            if metric in rec:
                add("performance", metric, rec, {"value": rec[metric]})
    frame = pd.DataFrame(rows, columns=SCHEMA.names)
    frame["period"] = pd.to_datetime(frame["period"]).dt.date
    return frame


def write_results(run_dir: str | os.PathLike[str], result: Mapping[str, Any]) -> Path:
    """Write :func:`results_table` to ``<run_dir>/monitor.parquet`` (whole or not at all: a
    temporary file renamed into place)."""
    path = Path(run_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(results_table(result), schema=SCHEMA, preserve_index=False)
    partial = path.with_name(f".{FILE}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)
    return path
