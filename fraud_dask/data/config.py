"""Schema of the ``data`` config group: a transaction source plus the synthetic generator.

The reading fields live in :class:`fraud_dask.data.sources.SourceConf` (so reading never needs
the generator's options); :class:`DataConf` adds ``synthetic``. Values are in
``configs/data/*.yaml``: ``synthetic`` (default), ``handbook``, ``parquet`` and one file per
onboarded client source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fraud_dask.data.sources import (
    DataFormat,
    PanConf,
    SourceConf,
    TimestampConf,
    TzPolicy,
    as_source_conf,
)
from fraud_dask.data.synthetic.conf import SyntheticConf

__all__ = [
    "DataConf",
    "DataFormat",
    "PanConf",
    "SourceConf",
    "SyntheticConf",
    "TimestampConf",
    "TzPolicy",
    "as_source_conf",
]


@dataclass
class DataConf(SourceConf):
    """The ``data`` group: where transactions are and how to read them (see SourceConf)."""

    synthetic: SyntheticConf = field(default_factory=SyntheticConf)
    """Generator options, used by ``task=generate`` (and ``data=synthetic``)."""
