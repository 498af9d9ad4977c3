"""Data-aware folds (``split.mode=auto``) and an early-stopping period that can measure.

A new client's source may span three weeks or three years and hold 0.1% or 2% fraud; fixed
lengths either train on a sliver of the history or test on folds with a handful of frauds. From
one small aggregate of the source (rows and frauds per day, :func:`daily_counts`) this module
chooses, and says why:

- the label-delay gap: ``split.delay_days`` when set, else the source's label delay;
- test folds: ``n_folds`` consecutive folds ending on the data's last day, each the smallest
  whole number of weeks that holds ``min_test_frauds`` frauds (widened before the number of
  folds is reduced; a fold that still falls short is flagged, never averaged in silently);
- training: as long as the history before the oldest fold allows, up to ``max_train_days``;
- early stopping (:func:`valid_days_for`): the shortest period at the end of a fold's training
  that holds ``model.valid_min_frauds`` frauds, at most ``model.valid_max_share`` of it.

All of it is plain pandas on the per-day table; nothing here touches the cluster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from fraud_dask.errors import UserError
from fraud_dask.split.folds import Anchor, Fold, FoldSet, SplitConf, SplitMode, make_folds

if TYPE_CHECKING:
    import dask.dataframe as dd

WEEK = 7
_LENGTHS = ("train_start", "train_end", "test_start", "test_end")
_ANCHORS = ("validation_train_start", "test_train_start")


@dataclass
class FoldPlan:
    """Folds chosen for a source, with the lengths behind them and the reasons in words."""

    lengths: dict[str, int]
    """``train_days``, ``delay_days``, ``test_days``, ``n_folds``, ``fold_step_days``."""
    folds: dict[str, list[Fold]]
    """Folds per family: ``test`` always, ``validation`` when the history holds them."""
    reasons: list[str] = field(default_factory=list)
    """Why each length was chosen, one sentence each."""
    warnings: list[str] = field(default_factory=list)
    """What could not be met (a test fold under ``min_test_frauds``, a short history)."""
    fold_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per fold: ``train_rows``, ``train_frauds``, ``test_rows``, ``test_frauds`` (raw, before
    the known-compromised cards are dropped)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (what metrics.json and the reports show)."""
        return {
            "mode": "auto",
            "lengths": dict(self.lengths),
            "folds": {
                which: [f.to_dict() | self.fold_counts.get(f.name, {}) for f in folds]
                for which, folds in self.folds.items()
            },
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }


