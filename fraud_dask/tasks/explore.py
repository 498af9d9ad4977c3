"""``task=explore``: emerging risk - segments whose fraud rose, and where the champion misses.

Reads ``data`` over a baseline window and the recent window after it (``explore`` group:
``recent_days`` before the data's end and ``baseline_days`` before that, or explicit dates),
counts rows, frauds (cards or rows) and fraud value per segment of every segment column the
source has (client, merchant, terminal, category, country, BIN, hour band...) with Dask
group-bys, and ranks the segments by an exact one-sided test of a rise in their fraud rate
beyond the source's overall change, with Benjamini-Hochberg control of the false-discovery
rate (:mod:`fraud_dask.explore.stats`). With ``explore.misses`` it also scores the recent
window with ``registry.version`` of ``registry.name`` (default: the champion) and ranks
segments by the fraud value missed at ``score.threshold``. The tables go to ``metrics.json``
(``emerging``, ``misses``) and ``explore.html``.

Example::

    python -m fraud_dask task=explore explore.recent_days=7 explore.columns=[category,merchant_id]
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)

EMERGING_FIELDS = [
    "column",
    "value",
    "n_base",
    "n_recent",
    "frauds_base",
    "frauds_recent",
    "fraud_rows_base",
    "fraud_rows_recent",
    "value_base",
    "value_recent",
    "rate_base",
    "rate_recent",
    "lift",
    "expected_recent",
    "excess_frauds",
    "excess_value",
    "p",
    "q",
    "strength",
    "significant",
]
MISSES_FIELDS = [
    "column",
    "value",
    "rows",
    "frauds",
    "caught",
    "recall",
    "fraud_value",
    "caught_value",
    "missed_value",
    "value_recall",
]


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Rank the segments of ``cfg.data`` by the rise of their fraud, and by the model's misses.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        Uses ``data``, ``explore``, ``registry`` and ``score.threshold`` (for the misses) and
        ``run_dir``.
    client : distributed.Client
        The session's client; the work runs on its cluster.

    Returns
    -------
    dict
        ``windows``, ``columns``, ``unit``, ``totals`` (rows, fraud rows and value per window),
        ``segments``, ``tested``, ``significant``, ``fdr``, ``emerging`` (the top
        ``explore.top`` segments, ranked), ``misses`` (the top segments by missed fraud value,
        or null) with ``misses_note``, ``model``, ``report``, ``seconds`` and the read's
        ``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason``, ``dedupe``.
    """
    import dask

    from fraud_dask.data import load_transactions, read_transactions
    from fraud_dask.explore.report import write_explore_report
    from fraud_dask.explore.run import rank_segments, records, resolve_windows

    started = time.perf_counter()
    conf = cfg.explore
    data_end = None
    if conf.recent_end is None:
        # only the newest timestamp is wanted: the duplicate pass would change nothing
        with dask.config.set(scheduler=client):
            ts = load_transactions(cfg.data, columns=["ts"], dedupe=False)["ts"]
            data_end = ts.max().compute()
    windows = resolve_windows(conf, data_end)
    read = read_transactions(cfg.data, start=windows.baseline_start, end=windows.recent_end)
    log.info(
        "explore %s: baseline %s..%s, recent ..%s",
        cfg.data.name,
        windows.baseline_start.date(),
        windows.recent_start.date(),
        windows.recent_end.date(),
    )
    with dask.config.set(scheduler=client):
        ranked = rank_segments(read.kept, conf, windows, extra=read.lazy_counts())
    counts = read.counts(ranked["extra"]).check("explore")
    table = ranked["table"]
    out: dict[str, Any] = {
        "windows": windows.as_dict(),
        "columns": ranked["columns"],
        "unit": str(conf.unit),
        "totals": ranked["totals"],
        "segments": ranked["segments"],
        "tested": ranked["tested"],
        "significant": ranked["significant"],
        "fdr": conf.fdr,
        "emerging": records(table.head(conf.top), EMERGING_FIELDS),
        "misses": None,
        "misses_note": None,
        "model": None,
    }
    missed = None
    if conf.misses:
        missed, note, model = _misses(cfg, client, ranked["columns"], windows)
        out["misses_note"], out["model"] = note, model
        if missed is not None:
            out["misses"] = records(missed.head(conf.top), MISSES_FIELDS)
    if conf.report:
        notes = [
            f"source {cfg.data.name}: baseline {windows.baseline_start.date()} to "
            f"{windows.recent_start.date()}, recent to {windows.recent_end.date()} (exclusive)",
            f"{ranked['tested']} of {ranked['segments']} segments tested (at least "
            f"{conf.min_frauds} frauds, counted as {conf.unit}); exact one-sided test of a rise "
            "beyond the source's overall change, Benjamini-Hochberg over all of them",
        ]
        if out["model"]:
            notes.append(
                f"misses: {out['model']['name']} v{out['model']['version']} at threshold "
                f"{cfg.score.threshold:g} on the recent window"
            )
        elif out["misses_note"]:
            notes.append(f"misses: {out['misses_note']}")
        emerging_rows = records(table.head(conf.top), EMERGING_FIELDS)
        out["report"] = str(
            write_explore_report(
                cfg.run_dir,
                emerging_rows,
                out["misses"],
                notes=notes,
                fdr=conf.fdr,
            )
        )
    out.update(counts.as_dict())
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def _misses(
    cfg: Config, client: Client, columns: list[str], windows: Any
) -> tuple[Any, str | None, dict[str, Any] | None]:
    import dask

    from fraud_dask.explore.run import champion_misses
    from fraud_dask.registry import Registry, RegistryLookupError

    reg = Registry.from_conf(cfg.registry)
    try:
        bundle = reg.load(str(cfg.registry.name), str(cfg.registry.version))
    except RegistryLookupError as exc:
        note = f"no model to score with ({exc})"
        log.warning("explore: misses skipped: %s", note)
        return None, note, None
    with dask.config.set(scheduler=client):
        missed = champion_misses(
            cfg.data, bundle, columns, windows, threshold=float(cfg.score.threshold)
        )
    return missed, None, {"name": bundle.name, "version": bundle.version}
