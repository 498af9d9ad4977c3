"""The contract of a feature kind: a spec that plans operations, operations that compute.

A kind is one module in :mod:`fraud_dask.features.kinds` holding

- its **spec**, a dataclass subclassing :class:`FeatureSpec`: the schema of its config group
  (``FeaturesConf.<group>``), its default output names, the input columns it names
  (:meth:`FeatureSpec.inputs`) and its **plan entry** (:meth:`FeatureSpec.plan`: the spec, checked
  against the input columns, becomes operations with windows in nanoseconds and final column
  names);
- its **operation**, a frozen dataclass subclassing :class:`EntityOp` (values over one entity's
  history) or :class:`RowOp` (values of the row alone), which owns the maths three times over:
  :meth:`~EntityOp.batch` (vectorised, over a whole sorted batch, with the numba kernels),
  :meth:`~EntityOp.online` (one event against its entity's kept rows) and
  :meth:`~EntityOp.describe` (the sentence of its reason codes), plus how far back it looks
  (:attr:`~EntityOp.reach`, which sets the online state's horizon and the history batch scoring
  reads).

The batch builder, the online state and the reason catalog only iterate over operations; none
of them knows a kind by name. The registry of kinds is the config schema itself:
:class:`~fraud_dask.features.config.FeaturesConf` has one field per kind, in plan order.

This module (and every kind module) imports numpy only: the config schema imports the specs when
a config is composed, so kernels (numba) are imported inside the ``batch`` methods, and the
``online`` methods reach them through :func:`kernels`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from fraud_dask.features.batch import Sorted
    from fraud_dask.features.online import Past
    from fraud_dask.features.plan import Planner

#: One planned operation and the entity key it runs over (``()``: the row alone).
Planned = tuple[tuple[str, ...], "EntityOp | RowOp"]


class FeatureSpec(abc.ABC):
    """Base of the spec dataclasses: one entry of a ``features`` config group."""

    #: output key -> default name template (fields: ``{entity}``, ``{window}``, ``{days}``, ...)
    default_names: ClassVar[dict[str, str]] = {}

    @abc.abstractmethod
    def inputs(self) -> list[str]:
        """The input columns the spec names (entity columns, counted columns)."""

    @abc.abstractmethod
    def plan(self, ctx: Planner) -> list[Planned]:
        """The operations of this spec, given the input columns (``ctx``)."""


@dataclass(frozen=True)
class EntityOp(abc.ABC):
    """One operation over an entity's history (the rows of the same key up to the current one).

    ``outputs`` pairs an output key (``count``, ``mean``, ``distinct:device_id``, ``risk``, ...)
    with its column name.
    """

    outputs: tuple[tuple[str, str], ...]

    #: reads ``is_fraud`` (and the label times)
    reads_labels: ClassVar[bool] = False
    #: needs the entity's previous row however old it is (time since the previous transaction)
    needs_previous: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def reach(self) -> int | None:
        """How far back (ns) before the row the operation looks; None: all history."""

    @property
    def needs_label_ts(self) -> bool:
        """Whether labels count from their ``label_ts`` (rather than by a fixed delay)."""
        return False

    @property
    def columns(self) -> tuple[str, ...]:
        """Input columns read besides ``tx_id``, ``ts``, ``amount`` and the labels."""
        return ()

    @abc.abstractmethod
    def batch(self, s: Sorted) -> dict[str, np.ndarray]:
        """Every output for every row of a sorted batch, keyed by output key, in sorted order."""

    @abc.abstractmethod
    def online(self, past: Past, out: dict[str, float]) -> None:
        """Write every output of one event, seen against its entity's kept rows, into ``out``."""

    @abc.abstractmethod
    def describe(self, key: str, entity: str) -> str:
        """The reason-code sentence of output ``key`` over ``entity`` (``card_id``, ...)."""


@dataclass(frozen=True)
class RowOp(abc.ABC):
    """One operation on the row alone (its timestamp): computed before any shuffle."""

    outputs: tuple[tuple[str, str], ...]

    @abc.abstractmethod
    def batch(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Every output for every row of a frame (in the frame's order), keyed by output key."""

    @abc.abstractmethod
    def online(self, t: int, out: dict[str, float]) -> None:
        """Write every output of one event at ``t`` (ns since the epoch, UTC) into ``out``."""

    @abc.abstractmethod
    def describe(self, key: str) -> str:
        """The reason-code sentence of output ``key``."""


def reach_of(width: int | None, *more: int | None) -> int | None:
    """``width`` plus offsets and delays; None when the window is unbounded."""
    return None if width is None else width + sum(m or 0 for m in more)


# -- single-event helpers shared by the kinds ------------------------------------------------
def window_rows(ts: np.ndarray, t: int, p: int, width: int | None, offset: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of the first ``p`` in the window ``(t - offset - width, t - offset]``.

    The single-event counterpart of :func:`fraud_dask.features.kernels.window_bounds`.
    """
    if width is None:
        lo = 0
    else:
        lo = int(ts[:p].searchsorted(t - offset - width, "right"))
    hi = p if offset == 0 else int(ts[:p].searchsorted(t - offset, "right"))
    return lo, max(hi, lo)


def kernels() -> Any:
    """:mod:`fraud_dask.features.kernels` (numba), imported on the first online evaluation.

    The kinds import numpy only (the config schema imports them); an operation's ``online``
    method calls the compiled single-event kernels through this, once per event.
    """
    global _KERNELS
    if _KERNELS is None:
        from fraud_dask.features import kernels as module

        _KERNELS = module
    return _KERNELS


_KERNELS: Any = None
#: the ``width`` the single-event kernels take for an unbounded window (all history)
UNBOUNDED = 2**62
