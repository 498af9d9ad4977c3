"""Time since the entity's previous transaction, in seconds (NaN for its first).

Config group ``recency``. It looks back one row however old: the online state always keeps an
entity's last row, and batch scoring reads each entity's last row before its history window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from omegaconf import MISSING

from fraud_dask.features.kinds.base import EntityOp, FeatureSpec, Planned

if TYPE_CHECKING:
    from fraud_dask.features.batch import Sorted
    from fraud_dask.features.online import Past
    from fraud_dask.features.plan import Planner


@dataclass
class RecencySpec(FeatureSpec):
    """Seconds since the entity's previous transaction (NaN for its first)."""

    default_names: ClassVar[dict[str, str]] = {"seconds": "{entity}_secs_since_prev"}

    entity: list[str] = MISSING
    optional: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return list(self.entity)

    def plan(self, ctx: Planner) -> list[Planned]:
        ent = list(self.entity)
        if not ctx.usable(ent):
            return []
        return [(tuple(ent), Recency((("seconds", ctx.name("seconds", ent, None)),)))]


@dataclass(frozen=True)
class Recency(EntityOp):
    """Seconds since the previous row of the same entity in (ts, tx_id) order."""

    needs_previous = True

    @property
    def reach(self) -> int | None:
        return 0  # only the previous row, which the state keeps whatever its age

    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        from fraud_dask.features import kernels as k

        return {"seconds": k.previous_gap(s.starts, s.ts)}

    def online(self, past: Past, out: dict[str, float]) -> None:
        p = past.p
        value = (past.t - int(past.ts[p - 1])) / 1e9 if p > 0 else math.nan
        out[self.outputs[0][1]] = value

    def describe(self, key: str, entity: str) -> str:
        return f"time since the {entity}'s previous transaction"
