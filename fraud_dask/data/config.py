"""Schema of the ``data`` config group: a transaction source plus the synthetic generator.

The reading fields live in :class:`fraud_dask.data.sources.SourceConf` (so reading never needs
the generator's options); :class:`DataConf` adds ``synthetic``. Values are in
``configs/data/*.yaml``: ``synthetic`` (default), ``handbook``, ``parquet`` and one file per
onboarded client source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fraud_dask.data.sources import (
    DataFormat,
    PanAction,
    PanConf,
    SourceConf,
    TimestampConf,
    TzPolicy,
    as_source_conf,
    check_values,
)
from fraud_dask.data.synthetic.conf import SyntheticConf, make_plan

__all__ = [
    "DataConf",
    "DataFormat",
    "PanAction",
    "PanConf",
    "SourceConf",
    "SyntheticConf",
    "TimestampConf",
    "TzPolicy",
    "as_source_conf",
    "check_data_conf",
]


@dataclass
class DataConf(SourceConf):
    """The ``data`` group: where transactions are and how to read them (see SourceConf)."""

    synthetic: SyntheticConf = field(default_factory=SyntheticConf)
    """Generator options, used by ``task=generate`` (and ``data=synthetic``)."""


def check_data_conf(data: Any) -> None:
    """Check the ``data`` group's values before any cluster starts.

    Source fields that are set (a required ``path`` left as ``???`` is the task's to report)
    and the generator's options (``data.synthetic``, sizes included) are checked.

    Parameters
    ----------
    data : DataConf or DictConfig
        The composed ``data`` node.

    Raises
    ------
    UserError
        A value out of range or that does not parse, naming the field.
    """
    check_values(data)
    synthetic = getattr(data, "synthetic", None)
    if synthetic is not None:
        make_plan(synthetic)
