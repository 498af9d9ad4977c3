"""Scoring with registered models: batch over Dask, one event at a time online, over HTTP.

- :mod:`fraud_dask.score.config`: ``ScoreConf`` (the ``score`` config node; no dask import).
- :mod:`fraud_dask.score.reasons`: stable reason codes from XGBoost SHAP contributions.
- :mod:`fraud_dask.score.batch`: :func:`~fraud_dask.score.batch.score_period`, the lazy batch
  scorer (history read so that windows are complete), and
  :func:`~fraud_dask.score.batch.staged_features`, ``task=score``'s features staged on storage.
- :mod:`fraud_dask.score.online`: :class:`~fraud_dask.score.online.OnlineScorer`, per-entity
  state warm-started from Parquet, one dict in, score and reason codes out.
- :mod:`fraud_dask.score.service`: the aiohttp scoring service behind ``task=serve``.

Importing this package stays light: heavy modules load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ScoreConf": "fraud_dask.score.config",
    "ServeConf": "fraud_dask.score.config",
    "reason_catalog": "fraud_dask.score.reasons",
    "score_features": "fraud_dask.score.batch",
    "score_period": "fraud_dask.score.batch",
    "staged_features": "fraud_dask.score.batch",
    "OnlineScorer": "fraud_dask.score.online",
    "make_app": "fraud_dask.score.service",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fraud_dask.score' has no attribute {name!r}")
