"""``task=ingest``: read a source, check every row, write kept rows and the quarantine.

Kept rows go to a Parquet dataset partitioned by day, quarantined rows (with ``reason``,
``detail``, ``source_file``, ``source_row``) to a second dataset; both are written atomically in
one ``dask.compute`` (the source is read once, plus one pass for duplicate ``tx_id`` detection
when ``task.dedupe``, by default ``data.dedupe``, is on). Every run checks rows in = rows kept +
rows quarantined, from the written files' footers, and fails loudly if not.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fraud_dask.data.io import write_datasets
from fraud_dask.data.load import open_source
from fraud_dask.tasks import IngestTaskConf, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Ingest ``cfg.data`` into ``cfg.task.output`` (default ``<run_dir>/transactions``).

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config. Uses ``cfg.data`` (the source), ``cfg.run_dir``, and
        ``cfg.task.dedupe`` (bool; null: ``data.dedupe``, default True),
        ``cfg.task.output`` (str or null).
    client : distributed.Client
        The cluster session (the computation runs on its workers).

    Returns
    -------
    dict
        ``rows_in``, ``rows_kept``, ``rows_quarantined``, ``by_reason`` (every reason, zeros
        included), the output paths, ``seconds`` and ``rows_per_s``.

    Raises
    ------
    RuntimeError
        Rows in differ from rows kept + rows quarantined (nothing may be lost).
    ValueError
        Structural problems (see ``fraud_dask.data.load.open_source``), or no rows in range.
    """
    t0 = time.perf_counter()
    task = task_conf(cfg, IngestTaskConf)
    run_dir = str(cfg.run_dir)
    dedupe = task.dedupe
    output = task.output or f"{run_dir}/transactions"
    source = open_source(cfg.data)
    conf = source.conf
    quarantine = conf.quarantine_path or f"{run_dir}/quarantine"
    # The source's credentials go with outputs on the same store (e.g. all on one S3 endpoint).
    same = {_protocol(output), _protocol(quarantine)} == {_protocol(conf.path)}
    options = dict(conf.storage_options) if same and conf.storage_options else None
    if conf.storage_options and not same:
        raise ValueError(
            f"outputs ({output}, {quarantine}) are on another store than data.path "
            f"({conf.path}), whose storage_options would not apply to them"
        )
    frames = source.frames(dedupe=None if dedupe is None else bool(dedupe))
    n_kept, n_quarantined, *values = write_datasets(
        [(frames.kept, output, ("day",)), (frames.quarantine, quarantine, None)],
        storage_options=options,
        extra=frames.lazy_counts(),
    )
    read = frames.counts(values)
    rows_in, counts = read.rows_in, read.by_reason
    if rows_in == 0:
        raise ValueError(f"empty dataset: no rows of {conf.path} in the selected range")
    footer_rows = source.rows_in_files()
    # the written files' footers, counted apart from the read's own counts
    checks = {
        "rows in = kept + quarantined": rows_in == n_kept + n_quarantined,
        "kept = rows counted on the kept frame": n_kept == read.rows_kept,
        "quarantined = sum by reason": n_quarantined == read.rows_quarantined,
    }
    if footer_rows is not None and source.start is None and source.end is None:
        checks["rows in = rows in the source files"] = rows_in == footer_rows
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise RuntimeError(
            f"ingest of {conf.path} lost or invented rows ({', '.join(failed)}): rows in "
            f"{rows_in}, source footers {footer_rows}, kept {n_kept}, quarantined "
            f"{n_quarantined}, by reason {counts}"
        )
    seconds = time.perf_counter() - t0
    log.info(
        "ingest %s: %d rows in = %d kept + %d quarantined %s (%.1f s)",
        conf.name,
        rows_in,
        n_kept,
        n_quarantined,
        {k: v for k, v in counts.items() if v},
        seconds,
    )
    return {
        "source": conf.name,
        "rows_in": rows_in,
        "rows_kept": int(n_kept),
        "rows_quarantined": int(n_quarantined),
        "by_reason": counts,
        "dedupe": frames.dedupe,
        "output": output,
        "quarantine": quarantine,
        "files_in": len(source.files),
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows_in / seconds, 1) if seconds > 0 else None,
    }
