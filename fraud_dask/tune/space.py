"""The search space: ``tune.space`` checked before a cluster starts and drawn from a trial."""

from __future__ import annotations

from typing import Any

from fraud_dask.errors import UserError
from fraud_dask.tune.config import ParamKind


def space_of(space: Any) -> dict[str, dict[str, Any]]:
    """``tune.space`` as plain dicts, checked: bounds of numbers, choices of categories.

    Raises
    ------
    fraud_dask.errors.UserError
        An empty space, a number without ``low < high`` (``low > 0`` on a log scale), a
        categorical parameter without choices.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in space:
        p = space[name]
        kind = ParamKind(p.kind)
        where = f"tune.space.{name}"
        if kind is ParamKind.categorical:
            choices = list(p.choices or [])
            if not choices:
                raise UserError(f"{where}: a categorical parameter needs choices")
            out[str(name)] = {"kind": str(kind), "choices": choices}
            continue
        if p.low is None or p.high is None or not float(p.low) < float(p.high):
            raise UserError(f"{where}: needs low < high, got low={p.low} high={p.high}")
        if p.log and float(p.low) <= 0:
            raise UserError(f"{where}: a log scale needs low > 0, got {p.low}")
        low, high = (int(p.low), int(p.high)) if kind is ParamKind.int else (p.low, p.high)
        out[str(name)] = {"kind": str(kind), "low": low, "high": high, "log": bool(p.log)}
    if not out:
        raise UserError("tune.space is empty: name at least one parameter (configs/tune/)")
    return out


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw every parameter of ``space`` (from :func:`space_of`) from an Optuna trial."""
    drawn: dict[str, Any] = {}
    for name, p in space.items():
        if p["kind"] == ParamKind.categorical:
            drawn[name] = trial.suggest_categorical(name, p["choices"])
        elif p["kind"] == ParamKind.int:
            drawn[name] = trial.suggest_int(name, p["low"], p["high"], log=p["log"])
        else:
            drawn[name] = trial.suggest_float(name, p["low"], p["high"], log=p["log"])
    return drawn


def max_rounds(space: dict[str, dict[str, Any]], model: dict[str, Any]) -> int:
    """The most boosting rounds a trial can train (the pruner's step stride per fold)."""
    p = space.get("num_boost_round")
    if p is None:
        return int(model.get("num_boost_round") or 100)
    if p["kind"] == ParamKind.categorical:
        return max(int(v) for v in p["choices"])
    return int(p["high"])
