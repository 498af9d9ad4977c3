"""fraud_dask.

``fraud_dask.sql(query, cfg)`` runs SQL over a config's data (see :mod:`fraud_dask.query`);
importing the package imports nothing heavy.
"""

from __future__ import annotations

from typing import Any


def sql(query: str, cfg: Any = None, *, client: Any = None, output: str | None = None) -> Any:
    """SQL over the views of ``cfg`` with DuckDB (:func:`fraud_dask.query.sql`)."""
    from fraud_dask.query import sql as run

    return run(query, cfg, client=client, output=output)
