"""Point-in-time features: declared in config, built lazily on Dask, reusable online.

- :mod:`fraud_dask.features.config`: the ``features`` config schema (no dask import).
- :mod:`fraud_dask.features.kernels`: numba kernels over one entity-grouped, time-sorted batch.
- :mod:`fraud_dask.features.batch`: the pure pandas functions of one batch
  (:func:`~fraud_dask.features.batch.entity_features`,
  :func:`~fraud_dask.features.batch.query_features` for the online scorer).
- :mod:`fraud_dask.features.build`: :func:`~fraud_dask.features.build.build_features`, the lazy
  Dask builder.

Importing this package stays light: heavy modules load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_features": "fraud_dask.features.build",
    "feature_columns": "fraud_dask.features.build",
    "entity_features": "fraud_dask.features.batch",
    "query_features": "fraud_dask.features.batch",
    "FeaturesConf": "fraud_dask.features.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fraud_dask.features' has no attribute {name!r}")
