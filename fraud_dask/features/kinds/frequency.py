"""Frequency encoding: how often a value was seen before the row (a count window).

Config group ``frequency``. It plans a :class:`~fraud_dask.features.kinds.window.Window` count,
so its batch kernel, single-event evaluation and description are the window's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from omegaconf import MISSING

from fraud_dask.features.kinds.base import FeatureSpec, Planned
from fraud_dask.features.kinds.window import Window

if TYPE_CHECKING:
    from fraud_dask.features.plan import Planner


@dataclass
class FrequencySpec(FeatureSpec):
    """Frequency encoding: how often the value was seen before ``t`` (in ``window``; null = ever).

    A count, not a share: a share needs a global running total, which ties every row to all
    others; the count is point-in-time and per value.
    """

    default_names: ClassVar[dict[str, str]] = {"count": "{entity}_freq_{window}"}

    column: list[str] = MISSING
    window: str | None = None
    include_current: bool = False
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return list(self.column)

    def plan(self, ctx: Planner) -> list[Planned]:
        ent = list(self.column)
        if not ctx.usable(ent):
            return []
        width = ctx.window(self.window, "window")
        name = ctx.name("count", ent, self.window)
        op = Window((("count", name),), width, 0, bool(self.include_current))
        return [(tuple(ent), op)]