def _day_counts(part: pd.DataFrame, ts_col: str, label_col: str) -> pd.DataFrame:
    ts = part[ts_col]
    if getattr(ts.dtype, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    day = ts.dt.floor("D").astype("datetime64[ns]")
    label = part[label_col] if label_col in part.columns else pd.Series(0, index=part.index)
    out = pd.DataFrame({"day": day.to_numpy(), "frauds": label.fillna(0).to_numpy(dtype="int64")})
    return out.groupby("day").agg(rows=("frauds", "size"), frauds=("frauds", "sum")).reset_index()


def daily_counts(
    frame: dd.DataFrame, *, ts_col: str = "ts", label_col: str = "is_fraud"
) -> pd.DataFrame:
    """Rows and frauds per calendar day (UTC) of a frame, in one pass.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Transactions with ``ts_col`` (and ``label_col``; absent: no frauds).
    ts_col, label_col : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        Indexed by day (``datetime.date``), every day from the first to the last present (days
        without a row hold zeros), columns ``rows`` and ``frauds`` (int64).
    """
    cols = [c for c in (ts_col, label_col) if c in frame.columns]
    meta = pd.DataFrame(
        {
            "day": pd.Series(dtype="datetime64[ns]"),
            "rows": pd.Series(dtype="int64"),
            "frauds": pd.Series(dtype="int64"),
        }
    )
    per_part = frame[cols].map_partitions(_day_counts, ts_col, label_col, meta=meta)
    table = per_part.compute().groupby("day")[["rows", "frauds"]].sum()
    return _complete(table)


def _complete(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        raise ValueError("split: the data holds no rows, so no fold can be chosen")
    index = pd.to_datetime(table.index)
    table = table.set_axis(index)
    days = pd.date_range(index.min(), index.max(), freq="D")
    table = table.reindex(days, fill_value=0).astype("int64")
    table.index = pd.Index([d.date() for d in table.index], name="day")
    return table


def _sum(daily: pd.DataFrame, first: dt.date, last: dt.date, col: str) -> int:
    return int(daily.loc[(daily.index >= first) & (daily.index <= last), col].sum())


def _explicit_dates(conf: SplitConf) -> list[str]:
    return [k for k in (*_LENGTHS, *_ANCHORS) if getattr(conf, k) is not None]


def _test_windows(
    last: dt.date, n: int, test_days: int, step: int
) -> list[tuple[dt.date, dt.date]]:
    out = []
    for i in range(n):
        end = last - dt.timedelta(days=i * step)
        out.append((end - dt.timedelta(days=test_days - 1), end))
    return out


def plan_folds(
    conf: SplitConf,
    daily: pd.DataFrame,
    *,
    label_delay_days: int | None,
    need_validation: bool = False,
) -> FoldPlan:
    """Choose fold lengths from a source's daily counts (``split.mode=auto``).

    Parameters
    ----------
    conf : SplitConf
        The split config: ``n_folds`` (target), ``min_test_frauds``, ``max_train_days``,
        ``min_train_days``, ``known_*``; lengths that are set (``train_days``, ``test_days``,
        ``delay_days``, ``fold_step_days``) are kept as given.
    daily : pandas.DataFrame
        :func:`daily_counts` of the source (or of its feature frame).
    label_delay_days : int or None
        The source's label delay (``data.label_delay_days``), the gap when ``delay_days`` is
        unset.
    need_validation : bool
        Also fit the validation folds (for ``model.search``) into the history.

    Returns
    -------
    FoldPlan

    Raises
    ------
    ValueError
        Explicit dates with ``mode=auto``, or a history too short for even one fold of
        ``min_train_days`` training days and one test week after the gap.
    """
    given = _explicit_dates(conf)
    if given:
        raise UserError(
            f"split.mode=auto chooses the dates from the data, but {given} are set; "
            "use split.mode=fixed (e.g. split=default) to give dates"
        )
    daily = _complete(daily) if not isinstance(daily.index[0], dt.date) else daily
    first, last = daily.index[0], daily.index[-1]
    span = (last - first).days + 1
    total_frauds = int(daily["frauds"].sum())
    min_frauds = int(conf.min_test_frauds)
    max_train = int(conf.max_train_days)
    min_train = int(conf.min_train_days)
    min_train_frauds = int(conf.min_train_frauds or 1)
    max_test = int(conf.max_test_days or span)
    target = max(1, int(conf.n_folds))
    reasons = [
        f"the data spans {span} days ({first}..{last}) with {int(daily['rows'].sum()):,} rows "
        f"and {total_frauds:,} frauds ({total_frauds / max(1, int(daily['rows'].sum())):.3%})"
    ]
    warnings: list[str] = []

    delay = conf.delay_days
    if delay is None:
        delay = int(label_delay_days or 0)
        reasons.append(f"label-delay gap of {delay} days: the source's label delay")
    else:
        delay = int(delay)
        reasons.append(f"label-delay gap of {delay} days: split.delay_days")
    fixed_test = conf.test_days
    fixed_train = conf.train_days
    fixed_step = conf.fold_step_days

    def room(n: int, test: int, step: int) -> int:
        """Training days the history leaves before the oldest fold (and validation folds)."""
        used = (n - 1) * step + test + delay
        if need_validation:
            used += (n - 1) * step + test + delay
        return span - used

    def fold_frauds(n: int, test: int, step: int) -> list[int]:
        return [_sum(daily, a, b, "frauds") for a, b in _test_windows(last, n, test, step)]

    need_train = max(min_train, int(fixed_train or 0))

    def train_length(n: int, test: int, step: int) -> int:
        return int(fixed_train) if fixed_train is not None else min(max_train, room(n, test, step))

    def train_frauds(n: int, test: int, step: int) -> list[int]:
        length = train_length(n, test, step)
        out = []
        for a, _ in _test_windows(last, n, test, step):
            end = a - dt.timedelta(days=delay + 1)
            out.append(_sum(daily, end - dt.timedelta(days=length - 1), end, "frauds"))
        return out

    longest_test = min(span, max_test)
    chosen, fallback = None, None
    for n in range(target, 0, -1):
        tests = [int(fixed_test)] if fixed_test is not None else range(WEEK, longest_test + 1, WEEK)
        for test in tests:
            step = int(fixed_step) if fixed_step is not None else test
            if room(n, test, step) < need_train:
                break
            trains = train_frauds(n, test, step)
            if min(trains) < 1:  # a training period needs both classes
                continue
            candidate = (n, test, step, fold_frauds(n, test, step))
            ok_train = min(trains) >= min_train_frauds
            # the folds do not eat the history: training at least as long as the test folds
            # together (else fewer folds, which leave the model more to learn from)
            ok_share = fixed_train is not None or train_length(n, test, step) >= n * test
            key = (ok_train, ok_share, min(candidate[3]), n)
            if fallback is None or key > fallback[0]:
                fallback = (key, candidate)
            if ok_train and ok_share and min(candidate[3]) >= min_frauds:
                chosen = candidate
                break
        if chosen is not None:
            break
    if fallback is None:
        need = need_train + delay + int(fixed_test or WEEK)
        if span >= need:
            raise UserError(
                f"split.mode=auto: the data spans {span} days ({first}..{last}) with "
                f"{total_frauds} frauds, too few to train and test: no fold of at least "
                f"{need_train} training days (after a {delay}-day gap) holds a fraud"
            )
        raise UserError(
            f"split.mode=auto: the data spans {span} days ({first}..{last}); one fold needs at "
            f"least {need} (split.min_train_days={min_train}, a {delay}-day label-delay gap, "
            f"{int(fixed_test or WEEK)} test days"
            f"{', and validation folds' if need_validation else ''})"
        )
    if chosen is None and min(train_frauds(*fallback[1][:3])) < min_train_frauds:
        warnings.append(
            f"the training periods hold as few as {min(train_frauds(*fallback[1][:3]))} frauds "
            f"(< split.min_train_frauds={min_train_frauds}): the model has little to learn from"
        )
    if chosen is None:
        chosen_or_fallback = fallback[1]
    else:
        chosen_or_fallback = chosen
    n, test, step, counts = chosen_or_fallback
    if fixed_test is not None:
        reasons.append(f"test folds of {test} days: split.test_days")
    elif chosen is not None:
        reasons.append(
            f"test folds of {test} days: the shortest whole number of weeks in which each of "
            f"{n} fold(s) holds at least {min_frauds} frauds (split.min_test_frauds)"
        )
    else:
        reasons.append(
            f"test folds of {test} days: the history is too short or too clean for "
            f"{min_frauds} frauds per fold within split.max_test_days={max_test}; the folds "
            "with the most frauds were kept"
        )
    if n < target:
        reasons.append(
            f"{n} fold(s) instead of split.n_folds={target}: more would leave test folds under "
            f"{min_frauds} frauds, or training periods shorter than the test folds together or "
            f"under {min_train_frauds} frauds"
        )
    for i, c in enumerate(counts):
        if c < min_frauds:
            warnings.append(
                f"test fold test-{i} holds {c} frauds (< split.min_test_frauds={min_frauds}): "
                "its metrics are too noisy to trust"
            )
    available = room(n, test, step)
    train = train_length(n, test, step)
    if fixed_train is not None:
        reasons.append(f"training periods of {train} days: split.train_days")
    else:
        why = (
            f"capped at split.max_train_days ({available} days of history available)"
            if train < available
            else "all the history before the oldest test fold"
        )
        reasons.append(f"training periods of {train} days: {why}")
    lengths = {
        "train_days": train,
        "delay_days": delay,
        "test_days": test,
        "n_folds": n,
        "fold_step_days": step,
    }
    resolved = SplitConf(
        train_days=train,
        delay_days=delay,
        test_days=test,
        n_folds=n,
        fold_step_days=step,
        mode=SplitMode.fixed,
        anchor=Anchor.data_end,
        offset_days=0,
        known_compromised=conf.known_compromised,
        known_since=conf.known_since,
    )
    data_range = (pd.Timestamp(first), pd.Timestamp(last))
    folds = {"test": make_folds(resolved, FoldSet.test, data_range)}
    try:
        folds["validation"] = make_folds(resolved, FoldSet.validation, data_range)
    except ValueError:
        if need_validation:
            raise
    plan = FoldPlan(lengths, folds, reasons, warnings)
    for family in folds.values():
        for f in family:
            plan.fold_counts[f.name] = {
                "train_rows": _sum(daily, f.train_start, f.train_end, "rows"),
                "train_frauds": _sum(daily, f.train_start, f.train_end, "frauds"),
                "test_rows": _sum(daily, f.test_start, f.test_end, "rows"),
                "test_frauds": _sum(daily, f.test_start, f.test_end, "frauds"),
            }
    return plan


def valid_days_for(
    daily: pd.DataFrame,
    fold: Fold,
    *,
    valid_days: int | None,
    min_frauds: int,
    max_share: float,
) -> tuple[int, int, str | None]:
    """Days at the end of a fold's training period held out for early stopping.

    Parameters
    ----------
    daily : pandas.DataFrame
        :func:`daily_counts` of the data.
    fold : Fold
        The fold being trained.
    valid_days : int or None
        ``model.valid_days``: kept when set (0: no early stopping); None: the shortest period
        at the end of training holding ``min_frauds`` frauds, at most ``max_share`` of it.
    min_frauds : int
        ``model.valid_min_frauds``.
    max_share : float
        ``model.valid_max_share``.

    Returns
    -------
    (int, int, str or None)
        The days, the frauds they hold, and a warning when they hold fewer than ``min_frauds``.
    """
    if valid_days is not None and int(valid_days) <= 0:
        return 0, 0, None

    def frauds(days: int) -> int:
        return _sum(daily, fold.train_end - dt.timedelta(days=days - 1), fold.train_end, "frauds")

    longest = max(1, min(fold.train_days - 1, int(fold.train_days * float(max_share))))
    if valid_days is not None:
        days = int(valid_days)
        got = frauds(days)
        if got < min_frauds:
            return (
                days,
                got,
                (
                    f"fold {fold.name}: early stopping watches the last {days} training "
                    f"day(s), which hold {got} frauds (< model.valid_min_frauds={min_frauds}); "
                    "the round count it picks is noise (leave model.valid_days unset to size "
                    "it from the data)"
                ),
            )
        return days, got, None
    for days in range(1, longest + 1):
        got = frauds(days)
        if got >= min_frauds:
            return days, got, None
    got = frauds(longest)
    return (
        longest,
        got,
        (
            f"fold {fold.name}: the last {longest} training days (model.valid_max_share="
            f"{max_share}) hold only {got} frauds (< model.valid_min_frauds={min_frauds}) for "
            "early stopping"
        ),
    )
