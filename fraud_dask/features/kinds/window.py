"""Window aggregates: count, sum, mean, std, min, max of amounts and distinct counts per entity.

Config group ``windows``: for each row, the entity's rows with ``ts`` in
``(t - offset - w, t - offset]``; with ``offset`` 0 the right edge is the row itself in
(ts, tx_id) order. :class:`Window` also serves the ``frequency`` group (a count).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from omegaconf import MISSING

from fraud_dask.features.durations import duration_text
from fraud_dask.features.kinds.base import (
    UNBOUNDED,
    EntityOp,
    FeatureSpec,
    Planned,
    kernels,
    reach_of,
)

if TYPE_CHECKING:
    from fraud_dask.features.batch import Sorted
    from fraud_dask.features.online import Past
    from fraud_dask.features.plan import Planner


class Agg(enum.StrEnum):
    """Aggregations of ``amount`` over an entity window."""

    count = "count"  # type: ignore[assignment]  # the config value; shadows str.count
    sum = "sum"
    mean = "mean"
    std = "std"
    min = "min"
    max = "max"


_AGG_TEXT = {
    "count": "number of transactions",
    "sum": "total amount",
    "mean": "average amount",
    "std": "spread of amounts",
    "min": "smallest amount",
    "max": "largest amount",
}
_MOMENTS = ("sum", "mean", "std")


@dataclass
class WindowSpec(FeatureSpec):
    """Aggregates of the entity's transactions with ``ts`` in ``(t - offset - w, t - offset]``.

    With ``offset`` 0 the right edge is the current row in (ts, tx_id) order: later rows of the
    same second are not seen; ``include_current: false`` drops the current row itself.
    Outputs: one per agg (``count``, ``sum``, ...) and ``distinct`` per column of ``distinct``.
    """

    default_names: ClassVar[dict[str, str]] = {
        **{a.value: "{entity}_" + a.value + "_{window}" for a in Agg},
        "distinct": "{entity}_distinct_{column}_{window}",
    }

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

    def inputs(self) -> list[str]:
        return [*self.entity, *self.distinct]

    def plan(self, ctx: Planner) -> list[Planned]:
        ent = list(self.entity)
        if not ctx.usable(ent, list(self.distinct)):
            return []
        offset = ctx.window(self.offset, "offset") or 0
        out: list[Planned] = []
        for win in self.windows:
            width = ctx.window(win, "windows")
            outs = [(a.value, ctx.name(a.value, ent, win)) for a in self.aggs]
            for col in self.distinct:
                outs.append((f"distinct:{col}", ctx.name("distinct", ent, win, column=col)))
            op = Window(tuple(outs), width, offset, bool(self.include_current))
            out.append((tuple(ent), op))
        return out


#: output key -> its place in :func:`~fraud_dask.features.kernels.event_window`'s result
_STAT_AT = {"count": 2, "sum": 3, "mean": 4, "std": 5, "min": 6, "max": 7}


@dataclass(frozen=True)
class Window(EntityOp):
    """Aggregates over ``(t - offset - width, t - offset]``; ``width`` None: all history."""

    width: int | None = None
    offset: int = 0
    include_current: bool = True
    #: whether an output needs the sum, mean or std of the window's amounts
    moments: bool = field(init=False, default=False)
    #: whether an output needs the window's minimum or maximum
    extremes: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "moments", any(k in _MOMENTS for k, _ in self.outputs))
        object.__setattr__(self, "extremes", any(k in ("min", "max") for k, _ in self.outputs))

    @property
    def reach(self) -> int | None:
        return reach_of(self.width, self.offset)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(k.split(":", 1)[1] for k, _ in self.outputs if k.startswith("distinct:"))

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        from fraud_dask.features import kernels as k

        keys = [key for key, _ in self.outputs]
        lo, hi = s.bounds(self.width, self.offset, self.include_current)
        out: dict[str, np.ndarray] = {"count": (hi - lo).astype(np.float64)}
        if self.moments:
            out["sum"], out["mean"], out["std"] = k.window_moments(lo, hi, s.amount())
        if "min" in keys:
            out["min"] = k.window_extreme(lo, hi, s.amount(), False)
        if "max" in keys:
            out["max"] = k.window_extreme(lo, hi, s.amount(), True)
        for key in keys:
            if key.startswith("distinct:"):
                codes, n_codes = s.distinct_codes(key.split(":", 1)[1])
                out[key] = k.window_distinct(lo, hi, codes, n_codes)
        return out

    def online(self, past: Past, out: dict[str, float]) -> None:
        current = self.offset == 0 and self.include_current
        stats = kernels().event_window(
            past.ts, past.amounts, past.p, past.t, UNBOUNDED if self.width is None else self.width,
            self.offset, past.amount, current, self.extremes,
        )  # fmt: skip
        for key, name in self.outputs:
            j = _STAT_AT.get(key)
            if j is not None:
                v = stats[j]
                out[name] = v if v == v else math.nan  # one NaN object, as the other kinds give
            else:  # distinct:<column>
                col = key[9:]
                seen = set(past.values(col, stats[0], stats[1]))
                if current:
                    seen.add(past.field(col))
                out[name] = float(len(seen) - (None in seen))

    def describe(self, key: str, entity: str) -> str:
        span = duration_text(self.width)
        if key.startswith("distinct:"):
            return f"distinct {key.split(':', 1)[1]} of the {entity} in {span}"
        late = f", {duration_text(self.offset)} ago" if self.offset else ""
        return f"{_AGG_TEXT.get(key, key)} of the {entity} in {span}{late}"
