"""Time-aware target encoding: the smoothed fraud rate of a value's past, known labels only.

Config group ``target_encoding``: ``(frauds + smoothing * prior) / (count + smoothing)`` over
the value's rows before ``t`` whose label is known at ``t``, by the label rules of
:mod:`~fraud_dask.features.kinds.risk`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from omegaconf import MISSING

from fraud_dask.features.durations import duration_text
from fraud_dask.features.kinds.base import EntityOp, FeatureSpec, Planned, reach_of
from fraud_dask.features.kinds.risk import labels_in_window, labels_online

if TYPE_CHECKING:
    from fraud_dask.features.batch import Sorted
    from fraud_dask.features.online import Past
    from fraud_dask.features.plan import Planner


@dataclass
class TargetEncodingSpec(FeatureSpec):
    """Time-aware target encoding: smoothed fraud rate of the value's past, known labels only.

    ``(frauds + smoothing * prior) / (count + smoothing)`` over the value's transactions before
    ``t`` (in ``window``; null = ever) whose label is known at ``t`` (``label_ts <= t``, or
    ``ts <= t - delay`` when ``delay`` is set).
    """

    default_names: ClassVar[dict[str, str]] = {"te": "{entity}_te_{window}"}

    column: list[str] = MISSING
    window: str | None = None
    delay: str | None = None
    smoothing: float = 20.0
    prior: float = 0.01
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return list(self.column)

    def plan(self, ctx: Planner) -> list[Planned]:
        ent = list(self.column)
        if not ctx.usable(ent):
            return []
        if self.smoothing < 0 or not 0.0 <= self.prior <= 1.0:
            raise ctx.error(
                "need smoothing >= 0 and 0 <= prior <= 1, "
                f"got smoothing={self.smoothing}, prior={self.prior}"
            )
        delay = ctx.window(self.delay, "delay")
        width = ctx.window(self.window, "window")
        outs = (("te", ctx.name("te", ent, self.window)),)
        op = TargetEncoding(outs, width, delay, float(self.smoothing), float(self.prior))
        return [(tuple(ent), op)]


@dataclass(frozen=True)
class TargetEncoding(EntityOp):
    """Smoothed fraud rate of the value in the label window of ``width``."""

    width: int | None = None
    delay: int | None = None
    smoothing: float = 0.0
    prior: float = 0.0

    reads_labels = True

    @property
    def reach(self) -> int | None:
        return reach_of(self.width, self.delay)

    @property
    def needs_label_ts(self) -> bool:
        return self.delay is None

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        count, frauds = labels_in_window(s, self.width, self.delay)
        if self.smoothing == 0:
            return {"te": np.where(count > 0, frauds / np.maximum(count, 1), self.prior)}
        return {"te": (frauds + self.smoothing * self.prior) / (count + self.smoothing)}

    def online(self, past: Past, out: dict[str, float]) -> None:
        count, frauds = labels_online(past, self.width, self.delay)
        if self.smoothing == 0:
            value = frauds / count if count > 0 else self.prior
        else:
            value = (frauds + self.smoothing * self.prior) / (count + self.smoothing)
        out[self.outputs[0][1]] = value

    def describe(self, key: str, entity: str) -> str:
        span = duration_text(self.width)
        return f"fraud rate of this {entity} value in {span} (smoothed, labels known at the time)"
