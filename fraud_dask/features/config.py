"""Schema of the ``features`` config group: a declarative list of point-in-time feature specs.

Values live in ``configs/features/*.yaml``; :class:`FeaturesConf` is the structured schema they
are merged onto. Every spec names its entity (one column or a combination of columns); the
builder groups specs by entity and computes each group in one pass after one shuffle.

Output names come from templates (``names``, keyed by output) with these fields: ``{entity}`` the
entity columns joined by ``_``, ``{window}`` the window as written (``1d``), ``{days}`` the window
in whole days, ``{column}`` the counted column of a distinct count. Unset keys fall back to the
spec class's ``default_names``.

Each spec dataclass lives with its feature kind (:mod:`fraud_dask.features.kinds`); the fields of
:class:`FeaturesConf` that hold specs are the registry of kinds, in plan order
(:func:`spec_groups`). This module imports no dask and no numba (the CLI imports it when
composing the config).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fraud_dask.features.durations import NS, parse_window, window_days, window_label
from fraud_dask.features.kinds.base import FeatureSpec
from fraud_dask.features.kinds.calendar import CalendarConf, CalendarField
from fraud_dask.features.kinds.fraud_history import FraudHistorySpec
from fraud_dask.features.kinds.frequency import FrequencySpec
from fraud_dask.features.kinds.median import AmountMedianSpec
from fraud_dask.features.kinds.recency import RecencySpec
from fraud_dask.features.kinds.relative import AmountRelativeSpec
from fraud_dask.features.kinds.risk import RiskSpec
from fraud_dask.features.kinds.target_encoding import TargetEncodingSpec
from fraud_dask.features.kinds.window import Agg, WindowSpec

__all__ = [
    "NS",
    "Agg",
    "AmountMedianSpec",
    "AmountRelativeSpec",
    "CalendarConf",
    "CalendarField",
    "FeaturesConf",
    "FraudHistorySpec",
    "FrequencySpec",
    "RecencySpec",
    "RiskSpec",
    "TargetEncodingSpec",
    "WindowSpec",
    "as_features_conf",
    "parse_window",
    "spec_groups",
    "window_days",
    "window_label",
]


@dataclass
class FeaturesConf:
    """Schema of the ``features`` config group.

    Every field holding a :class:`~fraud_dask.features.kinds.base.FeatureSpec` (or a list of
    them) is a feature kind's config group; a new kind is registered by adding its field here.
    """

    name: str = "custom"
    calendar: CalendarConf = field(default_factory=CalendarConf)
    windows: list[WindowSpec] = field(default_factory=list)
    risk: list[RiskSpec] = field(default_factory=list)
    recency: list[RecencySpec] = field(default_factory=list)
    amount_relative: list[AmountRelativeSpec] = field(default_factory=list)
    frequency: list[FrequencySpec] = field(default_factory=list)
    target_encoding: list[TargetEncodingSpec] = field(default_factory=list)
    amount_median: list[AmountMedianSpec] = field(default_factory=list)
    fraud_history: list[FraudHistorySpec] = field(default_factory=list)
    #: input columns carried to the output when present (identifiers, label, what scoring needs)
    keep: list[str] = field(
        default_factory=lambda: [
            "tx_id",
            "ts",
            "card_id",
            "amount",
            "client_id",
            "is_fraud",
            "label_ts",
            # categorical source columns (when present), for monitoring their mix; text
            # columns are never model inputs unless model.categorical names them
            "category",
            "channel",
            "merchant_country",
            "country",
        ]
    )
    #: output partitions of each entity shuffle; null = as many as the input
    npartitions: int | None = None
    #: how the entity shuffles move rows: ``tasks`` (an in-memory task graph: fastest for a few
    #: large partitions), ``p2p`` (streams through disk: steadier memory for many partitions)
    #: or ``auto`` (tasks up to 8 output partitions, p2p above)
    shuffle: str = "auto"
    #: where ``task=features`` writes; null = ``<run_dir>/features``
    output: str | None = None


def spec_groups(conf: FeaturesConf) -> list[tuple[str, list[FeatureSpec]]]:
    """The config groups of feature kinds and their specs, in field (= plan) order.

    Parameters
    ----------
    conf : FeaturesConf
        A typed config (:func:`as_features_conf`).

    Returns
    -------
    list of (str, list of FeatureSpec)
        ``("calendar", [CalendarConf(...)])``, ``("windows", [WindowSpec(...), ...])``, ...
    """
    out = []
    for f in dataclasses.fields(conf):
        value = getattr(conf, f.name)
        if isinstance(value, FeatureSpec):
            out.append((f.name, [value]))
        elif isinstance(value, list) and any(isinstance(v, FeatureSpec) for v in value):
            out.append((f.name, list(value)))
    return out


def as_features_conf(conf: Any) -> FeaturesConf:
    """Validate a features config (dataclass, DictConfig or mapping) into a typed object.

    Parameters
    ----------
    conf : FeaturesConf, DictConfig or mapping
        The ``features`` config group.

    Returns
    -------
    FeaturesConf
        A typed object (OmegaConf-backed) with defaults filled in.

    Raises
    ------
    ValueError
        A key is unknown, a value has the wrong type, or a required field is missing.
    """
    if isinstance(conf, FeaturesConf):
        node = OmegaConf.structured(conf)
    else:
        if isinstance(conf, DictConfig):
            conf = OmegaConf.to_container(conf, resolve=True)
        if not isinstance(conf, dict):
            raise ValueError(f"features config: expected a mapping, got {type(conf).__name__}")
        try:
            node = OmegaConf.merge(OmegaConf.structured(FeaturesConf), conf)
        except Exception as exc:  # omegaconf raises several types; re-raise one clear one
            raise ValueError(f"features config: {exc}") from exc
    missing = OmegaConf.missing_keys(node)
    if missing:
        raise ValueError(f"features config: required field(s) not set: {sorted(missing)}")
    typed: FeaturesConf = OmegaConf.to_object(node)  # type: ignore[assignment]
    return typed
