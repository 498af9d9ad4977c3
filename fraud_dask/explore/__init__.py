"""Emerging risk: segments whose fraud rose in a recent window, and where the champion misses.

- :mod:`fraud_dask.explore.stats`: the statistics on a small pandas table of segment counts
  (exact conditional test of a rate rise, Benjamini-Hochberg), a pure function.
- :mod:`fraud_dask.explore.segments`: the Dask group-by aggregates that build those tables from
  a source (and from the champion's batch scores).
- :mod:`fraud_dask.explore.report`: ``explore.html``.

``task=explore`` (:mod:`fraud_dask.tasks.explore`) chains them; options are the ``explore``
config group (:class:`fraud_dask.explore.config.ExploreConf`). Importing this package imports
no dask.
"""

from fraud_dask.explore.config import ExploreConf, FraudUnit

__all__ = ["ExploreConf", "FraudUnit"]
