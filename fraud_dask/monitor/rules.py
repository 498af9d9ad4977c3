"""The monitoring rules (``monitor`` config): which measures become alerts.

Each firing rule is one entry of ``alerts`` in ``metrics.json``: ``kind`` (``score_drift``,
``feature_drift``, ``alert_rate``, ``performance``), ``name`` (the input, the score, the
threshold or the metric), ``client_id``, ``period`` (its first day), ``value`` and ``threshold``
(the rule's bound), plus the evidence (``rows``, ``p_value``...). A rule needs enough evidence
to fire, so that a small client-period's sampling noise does not raise alarms:

- ``score_drift`` / ``feature_drift``: PSI above ``monitor.psi_score`` / ``psi_feature`` and
  above ``monitor.stability_factor`` times the input's own week-to-week PSI within the training
  period (the reference's ``stability_psi``: inputs over a growing history move by themselves),
  in a client-period of at least ``monitor.min_rows`` rows, with a chi-square p-value below
  ``monitor.p_value`` (:func:`fraud_dask.monitor.drift.psi_p_value`); on a source with several
  clients the PSI must also exceed the other clients' median PSI of that input and period by
  the rule's bound (a move every client shares is not one client's drift). Inputs computed
  from labels (``labels: true`` in the reference: risk, target encoding) fire no
  ``feature_drift`` unless ``monitor.alert_label_inputs``: they move as labels arrive and as
  fraud happens, which the performance rule and ``task=explore`` watch; nor do inputs over the
  whole history (``grows: true``: all-history frequency and target encodings) unless
  ``monitor.alert_growing_inputs``: they grow with the source's age. A ``score_drift``
  fires only when an input of the same client and period fired ``feature_drift`` too, or when
  its PSI reaches ``monitor.psi_score_alone``: the score of a model fed by growing histories
  moves by itself on a young source;
- ``score_drift`` and ``alert_rate`` do not fire on a period that holds the model's own
  training rows (``in_sample``): a fitted model scores them as it will score no new row;
- ``alert_rate``: the rate at the decision threshold outside ``[alert_rate_low,
  alert_rate_high]`` times the reference's, at least ``min_rows`` rows, exact binomial p-value
  below ``p_value``, at least ``min_expected_alerts`` alerts expected, outside the client's
  weekly training rates widened by the band, and (several clients) outside that band relative
  to the other clients' median ratio too;
- ``performance``: a mature period whose AP is more than ``monitor.ap_drop`` below the
  training folds' test AP (the client's own when the bundle has it), with at least
  ``min_frauds`` labelled frauds and a drop larger than ``monitor.z`` bootstrap standard
  errors (widened for frauds that share a card).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

KINDS = ("score_drift", "feature_drift", "alert_rate", "performance")


def expected_ap_of(reference: Mapping[str, Any]) -> dict[str, float | None]:
    """Client -> the training folds' test AP (``*``: every client) from a reference."""
    test = reference.get("test") or {}
    out: dict[str, float | None] = {"*": test.get("average_precision")}
    for client, figures in (test.get("per_client") or {}).items():
        if isinstance(figures, Mapping) and figures.get("average_precision") is not None:
            out[str(client)] = float(figures["average_precision"])
    return out


