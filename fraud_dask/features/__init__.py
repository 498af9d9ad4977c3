"""Point-in-time features: declared in config, built lazily on Dask, the same online.

- :mod:`fraud_dask.features.config`: the ``features`` config schema (no dask, no numba).
- :mod:`fraud_dask.features.kinds`: one module per feature kind (window, risk, recency,
  relative amount, frequency, target encoding, calendar), each owning its spec, plan entry,
  batch kernel, single-event evaluation and description.
- :mod:`fraud_dask.features.plan`: the spec resolved into operations grouped by entity key.
- :mod:`fraud_dask.features.kernels`: numba kernels over one entity-grouped, time-sorted batch.
- :mod:`fraud_dask.features.batch`: the pure pandas functions of one batch
  (:func:`~fraud_dask.features.batch.entity_features`,
  :func:`~fraud_dask.features.batch.features_frame`).
- :mod:`fraud_dask.features.build`: :func:`~fraud_dask.features.build.build_features`, the lazy
  Dask builder.
- :mod:`fraud_dask.features.online`: :class:`~fraud_dask.features.online.OnlineFeatures`, the
  per-entity state the online scorer evaluates one event against.

Importing this package stays light: heavy modules load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_features": "fraud_dask.features.build",
    "feature_columns": "fraud_dask.features.build",
    "entity_features": "fraud_dask.features.batch",
    "features_frame": "fraud_dask.features.batch",
    "OnlineFeatures": "fraud_dask.features.online",
    "FeaturesConf": "fraud_dask.features.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fraud_dask.features' has no attribute {name!r}")
