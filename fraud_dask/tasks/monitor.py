"""``task=monitor``: drift, alert rate and maturing performance of a registered model.

Loads ``registry.version`` (default: the champion) of ``registry.name`` and its training
reference (``reference.json``), reads ``data`` over ``[monitor.start, monitor.end)`` with the
history its features need, scores it, and compares each client and period (``monitor.freq``:
day or week) with the reference (:func:`fraud_dask.monitor.run.monitor_scores`, one pass over
the data). Labels count when known by ``monitor.report_date`` (``label_ts``, else ``ts`` plus
``data.label_delay_days``). The rules of the ``monitor`` group turn measures into ``alerts``
(``kind``, ``name``, ``client_id``, ``period``, ``value``, ``threshold``); ``monitor.html``
shows them first.

Example::

    python -m fraud_dask task=monitor monitor.start=2025-03-01 monitor.freq=day
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _bound(cfg: Config, key: str) -> pd.Timestamp | None:
    from fraud_dask.errors import UserError

    value = getattr(cfg.monitor, key)
    try:
        return _utc(value)
    except ValueError as exc:
        raise UserError(f"monitor.{key}: got {value!r}, expected an ISO date or time") from exc


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Monitor ``registry.version`` of ``registry.name`` on ``data`` over the configured period.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        Uses ``registry`` (path, name, version), ``data`` (the source, ``label_delay_days``),
        ``monitor`` (period, freq, report date, rules) and ``run_dir``.
    client : distributed.Client
        The session's client.

    Returns
    -------
    dict
        ``model``, ``start``, ``end``, ``report_date``, ``freq``, ``rows``, ``clients``,
        ``periods``, ``alerts``, ``drift``, ``alert_rate``, ``performance``, ``table`` (the
        measures as one long table, ``<run_dir>/monitor.parquet``: the ``monitor`` view of
        ``task=sql``), ``report``,
        ``seconds`` and the source reads' ``rows_in``, ``rows_kept``, ``rows_quarantined``,
        ``by_reason``, ``dedupe``.

    Raises
    ------
    UserError
        The version has no reference (registered before references existed), or the period
        is empty or inverted.
    """
    from fraud_dask.data import load_transactions, total_counts
    from fraud_dask.errors import UserError
    from fraud_dask.features.build import build_features
    from fraud_dask.monitor.config import check_monitor_conf
    from fraud_dask.monitor.reference import check_reference
    from fraud_dask.monitor.report import write_monitor_report
    from fraud_dask.monitor.run import monitor_scores
    from fraud_dask.monitor.table import write_results
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import read_period, rows_in_period

    started = time.perf_counter()
    check_monitor_conf(cfg.monitor)
    registry = Registry.from_conf(cfg.registry)
    bundle = registry.load(str(cfg.registry.name), str(cfg.registry.version))
    where = f"registry {registry.url}: {bundle.name} version {bundle.version}"
    if bundle.reference is None:
        raise UserError(
            f"{where} has no monitoring reference (reference.json; registered before bundles "
            "carried one): register the model again to monitor it"
        )
    reference = check_reference(bundle.reference, f"{where}/reference.json")
    conf = cfg.monitor
    start, end = _bound(cfg, "start"), _bound(cfg, "end")
    bounds = load_transactions(cfg.data, columns=["ts"], dedupe=False)["ts"]
    first, last = (pd.Timestamp(v) for v in client.compute([bounds.min(), bounds.max()], sync=True))
    if start is None:
        trained_to = (bundle.training or {}).get("end")
        start = _utc(trained_to) + pd.Timedelta(days=1) if trained_to else first.floor("D")
        log.info("monitor.start not set: from %s", start.date())
    if end is not None and end <= start:
        raise UserError(f"monitor: monitor.end ({end}) must be after monitor.start ({start})")
    if start > last:
        raise UserError(
            f"monitor: monitor.start {start.date()} is after the data's last row "
            f"({last}) in {cfg.data.path}"
        )
    report_date = _bound(cfg, "report_date")
    if report_date is None:
        report_date = last if end is None else min(last, end)
    stop = end if end is not None else last.floor("D") + pd.Timedelta(days=1)
    trained_from = _utc(reference["period"].get("start"))
    period = read_period(cfg.data, bundle.features, start, end)
    feats = build_features(period.frame, bundle.features)
    rows = rows_in_period(feats, start, end)
    scored = bundle.model.score(rows)
    log.info(
        "monitor: %s v%d on %s, %s..%s by %s, labels known by %s",
        bundle.name,
        bundle.version,
        cfg.data.name,
        start.date(),
        end.date() if end is not None else "the end",
        conf.freq,
        report_date,
    )
    result = monitor_scores(
        scored,
        reference,
        conf,
        report_date=report_date,
        label_delay_days=float(cfg.data.label_delay_days),
        client_col=reference.get("client_column") or "client_id",
        extra=period.lazy_counts(),
        # periods cut by the range, or before the training period (the source's first weeks,
        # where windows lack history), fire no drift or alert-rate rule
        covered=(max(start, trained_from) if trained_from is not None else start, stop),
    )
    counts = total_counts(period.reads, result.pop("_extra"))
    shown = 20  # the rest are in metrics.json and monitor.html
    for alert in result["alerts"][:shown]:
        log.warning(
            "monitor alert %s %s client %s period %s: %.4g (threshold %s)",
            alert["kind"],
            alert["name"],
            alert["client_id"],
            alert["period"],
            alert["value"],
            alert["threshold"],
        )
    if len(result["alerts"]) > shown:
        log.warning("monitor: %d more alert(s) in metrics.json", len(result["alerts"]) - shown)
    out: dict[str, Any] = {
        "model": {"name": bundle.name, "version": bundle.version},
        "start": start.isoformat(),
        "end": end.isoformat() if end is not None else None,
        **result,
        **counts.as_dict(),
    }
    out["table"] = str(write_results(cfg.run_dir, result))
    if conf.report:
        notes = [
            f"model {bundle.name} version {bundle.version}, trained "
            f"{reference['period'].get('start')}..{reference['period'].get('end')} "
            f"({reference['rows']} rows); data {cfg.data.name}",
            f"monitored {start.date()}..{end.date() if end is not None else last.date()} by "
            f"{conf.freq}; labels known by {report_date}; {result['rows']} rows",
            f"rules: PSI > {conf.psi_score} (score), > {conf.psi_feature} (inputs); alert rate "
            f"outside {conf.alert_rate_low}x-{conf.alert_rate_high}x; AP drop > {conf.ap_drop}; "
            f"each with >= {conf.min_rows} rows and p < {conf.p_value}",
        ]
        out["report"] = str(
            write_monitor_report(
                cfg.run_dir,
                result,
                reference,
                conf,
                title=f"fraud_dask monitor: {bundle.name} v{bundle.version} on {cfg.data.name}",
                notes=notes,
            )
        )
    out["seconds"] = round(time.perf_counter() - started, 2)
    log.info("monitor: %d alert(s) in %.1f s", len(result["alerts"]), out["seconds"])
    return out
