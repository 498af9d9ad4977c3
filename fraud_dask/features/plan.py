"""Resolve a :class:`~fraud_dask.features.config.FeaturesConf` into stages of concrete operations.

Every feature kind plans its own config group (:meth:`FeatureSpec.plan
<fraud_dask.features.kinds.base.FeatureSpec.plan>`); this module walks the groups in order,
checks the specs against the input columns through a :class:`Planner`, and groups the operations
by entity key. A stage is everything computed over one entity key (a column or a combination):
it needs one shuffle by that key and one pass of the kernels. Row operations (the calendar) need
no shuffle. Operations carry their windows in nanoseconds and the final output column names, so
computing needs no config. This module imports no dask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fraud_dask.features.config import FeaturesConf, as_features_conf, spec_groups
from fraud_dask.features.durations import parse_window, window_days, window_label
from fraud_dask.features.kinds.base import EntityOp, FeatureSpec, RowOp


def _horizon(ops: list[EntityOp]) -> int | None:
    reach = [op.reach for op in ops]
    return None if None in reach else max((r for r in reach if r is not None), default=0)


@dataclass(frozen=True)
class Stage:
    """The operations computed over one entity key."""

    key: tuple[str, ...]
    ops: tuple[EntityOp, ...]

    @property
    def names(self) -> list[str]:
        """Output column names, in declaration order."""
        return [name for op in self.ops for _, name in op.outputs]

    @property
    def columns(self) -> list[str]:
        """Input columns the stage reads besides tx_id, ts, amount (key first)."""
        return list(dict.fromkeys([*self.key, *(c for op in self.ops for c in op.columns)]))

    @property
    def horizon(self) -> int | None:
        """How far back (ns) the stage's operations look; None if one is unbounded."""
        return _horizon(list(self.ops))

    @property
    def reads_labels(self) -> bool:
        """Whether an operation reads labels (risk, target encoding)."""
        return any(op.reads_labels for op in self.ops)

    @property
    def needs_previous(self) -> bool:
        """Whether an operation needs each entity's previous row however old it is."""
        return any(op.needs_previous for op in self.ops)


@dataclass
class Plan:
    """Row operations, entity stages, the output names and what was skipped."""

    rows: tuple[RowOp, ...] = ()
    stages: list[Stage] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def row_names(self) -> list[str]:
        """The row operations' output columns (the calendar)."""
        return [name for op in self.rows for _, name in op.outputs]

    @property
    def feature_names(self) -> list[str]:
        """Every feature column, row operations first, then the stages in order."""
        return self.row_names + [n for s in self.stages for n in s.names]

    @property
    def needs_label(self) -> bool:
        """Whether some operation reads ``is_fraud``."""
        return any(s.reads_labels for s in self.stages)

    @property
    def needs_label_ts(self) -> bool:
        """Whether some operation counts labels from their ``label_ts``."""
        return any(op.needs_label_ts for s in self.stages for op in s.ops)

    def horizon(self) -> int | None:
        """How far back (ns) a row's features look; None if some window is unbounded.

        The online scorer keeps at least this much history per entity.
        """
        return _horizon([op for s in self.stages for op in s.ops])


class _Days(dict[str, str]):
    """Name fields; ``{days}`` is computed only when a template asks for it."""

    def __init__(self, span: str | None, **fields: str) -> None:
        super().__init__(fields)
        self.span = span

    def __missing__(self, key: str) -> str:
        if key == "days":
            return window_days(self.span)
        raise KeyError(key)


class Planner:
    """What a spec's plan entry sees: the input columns, its names, its place in the config.

    Parameters
    ----------
    plan : Plan
        The plan being built (skipped optional specs are noted in it).
    columns : list of str
        Columns of the input frame.
    group : str
        The config group (``windows``, ``risk``, ...), for messages.
    index : int
        The spec's position in its group, for messages.
    spec : FeatureSpec
        The spec (its ``names``, ``optional`` and ``default_names``).
    """

    def __init__(
        self, plan: Plan, columns: list[str], group: str, index: int, spec: FeatureSpec
    ) -> None:
        self.plan, self.columns, self.spec = plan, columns, spec
        self.where = f"{group}[{index}]"
        self.group = group

    def error(self, message: str) -> ValueError:
        """A ValueError that names the spec (``features.risk[1]: ...``)."""
        return ValueError(f"features.{self.where}: {message}")

    def usable(self, entity: list[str], extra: list[str] | None = None) -> bool:
        """Whether the entity (and ``extra``) columns exist; False (noted) for optional specs.

        Raises
        ------
        ValueError
            The entity is empty, or a column is missing and the spec is not ``optional``.
        """
        if not entity:
            raise self.error("the entity list is empty")
        absent = [c for c in [*entity, *(extra or [])] if c not in self.columns]
        if not absent:
            return True
        if getattr(self.spec, "optional", False):
            self.plan.skipped.append(f"{self.where} ({'+'.join(entity)}): no column {absent}")
            return False
        raise self.error(
            f"column(s) {absent} not in the input frame (columns: {self.columns}); "
            "mark the spec `optional: true` to skip it when absent"
        )

    def window(self, text: str | None, what: str) -> int | None:
        """A duration of the spec in nanoseconds (None: unbounded)."""
        return parse_window(text, f"{self.where}.{what}")

    def check_outputs(self, outputs: list[str]) -> None:
        """Refuse outputs the kind does not produce."""
        bad = [o for o in outputs if o not in self.spec.default_names]
        if bad:
            raise self.error(f"unknown output(s) {bad}")

    def name(self, key: str, entity: list[str], window: str | None, **extra: str) -> str:
        """The column name of output ``key``: the spec's template, else the kind's default."""
        names: dict[str, str] = getattr(self.spec, "names", {})
        template = dict(self.spec.default_names, **dict(names)).get(key)
        if template is None:
            raise ValueError(f"features.{self.group}: no name template for output {key!r}")
        fields = _Days(window, entity="_".join(entity), window=window_label(window), **extra)
        try:
            return template.format_map(fields)
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"features.{self.group}: bad name template {template!r}: {exc}"
            ) from None


def make_plan(conf: FeaturesConf | Mapping[str, Any], columns: list[str]) -> Plan:
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
    plan = Plan(keep=[c for c in conf.keep if c in columns])
    for base in ("tx_id", "ts", "amount"):
        if base not in columns:
            raise ValueError(f"features: the input frame has no {base!r} column; got {columns}")
    rows: list[RowOp] = []
    stages: dict[tuple[str, ...], list[EntityOp]] = {}
    for group, specs in spec_groups(conf):
        for i, spec in enumerate(specs):
            for key, op in spec.plan(Planner(plan, columns, group, i, spec)):
                if isinstance(op, RowOp):
                    rows.append(op)
                else:
                    stages.setdefault(key, []).append(op)
    plan.rows = tuple(rows)
    plan.stages = [Stage(key, tuple(ops)) for key, ops in stages.items()]
    names = plan.feature_names
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(columns)))
    if clash:
        raise ValueError(f"features: output name(s) {clash} given twice or already in the input")
    return plan


def spec_columns(conf: FeaturesConf | Mapping[str, Any]) -> list[str]:
    """Every column a features config names (base columns, labels, entities, counted columns).

    Used where the source's columns are unknown (a bundle's spec at scoring time): planning
    against them applies every spec.
    """
    conf = conf if isinstance(conf, FeaturesConf) else as_features_conf(conf)
    cols = ["tx_id", "ts", "amount", "is_fraud", "label_ts"]
    for _, specs in spec_groups(conf):
        for spec in specs:
            cols.extend(spec.inputs())
    return list(dict.fromkeys(cols))
