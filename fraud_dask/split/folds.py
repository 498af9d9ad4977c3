"""Time-based splits: train period, label-delay gap, test period, and prequential folds.

Never a random split. A :class:`SplitConf` (the schema of the ``split`` config group) turns into
:class:`Fold` definitions (calendar days, UTC) with :func:`make_folds`; :func:`select_train` and
:func:`select_test` apply one fold lazily to a canonical transaction frame. The test frame drops,
for each test day D, the cards already known to be compromised before D, as the Fraud Detection
Handbook does; the training frame keeps everything.

The book's protocol (``configs/split/handbook.yaml``): baseline fold train 2018-07-25..07-31,
7-day delay, test 2018-08-08..08-14; prequential folds of 7/7/7 days shifted back 7 days per
fold, validation folds starting training on 2018-07-11, test folds on 2018-08-15.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd

DEFAULT_DAYS = 7
ONE_DAY = dt.timedelta(days=1)


class SplitMode(StrEnum):
    """How the folds' lengths are chosen."""

    fixed = "fixed"  # the lengths and dates of the config, as given
    auto = "auto"  # sized from the source's span and daily fraud counts (fraud_dask.split.auto)


class Anchor(StrEnum):
    """Where folds are anchored when the config gives no date."""

    data_end = "data_end"  # the newest test fold ends on the data's last day (minus offset_days)
    data_start = "data_start"  # the baseline fold starts training offset_days after the first day


class KnownRule(StrEnum):
    """When a card counts as known compromised before test day D."""

    fraud_day = "fraud_day"  # a fraud on a day <= D - (delay + 1): the book's rule
    label_ts = "label_ts"  # a fraud whose label_ts < start of D
    none = "none"  # keep every test row


class KnownSince(StrEnum):
    """Which frauds count towards the known-compromised cards."""

    train_start = "train_start"  # frauds from the fold's first training day on: the book's rule
    all = "all"  # every fraud in the data's history


class FoldSet(StrEnum):
    """The three families of folds a split config defines."""

    baseline = "baseline"
    validation = "validation"
    test = "test"


@dataclass
class SplitConf:
    """Schema of the ``split`` config group.

    Dates are ISO days (``"2018-07-25"``, UTC); end dates are inclusive. The baseline fold is
    fixed by the first of: ``train_start``; ``train_end``; ``test_start``; ``test_end``;
    ``test_train_start`` (the oldest test fold); ``validation_train_start``; else by ``anchor``
    and the data's time range. A length left ``None`` comes from the explicit dates that imply it,
    else defaults to 7 days; a length and dates that disagree are an error.

    Prequential folds: ``n_folds`` folds, fold i starting training ``i * fold_step_days`` before
    fold 0. Test folds start at ``test_train_start`` (default: baseline + (n_folds - 1) steps, so
    the oldest test fold is the baseline); validation folds start at ``validation_train_start``
    (default: baseline - (delay_days + test_days), so their test periods end before the baseline
    training period ends).

    ``mode=auto`` (``configs/split/auto.yaml``, the default) sizes the folds from the data
    instead: lengths left ``None`` are chosen by :func:`fraud_dask.split.auto.plan_folds` (test
    folds long enough to hold ``min_test_frauds`` frauds each, training as long as the history
    allows up to ``max_train_days``, the label-delay gap from the source), lengths that are set
    are kept; dates are not allowed with ``auto``.
    """

    mode: SplitMode = SplitMode.fixed
    train_start: str | None = None
    train_end: str | None = None
    test_start: str | None = None
    test_end: str | None = None
    train_days: int | None = None
    delay_days: int | None = None
    test_days: int | None = None
    anchor: Anchor = Anchor.data_end
    offset_days: int = 0
    n_folds: int = 1
    fold_step_days: int | None = None
    validation_train_start: str | None = None
    test_train_start: str | None = None
    known_compromised: KnownRule = KnownRule.fraud_day
    known_since: KnownSince = KnownSince.train_start
    # mode=auto: a test fold should hold at least this many frauds (else widened, or flagged)
    min_test_frauds: int = 100
    # mode=auto: the longest training period, and the shortest one worth training on
    max_train_days: int = 365
    min_train_days: int = 7
    # mode=auto: the frauds a training period should hold, and the longest test fold
    min_train_frauds: int = 20
    max_test_days: int = 91


