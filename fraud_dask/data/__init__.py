"""Transaction data: sources by config, canonical schema, validation, quarantine, Parquet I/O.

Public entry points (imported lazily, so ``import fraud_dask.data`` stays light):

- :func:`read_transactions` -- a source's canonical, checked, lazy good rows (repeated ``tx_id``
  quarantined unless ``data.dedupe`` is off) plus lazy counts: a :class:`Frames`, whose
  :meth:`~Frames.counts` gives a checked :class:`RowCounts` (rows in = kept + quarantined);
- :func:`load_transactions` -- only the good rows of the same read;
- :func:`open_source` -- the source opened (files, footers, the planned read);
- :func:`write_dataset` / :func:`read_dataset` -- atomic, day-partitioned Parquet datasets.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_transactions": "fraud_dask.data.load",
    "load_transactions": "fraud_dask.data.load",
    "Frames": "fraud_dask.data.load",
    "RowCounts": "fraud_dask.data.load",
    "total_counts": "fraud_dask.data.load",
    "open_source": "fraud_dask.data.load",
    "Source": "fraud_dask.data.load",
    "write_dataset": "fraud_dask.data.io",
    "write_datasets": "fraud_dask.data.io",
    "read_dataset": "fraud_dask.data.io",
    "count_rows": "fraud_dask.data.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fraud_dask.data' has no attribute {name!r}")
