"""``task=features``: build the point-in-time features of a source and write them as Parquet.

Reads the canonical frame through :func:`fraud_dask.data.read_transactions` (repeated ``tx_id``
quarantined unless ``data.dedupe`` is off: one extra pass over ``tx_id``), builds the features
lazily (:func:`fraud_dask.features.build_features`) and writes them together with the read's
counts (rows in = kept + quarantined, by reason) in one ``dask.compute``: one pass over the data.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import FeaturesTaskConf, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


def output_path(cfg: Config) -> str:
    """Where the features go: ``features.output``, else ``<run_dir>/features``."""
    out = cfg.features.output
    return str(out) if out else f"{str(cfg.run_dir).rstrip('/')}/features"


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Build the features of ``cfg.data`` with ``cfg.features`` and write them.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config; uses ``cfg.data``, ``cfg.features`` (``output``, ``npartitions``),
        ``cfg.task`` (the workers' malloc thresholds meanwhile) and ``cfg.run_dir``;
        ``cfg.data.storage_options`` are used for the output too.
    client : distributed.Client
        The session's client; the work runs on its cluster.

    Returns
    -------
    dict
        ``rows`` (written, from the files' footers), ``rows_in``, ``rows_kept``,
        ``rows_quarantined``, ``by_reason`` (every reason, zeros included) and ``dedupe`` (of the
        source read), ``features`` (names), ``n_features``, ``skipped`` (optional specs whose
        columns are absent), ``output``, ``partitions``, ``seconds`` and ``rows_per_s``.

    Raises
    ------
    ValueError
        The config is invalid or a needed column is missing (named in the message).
    """
    from fraud_dask.cluster.malloc import worker_malloc
    from fraud_dask.data import read_transactions
    from fraud_dask.data.io import write_datasets
    from fraud_dask.features.build import build_features
    from fraud_dask.features.plan import make_plan

    started = time.perf_counter()
    conf = cfg.features
    opts = task_conf(cfg, FeaturesTaskConf)
    # The workers keep freed memory for reuse meanwhile (the duplicate pass, the shuffles and
    # the kernels make and drop partition-sized arrays); it goes back when the block ends.
    with worker_malloc(client, opts.worker_malloc_trim, opts.worker_malloc_mmap):
        read = read_transactions(cfg.data)
        frame = read.kept
        plan = make_plan(conf, list(frame.columns))
        for note in plan.skipped:
            log.warning("features: skipped optional spec %s", note)
        features = build_features(frame, conf)
        out = output_path(cfg)
        storage_options = dict(cfg.data.storage_options) or None
        log.info(
            "features: %d features over %d stages, %d partitions -> %s",
            len(plan.feature_names),
            len(plan.stages),
            features.npartitions,
            out,
        )
        # the counts share the write's compute: the source is read once
        rows, *values = write_datasets(
            [(features, out, None)], storage_options, extra=read.lazy_counts()
        )
    counts = read.counts(values)
    log.info("features %s: %s", cfg.data.name, counts.describe())
    seconds = time.perf_counter() - started
    return {
        "rows": int(rows),
        **counts.as_dict(),
        "features": plan.feature_names,
        "n_features": len(plan.feature_names),
        "skipped": plan.skipped,
        "output": out,
        "partitions": int(features.npartitions),
        "seconds": round(seconds, 3),
        "rows_per_s": round(int(rows) / seconds, 1) if seconds > 0 else None,
    }
