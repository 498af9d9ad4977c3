"""Calendar features of the transaction time: hour, weekday, weekend, night.

Config section ``calendar``: a row feature (no entity), in ``timezone``; ``night`` is
``hour <= night_end_hour`` (the handbook's 6).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar
from zoneinfo import ZoneInfo

import numpy as np

from fraud_dask.features.kinds.base import FeatureSpec, Planned, RowOp

if TYPE_CHECKING:
    import pandas as pd

    from fraud_dask.features.plan import Planner


class CalendarField(enum.StrEnum):
    """Calendar features of the transaction time (in ``CalendarConf.timezone``)."""

    hour = "hour"
    weekday = "weekday"
    weekend = "weekend"
    night = "night"


@dataclass
class CalendarConf(FeatureSpec):
    """Calendar features; ``night`` is ``hour <= night_end_hour`` (handbook: 6)."""

    default_names: ClassVar[dict[str, str]] = {f.value: "tx_" + f.value for f in CalendarField}

    fields: list[CalendarField] = field(default_factory=list)
    timezone: str = "UTC"
    night_end_hour: int = 6
    names: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return []

    def plan(self, ctx: Planner) -> list[Planned]:
        if not self.fields:
            return []
        names = dict(self.default_names, **dict(self.names))
        outs = tuple((CalendarField(f).value, names[CalendarField(f).value]) for f in self.fields)
        return [((), Calendar(outs, self.timezone, int(self.night_end_hour)))]


@dataclass(frozen=True)
class Calendar(RowOp):
    """Hour, weekday (Monday = 0), weekend and night flags of ``ts`` in ``timezone``."""

    timezone: str = "UTC"
    night_end_hour: int = 6
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    def batch(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        import pandas as pd

        ts = frame["ts"]
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            local = ts.dt.tz_convert(self.timezone)
        else:
            local = ts.dt.tz_localize("UTC").dt.tz_convert(self.timezone)
        hour = local.dt.hour.to_numpy(np.int64)
        weekday = local.dt.day_of_week.to_numpy(np.int64)
        values = {
            "hour": hour,
            "weekday": weekday,
            "weekend": weekday >= 5,
            "night": hour <= self.night_end_hour,
        }
        return {key: values[key].astype(np.int8) for key, _ in self.outputs}

    def online(self, t: int, out: dict[str, float]) -> None:
        local = dt.datetime.fromtimestamp(t // 1_000_000_000, dt.UTC).astimezone(self.zone)
        hour, weekday = local.hour, local.weekday()
        values = {"hour": hour, "weekday": weekday, "weekend": int(weekday >= 5),
                  "night": int(hour <= self.night_end_hour)}  # fmt: skip
        for key, name in self.outputs:
            out[name] = values[key]

    def describe(self, key: str) -> str:
        return {
            "hour": "hour of the day",
            "weekday": "day of the week",
            "weekend": "made on a weekend",
            "night": f"made at night (hour <= {self.night_end_hour})",
        }[key]
