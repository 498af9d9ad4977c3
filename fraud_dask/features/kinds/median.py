"""The amount against the median of the entity's earlier amounts, and its recent large amounts.

Config group ``amount_median``. The median of the entity's amounts in ``(t - window, t)`` (the
rows before the current one in (ts, tx_id) order) is a robust usual amount: a run of inflated
amounts (a stolen card's purchases at several times the usual amount) moves a mean but hardly
a median. Outputs:

- ``ratio``: the amount / that median;
- ``over``: how many of the entity's rows in ``(t - recent, t)`` before the current one have an
  amount above ``factor`` x that median (several recent outliers: the card is being used by
  someone else);
- ``max_ratio``: the largest amount in ``(t - recent, t)`` / that median.

All three are NaN where the median is undefined (no earlier row in the window, or a median of
0); ``max_ratio`` also where no earlier row lies in ``recent``. Missing amounts are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from omegaconf import MISSING

from fraud_dask.features.durations import duration_text, window_label
from fraud_dask.features.kinds.base import EntityOp, FeatureSpec, Planned, reach_of, window_rows

if TYPE_CHECKING:
    from fraud_dask.features.batch import Sorted
    from fraud_dask.features.online import Past
    from fraud_dask.features.plan import Planner


@dataclass
class AmountMedianSpec(FeatureSpec):
    """The amount / the median of the entity's earlier amounts in ``window``, and how many of
    its earlier amounts in ``recent`` exceed ``factor`` x that median (and the largest ratio).

    Name fields: ``{window}``, ``{recent}``.
    """

    default_names: ClassVar[dict[str, str]] = {
        "ratio": "{entity}_amount_median_ratio_{window}",
        "over": "{entity}_amounts_over_median_{recent}",
        "max_ratio": "{entity}_max_amount_median_ratio_{recent}",
    }

    entity: list[str] = MISSING
    #: the history whose median is the usual amount (the current row excluded)
    window: str = "30d"
    #: the recent rows counted by ``over`` and ``max_ratio`` (the current row excluded)
    recent: str = "7d"
    #: an earlier amount counts in ``over`` when above ``factor`` x the median
    factor: float = 3.0
    outputs: list[str] = field(default_factory=lambda: ["ratio", "over", "max_ratio"])
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
        recent = ctx.window(self.recent, "recent")
        if not float(self.factor) > 0:
            raise ctx.error(f"factor must be positive, got {self.factor}")
        label = window_label(self.recent)
        outs = tuple((o, ctx.name(o, ent, self.window, recent=label)) for o in self.outputs)
        return [(tuple(ent), AmountMedian(outs, width, recent, float(self.factor)))]


def sorted_median(values: np.ndarray) -> float:
    """Median of the non-missing ``values`` as the batch kernel computes it (NaN when none).

    The single-event counterpart of :func:`fraud_dask.features.kernels.window_median`.
    """
    x = np.sort(values[~np.isnan(values)])
    k = len(x)
    if k == 0:
        return math.nan
    if k % 2:
        return float(x[k // 2])
    return float((x[k // 2 - 1] + x[k // 2]) / 2.0)


@dataclass(frozen=True)
class AmountMedian(EntityOp):
    """Median of ``(t - width, t)``; ratio, count over ``factor`` x it and largest ratio in
    ``(t - recent, t)``."""

    width: int | None = None
    recent: int | None = None
    factor: float = 3.0

    @property
    def reach(self) -> int | None:
        if self.width is None or self.recent is None:
            return None
        return reach_of(max(self.width, self.recent))

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        from fraud_dask.features import kernels as k

        amount = s.amount()
        lo, hi = s.bounds(self.width, 0, False)
        median = k.window_median(lo, hi, amount)
        usable = median > 0  # NaN compares False
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(usable, amount / median, np.nan)
        out = {"ratio": ratio}
        keys = {key for key, _ in self.outputs}
        if keys & {"over", "max_ratio"}:
            rlo, rhi = s.bounds(self.recent, 0, False)
            if "over" in keys:
                over = k.window_count_above(rlo, rhi, amount, median * self.factor)
                out["over"] = np.where(usable, over, np.nan)
            if "max_ratio" in keys:
                top = k.window_extreme(rlo, rhi, amount, True)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out["max_ratio"] = np.where(usable, top / median, np.nan)
        return out

    def online(self, past: Past, out: dict[str, float]) -> None:
        lo, hi = window_rows(past.ts, past.t, past.p, self.width, 0)
        median = sorted_median(past.amounts[lo:hi])
        usable = median > 0
        recent = past.amounts[slice(*window_rows(past.ts, past.t, past.p, self.recent, 0))]
        for key, name in self.outputs:
            if not usable:
                out[name] = math.nan
            elif key == "ratio":
                out[name] = past.amount / median
            elif key == "over":
                out[name] = float((recent > median * self.factor).sum())
            else:
                top = float(recent.max()) if len(recent) else math.nan
                out[name] = top / median

    def describe(self, key: str, entity: str) -> str:
        usual = f"the median amount of the {entity} in {duration_text(self.width)}"
        recent = duration_text(self.recent)
        if key == "ratio":
            return f"amount / {usual}"
        if key == "over":
            return f"amounts of the {entity} in {recent} above {self.factor:g} x {usual}"
        return f"largest amount of the {entity} in {recent} / {usual}"