@dataclass(frozen=True)
class Fold:
    """One train / delay / test split in calendar days (UTC); end days are inclusive."""

    name: str
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date

    @property
    def delay_days(self) -> int:
        """Days between the last training day and the first test day."""
        return (self.test_start - self.train_end).days - 1

    @property
    def train_days(self) -> int:
        """Number of training days."""
        return (self.train_end - self.train_start).days + 1

    @property
    def test_days(self) -> int:
        """Number of test days."""
        return (self.test_end - self.test_start).days + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (ISO dates, inclusive ends)."""
        return {
            "name": self.name,
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "delay_days": self.delay_days,
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
        }


def _date(conf: SplitConf, key: str) -> dt.date | None:
    value = getattr(conf, key)
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"split.{key}: got {value!r}, expected an ISO date like '2018-07-25'"
        ) from None


def _length(conf: SplitConf, key: str, implied: int | None) -> int:
    value = getattr(conf, key)
    if value is not None and implied is not None and int(value) != implied:
        raise ValueError(
            f"split.{key}: got {value}, but the explicit dates imply {implied} days; "
            f"set one or make them agree"
        )
    length = implied if value is None else int(value)
    if length is None:
        length = DEFAULT_DAYS
    minimum = 0 if key == "delay_days" else 1
    if length < minimum:
        raise ValueError(f"split.{key}: got {length}, expected an integer >= {minimum}")
    return length


def _day(value: Any) -> dt.date:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.date()


def make_folds(
    conf: SplitConf,
    which: FoldSet | str = FoldSet.test,
    data_range: tuple[Any, Any] | None = None,
) -> list[Fold]:
    """Turn a split config into fold definitions.

    Parameters
    ----------
    conf : SplitConf
        The split configuration.
    which : FoldSet or str
        ``"baseline"`` (one fold), ``"test"`` or ``"validation"`` (``n_folds`` prequential folds,
        fold 0 the newest).
    data_range : tuple of timestamps, optional
        First and last transaction time of the data (see :func:`data_time_range`). Required when
        the config gives no date; when given, every fold must lie inside it.

    Returns
    -------
    list of Fold
        Folds named ``"<which>-<i>"`` (``"baseline"`` for the baseline).

    Raises
    ------
    ValueError
        On a malformed date or length, inconsistent dates, a relative config without
        ``data_range``, or a fold that falls outside ``data_range``.
    """
    which = FoldSet(which)
    if SplitMode(conf.mode) is SplitMode.auto:
        raise ValueError(
            "split.mode=auto: the folds depend on the data's fraud counts; use "
            "fraud_dask.split.plan_folds (or split.mode=fixed with make_folds)"
        )
    d_train0, d_train1 = _date(conf, "train_start"), _date(conf, "train_end")
    d_test0, d_test1 = _date(conf, "test_start"), _date(conf, "test_end")
    implied = {
        "train_days": (d_train1 - d_train0).days + 1 if d_train0 and d_train1 else None,
        "delay_days": (d_test0 - d_train1).days - 1 if d_train1 and d_test0 else None,
        "test_days": (d_test1 - d_test0).days + 1 if d_test0 and d_test1 else None,
    }
    for key, days in implied.items():
        if days is not None and days < (0 if key == "delay_days" else 1):
            raise ValueError(f"split: the explicit dates give {key}={days}; check their order")
    train_days = _length(conf, "train_days", implied["train_days"])
    delay_days = _length(conf, "delay_days", implied["delay_days"])
    test_days = _length(conf, "test_days", implied["test_days"])
    n_folds = int(conf.n_folds)
    if n_folds < 1:
        raise ValueError(f"split.n_folds: got {n_folds}, expected an integer >= 1")
    step = test_days if conf.fold_step_days is None else int(conf.fold_step_days)
    if step < 1:
        raise ValueError(f"split.fold_step_days: got {step}, expected an integer >= 1")
    back_to_test = dt.timedelta(days=train_days + delay_days)
    valid_gap = dt.timedelta(days=delay_days + test_days)
    span = dt.timedelta(days=(n_folds - 1) * step)
    test_anchor, valid_anchor = (
        _date(conf, "test_train_start"),
        _date(conf, "validation_train_start"),
    )

    if d_train0 is not None:
        baseline = d_train0
    elif d_train1 is not None:
        baseline = d_train1 - dt.timedelta(days=train_days - 1)
    elif d_test0 is not None:
        baseline = d_test0 - back_to_test
    elif d_test1 is not None:
        baseline = d_test1 - dt.timedelta(days=test_days - 1) - back_to_test
    elif test_anchor is not None:
        baseline = test_anchor - span
    elif valid_anchor is not None:
        baseline = valid_anchor + valid_gap
    else:
        if data_range is None:
            raise ValueError(
                "split: the config gives no date, so folds are relative to the data; "
                "pass data_range=(first_ts, last_ts) (see data_time_range)"
            )
        offset = dt.timedelta(days=int(conf.offset_days))
        if Anchor(conf.anchor) is Anchor.data_start:
            baseline = _day(data_range[0]) + offset
        else:
            last = _day(data_range[1]) - offset
            baseline = last - dt.timedelta(days=test_days - 1) - back_to_test - span

    if which is FoldSet.baseline:
        starts, prefix = [baseline], None
    else:
        if which is FoldSet.test:
            anchor = test_anchor if test_anchor is not None else baseline + span
        else:
            anchor = valid_anchor if valid_anchor is not None else baseline - valid_gap
        starts = [anchor - dt.timedelta(days=i * step) for i in range(n_folds)]
        prefix = which.value
    folds = []
    for i, start in enumerate(starts):
        train_end = start + dt.timedelta(days=train_days - 1)
        test_start = train_end + dt.timedelta(days=delay_days + 1)
        folds.append(
            Fold(
                name="baseline" if prefix is None else f"{prefix}-{i}",
                train_start=start,
                train_end=train_end,
                test_start=test_start,
                test_end=test_start + dt.timedelta(days=test_days - 1),
            )
        )
    if data_range is not None:
        first, last = _day(data_range[0]), _day(data_range[1])
        for fold in folds:
            if fold.train_start < first or fold.test_end > last:
                raise ValueError(
                    f"split: fold {fold.name} spans {fold.train_start}..{fold.test_end}, "
                    f"outside the data's days {first}..{last}"
                )
    return folds


def data_time_range(frame: dd.DataFrame, ts_col: str = "ts") -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last event time of a frame, in one pass.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Transactions with a timestamp column.
    ts_col : str
        Name of the timestamp column.

    Returns
    -------
    tuple of pandas.Timestamp
        ``(min, max)`` of ``ts_col``.
    """
    import dask

    _require(frame, [ts_col], "data_time_range")
    first, last = dask.compute(frame[ts_col].min(), frame[ts_col].max())
    if pd.isna(first):
        raise ValueError(f"data_time_range: column {ts_col!r} has no values")
    return pd.Timestamp(first), pd.Timestamp(last)


