"""``task=features``: build the point-in-time features of a source and write them as Parquet.

Loads the canonical frame through :func:`fraud_dask.data.load_transactions`, builds the features
lazily (:func:`fraud_dask.features.build_features`) and writes them with
:func:`fraud_dask.data.io.write_dataset` in one ``dask.compute``: one pass over the data.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def output_path(cfg: Any) -> str:
    """Where the features go: ``features.output``, else ``<run_dir>/features``."""
    out = cfg.features.get("output") if "features" in cfg else None
    return str(out) if out else f"{str(cfg.run_dir).rstrip('/')}/features"


def run(cfg: Any, client: Any) -> dict[str, Any]:
    """Build the features of ``cfg.data`` with ``cfg.features`` and write them.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The run config; uses ``cfg.data``, ``cfg.features`` (``output``, ``npartitions``) and
        ``cfg.run_dir``; ``cfg.data.storage_options`` are used for the output too.
    client : distributed.Client
        The session's client; the work runs on its cluster.

    Returns
    -------
    dict
        ``rows`` (written, from the files' footers), ``features`` (names), ``n_features``,
        ``skipped`` (optional specs whose columns are absent), ``output``, ``partitions``,
        ``seconds`` and ``rows_per_s``.

    Raises
    ------
    ValueError
        The config is invalid or a needed column is missing (named in the message).
    """
    from omegaconf import OmegaConf

    from fraud_dask.data import load_transactions
    from fraud_dask.data.io import write_dataset
    from fraud_dask.features.build import build_features
    from fraud_dask.features.config import as_features_conf
    from fraud_dask.features.plan import make_plan

    started = time.perf_counter()
    conf = as_features_conf(cfg.features)
    frame = load_transactions(cfg.data)
    plan = make_plan(conf, list(frame.columns))
    for note in plan.skipped:
        log.warning("features: skipped optional spec %s", note)
    features = build_features(frame, conf)
    out = output_path(cfg)
    options = cfg.data.get("storage_options") if "data" in cfg else None
    storage_options = OmegaConf.to_container(options, resolve=True) if options else None
    log.info(
        "features: %d features over %d stages, %d partitions -> %s",
        len(plan.feature_names),
        len(plan.stages),
        features.npartitions,
        out,
    )
    rows = write_dataset(features, out, partition_on=None, storage_options=storage_options)
    seconds = time.perf_counter() - started
    return {
        "rows": int(rows),  # type: ignore[arg-type]
        "features": plan.feature_names,
        "n_features": len(plan.feature_names),
        "skipped": plan.skipped,
        "output": out,
        "partitions": int(features.npartitions),
        "seconds": round(seconds, 3),
        "rows_per_s": round(int(rows) / seconds, 1) if seconds > 0 else None,  # type: ignore[arg-type]
    }
