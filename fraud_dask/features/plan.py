"""Resolve a :class:`~fraud_dask.features.config.FeaturesConf` into stages of concrete operations.

A stage is everything computed over one entity key (a column or a combination): it needs one
shuffle by that key and one pass of the kernels. Operations carry their window in nanoseconds and
the final output column names, so computing needs no config. This module imports no dask.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from fraud_dask.features.config import (
    DEFAULT_NAMES,
    CalendarField,
    FeaturesConf,
    as_features_conf,
    parse_window,
    window_days,
    window_label,
)


@dataclass(frozen=True)
class Op:
    """One operation of a stage.

    ``kind`` is ``window`` (aggregates of amount, distinct counts), ``risk`` (label window),
    ``recency``, ``relative`` (amount against history) or ``te`` (target encoding).
    ``outputs`` pairs an output key (``count``, ``mean``, ``distinct:device_id``, ``risk``, ...)
    with its column name. ``delay`` (ns) set means labels are known by the fixed delay rule;
    None means by ``label_ts``.
    """

    kind: str
    width: int | None = None
    offset: int = 0
    include_current: bool = True
    delay: int | None = None
    outputs: tuple[tuple[str, str], ...] = ()
    smoothing: float = 0.0
    prior: float = 0.0

    @functools.cached_property
    def moments(self) -> bool:
        """Whether an output needs the sum, mean or std of the window's amounts."""
        return any(key in ("sum", "mean", "std") for key, _ in self.outputs)


@dataclass(frozen=True)
class Stage:
    """The operations computed over one entity key."""

    key: tuple[str, ...]
    ops: tuple[Op, ...]

    @property
    def names(self) -> list[str]:
        """Output column names, in declaration order."""
        return [name for op in self.ops for _, name in op.outputs]

    @property
    def columns(self) -> list[str]:
        """Input columns the stage reads besides tx_id, ts, amount."""
        cols = list(self.key)
        for op in self.ops:
            for key, _ in op.outputs:
                if key.startswith("distinct:"):
                    cols.append(key.split(":", 1)[1])
        return list(dict.fromkeys(cols))


@dataclass
class Plan:
    """Every stage, the calendar outputs, the output names and what was skipped."""

    stages: list[Stage] = field(default_factory=list)
    calendar: tuple[tuple[str, str], ...] = ()
    timezone: str = "UTC"
    night_end_hour: int = 6
    keep: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    needs_label: bool = False
    needs_label_ts: bool = False

    @property
    def feature_names(self) -> list[str]:
        """Every feature column, calendar first, then the stages in order."""
        return [name for _, name in self.calendar] + [n for s in self.stages for n in s.names]

    def horizon(self) -> int | None:
        """How far back (ns) a row's features look; None if some window is unbounded.

        The online scorer keeps at least this much history per entity.
        """
        longest = 0
        for stage in self.stages:
            for op in stage.ops:
                if op.kind == "recency":
                    continue
                if op.width is None:
                    return None
                longest = max(longest, op.width + op.offset + (op.delay or 0))
        return longest


def _names(group: str, spec: Any, key: str, fields: dict[str, str]) -> str:
    template = dict(DEFAULT_NAMES[group], **dict(spec.names)).get(key)
    if template is None:
        raise ValueError(f"features.{group}: no name template for output {key!r}")
    try:
        return template.format_map(fields)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"features.{group}: bad name template {template!r}: {exc}") from None


def _fields(entity: list[str], window: str | None, **extra: str) -> dict[str, str]:
    out = {"entity": "_".join(entity), "window": window_label(window), **extra}

    class _Days(dict[str, str]):
        def __missing__(self, key: str) -> str:
            if key == "days":
                return window_days(window)
            raise KeyError(key)

    return _Days(out)


