"""Schema of the ``features`` config group: a declarative list of point-in-time feature specs.

Values live in ``configs/features/*.yaml``; :class:`FeaturesConf` is the structured schema they
are merged onto. Every spec names its entity (one column or a combination of columns); the
builder groups specs by entity and computes each group in one pass after one shuffle.

Output names come from templates (``names``, keyed by output) with these fields: ``{entity}`` the
entity columns joined by ``_``, ``{window}`` the window as written (``1d``), ``{days}`` the window
in whole days, ``{column}`` the counted column of a distinct count. Unset keys fall back to the
defaults in :data:`DEFAULT_NAMES`.

This module imports no dask (the CLI imports it when composing the config).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
NS = 1_000_000_000


class Agg(enum.StrEnum):
    """Aggregations of ``amount`` over an entity window."""

    count = "count"
    sum = "sum"
    mean = "mean"
    std = "std"
    min = "min"
    max = "max"


class CalendarField(enum.StrEnum):
    """Calendar features of the transaction time (in ``CalendarConf.timezone``)."""

    hour = "hour"
    weekday = "weekday"
    weekend = "weekend"
    night = "night"


@dataclass
class WindowSpec:
    """Aggregates of the entity's transactions with ``ts`` in ``(t - offset - w, t - offset]``.

    With ``offset`` 0 the right edge is the current row in (ts, tx_id) order: later rows of the
    same second are not seen; ``include_current: false`` drops the current row itself.
    Outputs: one per agg (``count``, ``sum``, ...) and ``distinct`` per column of ``distinct``.
    """

    entity: list[str] = MISSING
    windows: list[str] = field(default_factory=lambda: ["1d"])
    aggs: list[Agg] = field(default_factory=lambda: [Agg.count])
    #: columns whose number of distinct values in the window is counted (e.g. device_id)
    distinct: list[str] = field(default_factory=list)
    include_current: bool = True
    #: shift the window into the past (e.g. the handbook's 7-day label delay); null = none
    offset: str | None = None
    #: skip this spec (with a note in the result) when a column is missing, instead of failing
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class RiskSpec:
    """Fraud rate of the entity's past transactions whose labels are known at ``t``.

    ``delay`` set: the window is ``(t - delay - w, t - delay]`` and every label in it counts as
    known (the handbook's rule). ``delay`` null: the window is ``(t - w, t]`` before the current
    row and a label counts only where ``label_ts <= t``. Outputs: ``count`` (rows with a usable
    label), ``frauds``, ``risk`` = frauds / count (0 when count is 0).
    """

    entity: list[str] = MISSING
    windows: list[str] = field(default_factory=lambda: ["30d"])
    delay: str | None = None
    outputs: list[str] = field(default_factory=lambda: ["count", "risk"])
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class RecencySpec:
    """Seconds since the entity's previous transaction (NaN for its first)."""

    entity: list[str] = MISSING
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class AmountRelativeSpec:
    """The amount against the entity's history in ``window``: ratio to mean, z-score.

    By default the history excludes the current row. NaN where the history is too short
    (no rows for the ratio, fewer than two rows or zero spread for the z-score).
    """

    entity: list[str] = MISSING
    window: str = "30d"
    include_current: bool = False
    outputs: list[str] = field(default_factory=lambda: ["ratio", "zscore"])
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class FrequencySpec:
    """Frequency encoding: how often the value was seen before ``t`` (in ``window``; null = ever).

    A count, not a share: a share needs a global running total, which ties every row to all
    others; the count is point-in-time and per value.
    """

    column: list[str] = MISSING
    window: str | None = None
    include_current: bool = False
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class TargetEncodingSpec:
    """Time-aware target encoding: smoothed fraud rate of the value's past, known labels only.

    ``(frauds + smoothing * prior) / (count + smoothing)`` over the value's transactions before
    ``t`` (in ``window``; null = ever) whose label is known at ``t`` (``label_ts <= t``, or
    ``ts <= t - delay`` when ``delay`` is set).
    """

    column: list[str] = MISSING
    window: str | None = None
    delay: str | None = None
    smoothing: float = 20.0
    prior: float = 0.01
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class CalendarConf:
    """Calendar features; ``night`` is ``hour <= night_end_hour`` (handbook: 6)."""

    fields: list[CalendarField] = field(default_factory=list)
    timezone: str = "UTC"
    night_end_hour: int = 6
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class FeaturesConf:
    """Schema of the ``features`` config group."""

    name: str = "custom"
    calendar: CalendarConf = field(default_factory=CalendarConf)
    windows: list[WindowSpec] = field(default_factory=list)
    risk: list[RiskSpec] = field(default_factory=list)
    recency: list[RecencySpec] = field(default_factory=list)
    amount_relative: list[AmountRelativeSpec] = field(default_factory=list)
    frequency: list[FrequencySpec] = field(default_factory=list)
    target_encoding: list[TargetEncodingSpec] = field(default_factory=list)
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


DEFAULT_NAMES: dict[str, dict[str, str]] = {
    "windows": {
        **{a.value: "{entity}_" + a.value + "_{window}" for a in Agg},
        "distinct": "{entity}_distinct_{column}_{window}",
    },
    "risk": {
        "count": "{entity}_risk_count_{window}",
        "frauds": "{entity}_risk_frauds_{window}",
        "risk": "{entity}_risk_{window}",
    },
    "recency": {"seconds": "{entity}_secs_since_prev"},
    "amount_relative": {
        "ratio": "{entity}_amount_ratio_{window}",
        "zscore": "{entity}_amount_zscore_{window}",
    },
    "frequency": {"count": "{entity}_freq_{window}"},
    "target_encoding": {"te": "{entity}_te_{window}"},
    "calendar": {f.value: "tx_" + f.value for f in CalendarField},
}


def parse_window(text: str | None, what: str = "window") -> int | None:
    """Parse a duration such as ``"1s"``, ``"15m"``, ``"1h"`` or ``"90d"`` into nanoseconds.

    Parameters
    ----------
    text : str or None
        The duration; None (or ``"all"``) means unbounded and returns None.
    what : str
        Named in the error message.

    Returns
    -------
    int or None
        The duration in nanoseconds, or None for an unbounded window.

    Raises
    ------
    ValueError
        The text is not ``<positive integer><s|m|h|d>``.
    """
    if text is None or str(text).strip().lower() in ("all", "inf", "none"):
        return None
    match = _WINDOW_RE.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"features: {what} {text!r} is not a duration; expected a positive integer "
            "followed by s, m, h or d (e.g. '1h', '30d')"
        )
    return int(match.group(1)) * _UNITS[match.group(2)] * NS


def window_label(text: str | None) -> str:
    """The ``{window}`` name field: the window as written, ``all`` for an unbounded one."""
    return "all" if parse_window(text) is None else str(text).strip()


def window_days(text: str | None) -> str:
    """The ``{days}`` name field: the window in whole days (error if it is not whole days)."""
    ns = parse_window(text)
    if ns is None or ns % (86400 * NS):
        raise ValueError(
            f"features: the name field {{days}} needs a whole-day window, got {text!r}"
        )
    return str(ns // (86400 * NS))


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