def _require(frame: Any, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; the frame has {list(frame.columns)}"
        )


def _bound(day: dt.date, frame: Any, ts_col: str) -> pd.Timestamp:
    tz = getattr(frame[ts_col].dtype, "tz", None)
    ts = pd.Timestamp(day)
    return ts.tz_localize(tz) if tz is not None else ts


def _between(frame: dd.DataFrame, first: dt.date, last: dt.date, ts_col: str) -> dd.DataFrame:
    start = _bound(first, frame, ts_col)
    stop = _bound(last + ONE_DAY, frame, ts_col)
    return frame[(frame[ts_col] >= start) & (frame[ts_col] < stop)]


def select_train(frame: dd.DataFrame, fold: Fold, *, ts_col: str = "ts") -> dd.DataFrame:
    """Rows of the fold's training period (everything in it, frauds included), lazily.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Canonical transactions.
    fold : Fold
        The fold to apply.
    ts_col : str
        Timestamp column.

    Returns
    -------
    dask.dataframe.DataFrame
        Rows with ``train_start <= day(ts) <= train_end``.
    """
    _require(frame, [ts_col], f"select_train({fold.name})")
    return _between(frame, fold.train_start, fold.train_end, ts_col)


def select_after_train(frame: dd.DataFrame, fold: Fold, *, ts_col: str = "ts") -> dd.DataFrame:
    """Every row after the fold's training period up to its test end (gap and test, no card
    dropped), lazily: what the fold's model scores as new rows. Rows with
    ``train_end < day(ts) <= test_end``."""
    _require(frame, [ts_col], f"select_after_train({fold.name})")
    return _between(frame, fold.train_end + ONE_DAY, fold.test_end, ts_col)


