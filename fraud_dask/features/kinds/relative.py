"""The amount against the entity's history: ratio to the mean, z-score.

Config group ``amount_relative``. NaN where the history is too short (no rows for the ratio,
fewer than two rows or zero spread for the z-score).
"""

from __future__ import annotations

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


@dataclass
class AmountRelativeSpec(FeatureSpec):
    """The amount against the entity's history in ``window``: ratio to mean, z-score.

    By default the history excludes the current row. NaN where the history is too short
    (no rows for the ratio, fewer than two rows or zero spread for the z-score).
    """

    default_names: ClassVar[dict[str, str]] = {
        "ratio": "{entity}_amount_ratio_{window}",
        "zscore": "{entity}_amount_zscore_{window}",
    }

    entity: list[str] = MISSING
    window: str = "30d"
    include_current: bool = False
    outputs: list[str] = field(default_factory=lambda: ["ratio", "zscore"])
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return list(self.entity)

    def plan(self, ctx: Planner) -> list[Planned]:
        ent = list(self.entity)
        if not ctx.usable(ent):
            return []
        ctx.check_outputs(self.outputs)
        width = ctx.window(self.window, "window")
        outs = tuple((o, ctx.name(o, ent, self.window)) for o in self.outputs)
        return [(tuple(ent), Relative(outs, width, bool(self.include_current)))]


@dataclass(frozen=True)
class Relative(EntityOp):
    """``amount / mean`` and ``(amount - mean) / std`` over ``(t - width, t]``."""

    width: int | None = None
    include_current: bool = False

    @property
    def reach(self) -> int | None:
        return reach_of(self.width)

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        from fraud_dask.features import kernels as k

        lo, hi = s.bounds(self.width, 0, self.include_current)
        _, mean, std = k.window_moments(lo, hi, s.amount())
        amount = s.amount()
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                "ratio": np.where(mean != 0, amount / mean, np.nan),
                "zscore": np.where(std > 0, (amount - mean) / std, np.nan),
            }

    def online(self, past: Past, out: dict[str, float]) -> None:
        amount = past.amount
        width = UNBOUNDED if self.width is None else self.width
        _, _, _, _, mean, std, _, _ = kernels().event_window(
            past.ts, past.amounts, past.p, past.t, width, 0, amount, self.include_current, False
        )
        for key, name in self.outputs:
            if key == "ratio":
                out[name] = amount / mean if mean != 0 else math.nan
            else:
                out[name] = (amount - mean) / std if std > 0 else math.nan

    def describe(self, key: str, entity: str) -> str:
        what = "amount / average" if key == "ratio" else "amount z-score"
        return f"{what} against the {entity}'s history in {duration_text(self.width)}"