def make_plan(conf: Any, columns: list[str]) -> Plan:
    """Resolve a features config against the columns of the input frame.

    Parameters
    ----------
    conf : FeaturesConf, DictConfig or mapping
        The ``features`` config.
    columns : list of str
        Columns of the input frame.

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        A spec names a missing column (and is not ``optional``), a window is malformed, a name
        template is wrong, or two features get the same name.
    """
    conf = conf if isinstance(conf, FeaturesConf) else as_features_conf(conf)
    plan = Plan(
        timezone=conf.calendar.timezone,
        night_end_hour=conf.calendar.night_end_hour,
        keep=[c for c in conf.keep if c in columns],
    )
    for base in ("tx_id", "ts", "amount"):
        if base not in columns:
            raise ValueError(f"features: the input frame has no {base!r} column; got {columns}")
    cal_names = dict(DEFAULT_NAMES["calendar"], **dict(conf.calendar.names))
    plan.calendar = tuple(
        (CalendarField(f).value, cal_names[CalendarField(f).value]) for f in conf.calendar.fields
    )
    stages: dict[tuple[str, ...], list[Op]] = {}

    def usable(group: str, i: int, spec: Any, entity: list[str], extra: list[str]) -> bool:
        if not entity:
            raise ValueError(f"features.{group}[{i}]: the entity list is empty")
        absent = [c for c in [*entity, *extra] if c not in columns]
        if not absent:
            return True
        if spec.optional:
            plan.skipped.append(f"{group}[{i}] ({'+'.join(entity)}): no column {absent}")
            return False
        raise ValueError(
            f"features.{group}[{i}]: column(s) {absent} not in the input frame "
            f"(columns: {columns}); mark the spec `optional: true` to skip it when absent"
        )

    for i, w in enumerate(conf.windows):
        ent = list(w.entity)
        if not usable("windows", i, w, ent, list(w.distinct)):
            continue
        offset = parse_window(w.offset, f"windows[{i}].offset") or 0
        for win in w.windows:
            width = parse_window(win, f"windows[{i}].windows")
            fields = _fields(ent, win)
            outs = [(a.value, _names("windows", w, a.value, fields)) for a in w.aggs]
            for col in w.distinct:
                name = _names("windows", w, "distinct", _fields(ent, win, column=col))
                outs.append((f"distinct:{col}", name))
            op = Op("window", width, offset, bool(w.include_current), outputs=tuple(outs))
            stages.setdefault(tuple(ent), []).append(op)
    for i, r in enumerate(conf.risk):
        ent = list(r.entity)
        if not usable("risk", i, r, ent, []):
            continue
        plan.needs_label = True
        delay = parse_window(r.delay, f"risk[{i}].delay")
        plan.needs_label_ts |= delay is None
        for win in r.windows:
            width = parse_window(win, f"risk[{i}].windows")
            bad = [o for o in r.outputs if o not in DEFAULT_NAMES["risk"]]
            if bad:
                raise ValueError(f"features.risk[{i}]: unknown output(s) {bad}")
            outs = tuple((o, _names("risk", r, o, _fields(ent, win))) for o in r.outputs)
            stages.setdefault(tuple(ent), []).append(
                Op("risk", width, 0, False, delay=delay, outputs=outs)
            )
    for i, rc in enumerate(conf.recency):
        ent = list(rc.entity)
        if usable("recency", i, rc, ent, []):
            name = _names("recency", rc, "seconds", _fields(ent, None))
            stages.setdefault(tuple(ent), []).append(Op("recency", outputs=(("seconds", name),)))
    for i, ar in enumerate(conf.amount_relative):
        ent = list(ar.entity)
        if not usable("amount_relative", i, ar, ent, []):
            continue
        bad = [o for o in ar.outputs if o not in DEFAULT_NAMES["amount_relative"]]
        if bad:
            raise ValueError(f"features.amount_relative[{i}]: unknown output(s) {bad}")
        width = parse_window(ar.window, f"amount_relative[{i}].window")
        outs = tuple(
            (o, _names("amount_relative", ar, o, _fields(ent, ar.window))) for o in ar.outputs
        )
        stages.setdefault(tuple(ent), []).append(
            Op("relative", width, 0, bool(ar.include_current), outputs=outs)
        )
    for i, fq in enumerate(conf.frequency):
        ent = list(fq.column)
        if usable("frequency", i, fq, ent, []):
            width = parse_window(fq.window, f"frequency[{i}].window")
            name = _names("frequency", fq, "count", _fields(ent, fq.window))
            stages.setdefault(tuple(ent), []).append(
                Op("window", width, 0, bool(fq.include_current), outputs=(("count", name),))
            )
    for i, te in enumerate(conf.target_encoding):
        ent = list(te.column)
        if not usable("target_encoding", i, te, ent, []):
            continue
        if te.smoothing < 0 or not 0.0 <= te.prior <= 1.0:
            raise ValueError(
                f"features.target_encoding[{i}]: need smoothing >= 0 and 0 <= prior <= 1, "
                f"got smoothing={te.smoothing}, prior={te.prior}"
            )
        plan.needs_label = True
        delay = parse_window(te.delay, f"target_encoding[{i}].delay")
        plan.needs_label_ts |= delay is None
        width = parse_window(te.window, f"target_encoding[{i}].window")
        name = _names("target_encoding", te, "te", _fields(ent, te.window))
        stages.setdefault(tuple(ent), []).append(
            Op(
                "te",
                width,
                0,
                False,
                delay=delay,
                outputs=(("te", name),),
                smoothing=float(te.smoothing),
                prior=float(te.prior),
            )
        )
    plan.stages = [Stage(key, tuple(ops)) for key, ops in stages.items()]
    names = plan.feature_names
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(columns)))
    if clash:
        raise ValueError(f"features: output name(s) {clash} given twice or already in the input")
    return plan