def known_compromised(
    frame: dd.DataFrame,
    fold: Fold,
    *,
    rule: KnownRule | str = KnownRule.fraud_day,
    since: KnownSince | str = KnownSince.train_start,
    ts_col: str = "ts",
    card_col: str = "card_id",
    label_col: str = "is_fraud",
    label_ts_col: str = "label_ts",
) -> dd.DataFrame:
    """Cards known to be compromised, with the first test day on which they are known (lazy).

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Canonical transactions covering the fold.
    fold : Fold
        The fold whose test period is filtered.
    rule : KnownRule or str
        ``fraud_day``: a fraud on day F is known from day F + delay + 1 (the book);
        ``label_ts``: a fraud is known from the first day starting after its ``label_ts``.
    since : KnownSince or str
        ``train_start``: only frauds from the fold's first training day count (the book);
        ``all``: every earlier fraud counts.
    ts_col, card_col, label_col, label_ts_col : str
        Column names.

    Returns
    -------
    dask.dataframe.DataFrame
        One partition, columns ``card_col`` and ``known_from`` (midnight of the first day on which
        the card is known), one row per card known before the end of the test period.
    """
    rule, since = KnownRule(rule), KnownSince(since)
    if rule is KnownRule.none:
        raise ValueError("known_compromised: rule 'none' removes nothing; nothing to compute")
    needed = [ts_col, card_col, label_col] + ([label_ts_col] if rule is KnownRule.label_ts else [])
    _require(frame, needed, f"known_compromised({fold.name}, rule={rule.value})")
    stop = _bound(fold.test_end + ONE_DAY, frame, ts_col)
    frauds = frame[frame[label_col] == 1]
    if since is KnownSince.train_start:
        frauds = frauds[frauds[ts_col] >= _bound(fold.train_start, frame, ts_col)]
    if rule is KnownRule.fraud_day:
        frauds = frauds[frauds[ts_col] < stop - pd.Timedelta(days=fold.delay_days + 1)]
        known_from = frauds[ts_col].dt.floor("D") + pd.Timedelta(days=fold.delay_days + 1)
    else:
        frauds = frauds[frauds[label_ts_col] < stop]
        known_from = frauds[label_ts_col].dt.floor("D") + pd.Timedelta(days=1)
    known = frauds[[card_col]].assign(known_from=known_from)
    return known.groupby(card_col).known_from.min().reset_index().repartition(npartitions=1)


def _drop_known(
    part: pd.DataFrame, known: pd.DataFrame, ts_col: str, card_col: str
) -> pd.DataFrame:
    first_known = part[card_col].map(known.set_index(card_col)["known_from"])
    keep = first_known.isna() | (first_known > part[ts_col].dt.floor("D"))
    return part[keep.to_numpy(dtype=bool)]


def select_test(
    frame: dd.DataFrame,
    fold: Fold,
    *,
    rule: KnownRule | str = KnownRule.fraud_day,
    since: KnownSince | str = KnownSince.train_start,
    ts_col: str = "ts",
    card_col: str = "card_id",
    label_col: str = "is_fraud",
    label_ts_col: str = "label_ts",
) -> dd.DataFrame:
    """Rows of the fold's test period without the cards already known compromised, lazily.

    A row on test day D is dropped when its card is known compromised before D (see
    :func:`known_compromised` for ``rule`` and ``since``). Row order and index are kept.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Canonical transactions covering the fold (the training period too, for the book's rule).
    fold : Fold
        The fold to apply.
    rule, since : KnownRule, KnownSince or str
        Which cards count as known compromised; ``rule="none"`` keeps every test row.
    ts_col, card_col, label_col, label_ts_col : str
        Column names.

    Returns
    -------
    dask.dataframe.DataFrame
        The filtered test rows, same columns and partitions as ``frame``.
    """
    _require(frame, [ts_col, card_col], f"select_test({fold.name})")
    test = _between(frame, fold.test_start, fold.test_end, ts_col)
    if KnownRule(rule) is KnownRule.none:
        return test
    known = known_compromised(
        frame,
        fold,
        rule=rule,
        since=since,
        ts_col=ts_col,
        card_col=card_col,
        label_col=label_col,
        label_ts_col=label_ts_col,
    )
    # The known cards travel as one delayed pandas frame, not as a second collection: with a
    # collection argument dask's optimizer could no longer tell that columns of the result are
    # aligned with each other, and a later `assign` would shuffle rows by index.
    (known_part,) = known.to_delayed()
    return test.map_partitions(_drop_known, known_part, ts_col, card_col, meta=test._meta)


def split_frame(
    frame: dd.DataFrame, fold: Fold, conf: SplitConf, **columns: str
) -> tuple[dd.DataFrame, dd.DataFrame]:
    """Train and test frames of one fold, with the removal rule from the config.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Canonical transactions.
    fold : Fold
        The fold to apply.
    conf : SplitConf
        Supplies ``known_compromised`` and ``known_since``.
    **columns : str
        Column-name overrides passed to :func:`select_test` (``ts_col``, ``card_col``, ...).

    Returns
    -------
    tuple of dask.dataframe.DataFrame
        ``(train, test)``, both lazy.
    """
    train = select_train(frame, fold, ts_col=columns.get("ts_col", "ts"))
    test = select_test(
        frame,
        fold,
        rule=conf.known_compromised,
        since=conf.known_since,
        **columns,
    )
    return train, test
