"""``task=score``: batch-score a period with a registered model; Parquet out, by day.

Reads ``cfg.data`` through the data layer (validation, quarantine of bad and repeated ``tx_id``
rows, PAN hashing; the run reports rows in = kept + quarantined by reason), loads
``registry.version`` of ``registry.name`` (default: the champion), rebuilds the bundle's features
for the period ``[score.start, score.end)`` with the history they need, and writes ``tx_id``,
``ts``, ``card_id``, ``client_id``, ``amount`` (and the label when the source has it), ``score``,
``alert`` (``score >= score.threshold``), ``reason_1..score.top_reasons`` and ``model_version``
to ``score.output`` (default ``<run_dir>/scores``), partitioned by day.

With ``score.stage_features`` (the default) this runs in two computes: the period's features
(model inputs and carried columns) are written to a hidden staging dataset beside the output,
with the reads' counts (:func:`fraud_dask.score.batch.staged_features`), then scored from those
files and written; the staging dataset is removed however the run ends, and the output is only
replaced once every score is written. Off: one graph from the source to the scores.

Example::

    python -m fraud_dask task=score score.start=2025-03-01 score.end=2025-03-08
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from fraud_dask.tasks import ScoreTaskConf, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


def output_path(cfg: Config) -> str:
    """``score.output``, else ``task.output``, else ``<run_dir>/scores``."""
    out = cfg.score.output or task_conf(cfg, ScoreTaskConf).output
    return str(out) if out else f"{str(cfg.run_dir).rstrip('/')}/scores"


def period(cfg: Config) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """The scoring period: ``score.start`` (default: the data's last day) and ``score.end``."""
    from fraud_dask.data import load_transactions
    from fraud_dask.score.batch import _utc

    start, end = _utc(cfg.score.start), _utc(cfg.score.end)
    if start is None:
        # only the last timestamp is wanted: the duplicate pass would change nothing but cost
        last = load_transactions(cfg.data, columns=["ts"], dedupe=False)["ts"].max().compute()
        start = pd.Timestamp(last).floor("D")
        log.info("score.start not set: scoring the data's last day, %s", start.date())
    if end is not None and end <= start:
        raise ValueError(f"score: score.end ({end}) must be after score.start ({start})")
    return start, end


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Score ``cfg.data`` over the configured period and write the scores.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        Uses ``cfg.data``, ``cfg.registry`` (path, name, version), ``cfg.score`` (start, end,
        output, threshold, top_reasons, exact_recency, stage_features) and ``cfg.run_dir``.
    client : distributed.Client
        The session's client; the work runs on its cluster.

    Returns
    -------
    dict
        ``rows`` (written), ``alerts``, ``model`` (name and version), ``start``, ``end``,
        ``history_from``, ``output``, ``seconds``, ``rows_per_s``, and what the source reads
        (the period, its history and any older rows the recency features need) did:
        ``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``dedupe``.
    """
    from fraud_dask.data import total_counts
    from fraud_dask.data.io import write_datasets
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import score_features, score_period_read, staged_features

    started = time.perf_counter()
    reg = Registry.from_conf(cfg.registry)
    bundle = reg.load(str(cfg.registry.name), str(cfg.registry.version))
    start, end = period(cfg)
    top, threshold = int(cfg.score.top_reasons), float(cfg.score.threshold)
    exact_recency = bool(cfg.score.exact_recency)
    out = output_path(cfg)
    storage_options = dict(cfg.data.storage_options) or None
    log.info("score: %s v%d, %s..%s -> %s", bundle.name, bundle.version, start, end, out)
    if cfg.score.stage_features:
        # two passes: the features (and the reads' counts) to storage, then the scores from it
        with staged_features(
            cfg.data,
            bundle,
            start,
            end,
            near=out,
            storage_options=storage_options,
            exact_recency=exact_recency,
        ) as staged:
            scored = score_features(
                staged.frame, bundle.model, top=top, threshold=threshold, version=bundle.version
            )
            written, alerts = write_datasets(
                [(scored, out, ("day",))], storage_options, extra=[scored["alert"].sum()]
            )
        period_read, values = staged.period_read, staged.counts
    else:
        scored, period_read = score_period_read(
            cfg.data,
            bundle,
            start,
            end,
            top=top,
            threshold=threshold,
            exact_recency=exact_recency,
        )
        # the write, the alert count and the reads' counts share one compute: one pass
        written, alerts, *values = write_datasets(
            [(scored, out, ("day",))],
            storage_options,
            extra=[scored["alert"].sum(), *period_read.lazy_counts()],
        )
    counts = total_counts(period_read.reads, values)
    log.info("score %s: %s", cfg.data.name, counts.describe())
    cut = period_read.cut
    seconds = time.perf_counter() - started
    return {
        "rows": int(written),
        "alerts": int(alerts),
        "threshold": float(cfg.score.threshold),
        "model": {"name": bundle.name, "version": bundle.version},
        "start": start.isoformat(),
        "end": end.isoformat() if end is not None else None,
        "history_from": cut.isoformat() if cut is not None else None,
        "output": out,
        **counts.as_dict(),
        "seconds": round(seconds, 3),
        "rows_per_s": round(int(written) / seconds, 1) if seconds > 0 else None,
    }