def fire(
    result: Mapping[str, Any], reference: Mapping[str, Any], conf: Any
) -> list[dict[str, Any]]:
    """The alerts of a monitoring result (:func:`fraud_dask.monitor.run.monitor_scores`)."""
    min_rows, alpha = int(conf.min_rows), float(conf.p_value)
    alerts: list[dict[str, Any]] = []
    moved = {name: dict(spec.get("stability_psi") or {})
             for name, spec in reference["features"].items()}  # fmt: skip
    moved["score"] = dict(reference["score"].get("stability_psi") or {})
    factor = float(conf.stability_factor)
    quiet = {  # inputs that move by themselves: measured and shown, not alerted
        name
        for name, spec in reference["features"].items()
        if (spec.get("labels") and not conf.alert_label_inputs)
        or (spec.get("grows") and not conf.alert_growing_inputs)
    }
    # the PSI of every client, per period and input: the others' median is the shared drift
    shared: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for row in result["drift"]:
        if row["rows"] < min_rows or not row["complete"]:
            continue
        for name, m in [("score", row["score"]), *row["features"].items()]:
            if m["psi"] is not None:
                shared.setdefault((row["period"], name), []).append((row["client"], m["psi"]))
    for row in result["drift"]:
        if row["rows"] < min_rows or not row["complete"]:
            continue  # too few rows, or a period cut by the monitored range (calendar inputs)
        where = {"client_id": row["client"], "period": row["period"], "rows": row["rows"]}
        checks = []
        if not row.get("in_sample"):  # the model's own training rows score as no new row will
            checks.append(("score_drift", "score", row["score"], float(conf.psi_score)))
        checks += [
            ("feature_drift", name, m, float(conf.psi_feature))
            for name, m in row["features"].items()
        ]
        for kind, name, m, rule in checks:
            if name in quiet:
                continue  # from labels or over all history: measured, shown, not alerted
            value = m["psi"]
            own = moved.get(name, {})
            natural = own.get(row["client"], max(own.values(), default=0.0))
            bound = max(rule, factor * natural)
            if value is None or value <= bound or m["p_value"] >= alpha:
                continue
            others = [v for c, v in shared.get((row["period"], name), []) if c != row["client"]]
            common = float(np.median(others)) if others else 0.0
            if others and value - common <= rule:
                continue  # every client moved alike: not this client's drift
            alerts.append(
                {"kind": kind, "name": name, **where, "value": value, "threshold": bound}
                | {"measure": "psi", "js": m["js"], "p_value": m["p_value"]}
                | {"others_median": common if others else None}
            )
    # the score's drift needs one of the client's inputs drifting in the period too, or a PSI
    # beyond psi_score_alone: alone it is the inputs' own movement (growing histories)
    inputs_moved = {(a["client_id"], a["period"]) for a in alerts if a["kind"] == "feature_drift"}
    alone = float(conf.psi_score_alone)
    alerts = [
        a
        for a in alerts
        if a["kind"] != "score_drift"
        or (a["client_id"], a["period"]) in inputs_moved
        or a["value"] >= alone
    ]
    low, high = float(conf.alert_rate_low), float(conf.alert_rate_high)
    decision = [r for r in result["alert_rate"] if r["threshold_name"] == "decision"]
    ratios: dict[str, list[tuple[str, float]]] = {}
    for row in decision:
        if row["rows"] >= min_rows and row["ratio"] is not None:
            ratios.setdefault(row["period"], []).append((row["client"], row["ratio"]))
    for row in decision:
        if row["rows"] < min_rows or not row["complete"] or row.get("in_sample"):
            continue
        ratio, p = row["ratio"], row["p_value"]
        if ratio is None or p is None or p >= alpha or low <= ratio <= high:
            continue
        if row["expected"] * row["rows"] < float(conf.min_expected_alerts):
            continue
        seen = row.get("weekly_range")
        if seen and seen[0] * low <= row["alert_rate"] <= seen[1] * high:
            continue  # within what the client's training weeks gave, with the band's margin
        others = [v for c, v in ratios.get(row["period"], []) if c != row["client"]]
        if others and np.median(others) > 0 and low <= ratio / np.median(others) <= high:
            continue  # every client's rate moved alike (e.g. the model's in-sample rate)
        alerts.append(
            {
                "kind": "alert_rate",
                "name": row["threshold_name"],
                "client_id": row["client"],
                "period": row["period"],
                "rows": row["rows"],
                "value": row["alert_rate"],
                "threshold": [low * row["expected"], high * row["expected"]],
                "expected": row["expected"],
                "ratio": ratio,
                "p_value": p,
            }
        )
    for row in result["performance"]:
        se, ap, ref = row.get("ap_se"), row.get("average_precision"), row.get("expected_ap")
        if se is None or ap is None or ref is None:
            continue  # only mature periods with enough frauds and a large drop carry a SE
        if ref - ap > float(conf.ap_drop) and ref - ap > float(conf.z) * se:
            alerts.append(
                {
                    "kind": "performance",
                    "name": "average_precision",
                    "client_id": row["client"],
                    "period": row["period"],
                    "rows": row["rows"],
                    "value": ap,
                    "threshold": ref - float(conf.ap_drop),
                    "expected": ref,
                    "standard_error": se,
                    "frauds_known": row["frauds_known"],
                    "pending_share": row["pending_share"],
                }
            )
    order = {k: i for i, k in enumerate(KINDS)}
    alerts.sort(key=lambda a: (order[a["kind"]], a["client_id"], a["period"], a["name"]))
    return alerts
