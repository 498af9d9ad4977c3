"""Delayed-label risk: the fraud rate of the entity's past transactions whose labels are known.

Config group ``risk``. Two label rules: a fixed ``delay`` (the window is
``(t - delay - w, t - delay]`` and every label in it counts, the handbook's rule), or each row's
``label_ts`` (the window is ``(t - w, t]`` before the current row and a label counts only where
``label_ts <= t``). :func:`labels_in_window` and :func:`labels_online` are shared with target
encoding.
"""

from __future__ import annotations

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
class RiskSpec(FeatureSpec):
    """Fraud rate of the entity's past transactions whose labels are known at ``t``.

    ``delay`` set: the window is ``(t - delay - w, t - delay]`` and every label in it counts as
    known (the handbook's rule). ``delay`` null: the window is ``(t - w, t]`` before the current
    row and a label counts only where ``label_ts <= t``. Outputs: ``count`` (rows with a usable
    label), ``frauds``, ``risk`` = frauds / count (0 when count is 0).
    """

    default_names: ClassVar[dict[str, str]] = {
        "count": "{entity}_risk_count_{window}",
        "frauds": "{entity}_risk_frauds_{window}",
        "risk": "{entity}_risk_{window}",
    }

    entity: list[str] = MISSING
    windows: list[str] = field(default_factory=lambda: ["30d"])
    delay: str | None = None
    outputs: list[str] = field(default_factory=lambda: ["count", "risk"])
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return list(self.entity)

    def plan(self, ctx: Planner) -> list[Planned]:
        ent = list(self.entity)
        if not ctx.usable(ent):
            return []
        delay = ctx.window(self.delay, "delay")
        out: list[Planned] = []
        for win in self.windows:
            width = ctx.window(win, "windows")
            ctx.check_outputs(self.outputs)
            outs = tuple((o, ctx.name(o, ent, win)) for o in self.outputs)
            out.append((tuple(ent), Risk(outs, width, delay)))
        return out


def labels_in_window(
    s: Sorted, width: int | None, delay: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a usable label, frauds among them) in each row's label window (batch)."""
    from fraud_dask.features import kernels as k

    if delay is not None:
        lo, hi = s.bounds(width, delay, False)
        return (hi - lo).astype(np.float64), k.window_int_sum(lo, hi, s.label())
    lo, _ = s.bounds(width, 0, False)
    return k.known_label_window(s.starts, s.ts, lo, s.known(), s.label())


def labels_online(past: Past, width: int | None, delay: int | None) -> tuple[float, float]:
    """(rows with a usable label, frauds among them) in one event's label window."""
    return kernels().event_labels(
        past.ts, past.labels, past.known, past.p, past.t,
        UNBOUNDED if width is None else width, -1 if delay is None else delay,
    )  # fmt: skip


@dataclass(frozen=True)
class Risk(EntityOp):
    """Labelled rows, frauds and their rate in the label window of ``width``."""

    width: int | None = None
    delay: int | None = None

    reads_labels = True

    @property
    def reach(self) -> int | None:
        return reach_of(self.width, self.delay)

    @property
    def needs_label_ts(self) -> bool:
        return self.delay is None

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        count, frauds = labels_in_window(s, self.width, self.delay)
        with np.errstate(invalid="ignore", divide="ignore"):
            risk = np.where(count > 0, frauds / np.maximum(count, 1), 0.0)
        return {"count": count, "frauds": frauds, "risk": risk}

    def online(self, past: Past, out: dict[str, float]) -> None:
        count, frauds = labels_online(past, self.width, self.delay)
        for key, name in self.outputs:
            if key == "count":
                out[name] = count
            elif key == "frauds":
                out[name] = frauds
            else:
                out[name] = frauds / count if count > 0 else 0.0

    def describe(self, key: str, entity: str) -> str:
        what = {"count": "labelled transactions", "frauds": "known frauds", "risk": "fraud rate"}
        span = duration_text(self.width)
        return f"{what.get(key, key)} of the {entity} in {span} (labels known at the time)"
