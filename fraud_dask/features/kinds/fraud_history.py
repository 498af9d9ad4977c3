"""The entity's known-fraud history: how old its latest and earliest known frauds are.

Config group ``fraud_history``. Among the entity's past rows in ``(t - window, t]`` whose labels
are known at ``t`` (with ``delay`` set: the rows with ``ts <= t - delay``, every label in them
known, the handbook's rule; ``delay`` null: the rows before the current one whose
``label_ts <= t``), outputs:

- ``last_age``: seconds from the latest known fraud to ``t``;
- ``first_age``: seconds from the earliest known fraud to ``t`` (the start of the current run
  of frauds, as far back as ``window`` reaches);
- ``share``: frauds / known rows from that earliest known fraud on (the fraud included);
- ``last_label``: the label of the latest known row (0 or 1).

Each is NaN where no known fraud lies in the window (``last_label``: where no known row does).
A compromise that turns every transaction of a terminal into fraud for a few weeks shows as a
share near 1 with a recent ``last_age``; ``first_age`` tells one still running (younger than
the compromise's length) from one that has ended, which a fraud rate over a fixed window
cannot do as sharply. The window is measured from ``t``, so with ``delay`` it must be longer
than the delay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from omegaconf import MISSING

from fraud_dask.features.durations import NS, duration_text
from fraud_dask.features.kinds.base import EntityOp, FeatureSpec, Planned, reach_of, window_rows

if TYPE_CHECKING:
    from fraud_dask.features.batch import Sorted
    from fraud_dask.features.online import Past
    from fraud_dask.features.plan import Planner


@dataclass
class FraudHistorySpec(FeatureSpec):
    """Ages of the entity's latest and earliest known frauds in ``window`` and the fraud share
    of its known rows since the earliest one.

    ``delay`` set: rows with ``ts <= t - delay`` have known labels (the handbook's rule);
    ``delay`` null: a row's label is known where its ``label_ts <= t``. Name field:
    ``{window}``.
    """

    default_names: ClassVar[dict[str, str]] = {
        "last_age": "{entity}_last_fraud_age_{window}",
        "first_age": "{entity}_first_fraud_age_{window}",
        "share": "{entity}_fraud_share_since_first_{window}",
        "last_label": "{entity}_last_known_label_{window}",
    }

    entity: list[str] = MISSING
    #: how far back from ``t`` the known rows reach
    window: str = "35d"
    delay: str | None = None
    outputs: list[str] = field(default_factory=lambda: ["last_age", "first_age", "share"])
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
        delay = ctx.window(self.delay, "delay")
        if delay is not None and width is not None and width <= delay:
            raise ctx.error(
                f"window {self.window!r} must be longer than delay {self.delay!r} "
                "(the window is measured from the transaction, the delay inside it)"
            )
        outs = tuple((o, ctx.name(o, ent, self.window)) for o in self.outputs)
        return [(tuple(ent), FraudHistory(outs, width, delay))]


@dataclass(frozen=True)
class FraudHistory(EntityOp):
    """Ages of the latest and earliest known frauds in ``(t - width, t]`` and the fraud share
    of the known rows since the earliest one."""

    width: int | None = None
    delay: int | None = None

    reads_labels = True

    @property
    def reach(self) -> int | None:
        return reach_of(self.width)

    @property
    def needs_label_ts(self) -> bool:
        return self.delay is None

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        from fraud_dask.features import kernels as k

        y = s.label()
        if self.delay is not None:
            width = None if self.width is None else self.width - self.delay
            lo, hi = s.bounds(width, self.delay, False)
            first, last, share, last_label = k.fraud_history_rows(lo, hi, y)
        else:
            lo, _ = s.bounds(self.width, 0, False)
            first, last, share, last_label = k.fraud_history_known(s.ts, lo, s.known(), y)
        ts = s.ts
        with np.errstate(invalid="ignore"):
            first_age = np.where(first >= 0, (ts - ts[np.maximum(first, 0)]) / NS, np.nan)
            last_age = np.where(last >= 0, (ts - ts[np.maximum(last, 0)]) / NS, np.nan)
        return {"last_age": last_age, "first_age": first_age, "share": share,
                "last_label": last_label}  # fmt: skip

    def online(self, past: Past, out: dict[str, float]) -> None:
        ts, t, p = past.ts, past.t, past.p
        if self.delay is not None:
            width = None if self.width is None else self.width - self.delay
            lo, hi = window_rows(ts, t, p, width, self.delay)
            rows = np.arange(lo, hi)
        else:
            lo, _ = window_rows(ts, t, p, self.width, 0)
            rows = lo + np.flatnonzero(past.known[lo:p] <= t)
        labels = past.labels[rows]
        frauds = rows[labels > 0]
        values = dict.fromkeys(("last_age", "first_age", "share"), math.nan)
        values["last_label"] = float(labels[-1] > 0) if len(rows) else math.nan
        if len(frauds):
            first = int(frauds[0])
            values["last_age"] = float(t - int(ts[frauds[-1]])) / NS
            values["first_age"] = float(t - int(ts[first])) / NS
            since = rows >= first
            values["share"] = float((labels[since] > 0).sum()) / float(since.sum())
        for key, name in self.outputs:
            out[name] = values[key]

    def describe(self, key: str, entity: str) -> str:
        span = duration_text(self.width)
        known = "labels known at the time"
        if key == "last_age":
            return f"time since the {entity}'s latest known fraud in {span} ({known})"
        if key == "first_age":
            return f"time since the {entity}'s earliest known fraud in {span} ({known})"
        if key == "share":
            return (
                f"fraud share of the {entity}'s labelled transactions since its earliest "
                f"known fraud in {span} ({known})"
            )
        return f"label of the {entity}'s latest labelled transaction in {span} ({known})"
