"""Batch scoring over Dask: features from the bundle's spec, score, decision and reason codes.

:func:`score_features` is one pure function of a partition (:func:`score_partition`) applied
with ``map_partitions(..., meta=...)``. :func:`load_period` reads the transactions of a scoring
period plus the history its features need (the plan's horizon before the period, and the last
earlier row of every entity with a time-since-previous feature), so every window of every
scored row is complete. :func:`period_features` builds the bundle's features of the period's
rows from them; :func:`score_period` chains that with the scoring, all in one lazy graph;
:func:`read_period` and :func:`score_period_read` also return the source reads, whose counts
(rows in = kept + quarantined, by reason) ``task=score`` reports.

:func:`staged_features` is ``task=score``'s two-pass form: the period's features (the model's
inputs and the carried columns) are written to a hidden staging dataset beside the output and
read back for the scoring, so the feature build (entity shuffles, joins) and the slow scoring
tasks (TreeSHAP) never hold memory on a worker at the same time; the staging dataset is removed
however the block ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraud_dask.data.schema import STRING_DTYPE
from fraud_dask.score.reasons import reason_code, top_reasons
from fraud_dask.train.encode import encode_partition

if TYPE_CHECKING:
    from fraud_dask.data.sources import SourceConf

log = logging.getLogger(__name__)

#: Columns of the transactions carried into the scores when present.
CARRY = ("tx_id", "ts", "card_id", "client_id", "amount", "is_fraud", "label_ts")


def reason_columns(top: int) -> list[str]:
    """``reason_1`` ... ``reason_<top>``."""
    return [f"reason_{i + 1}" for i in range(top)]


#: Rows encoded, scored and explained at a time inside a partition. The model matrix, XGBoost's
#: copy of it, the TreeSHAP values (float64, inputs + 1 columns) and their sort for the reason
#: codes are each ``rows x inputs`` wide: scored whole, a 500k-row partition of 91 inputs took
#: 1.2 GiB above the partition itself (docs/benchmarks.md, issue 17); per chunk it is bounded
#: whatever the partition size. Rows are scored independently, so results do not depend on it.
CHUNK_ROWS = 65_536


def score_partition(
    part: pd.DataFrame,
    model: Any,
    raw: bytes | None,
    *,
    top: int,
    threshold: float,
    keep: Sequence[str],
    version: int = 0,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Score one pandas batch: ``keep`` columns, ``score``, ``alert``, reasons, version.

    Parameters
    ----------
    part : pandas.DataFrame
        Rows holding the model's inputs.
    model : fraud_dask.train.Model
        The model, or its :meth:`~fraud_dask.train.Model.shell` when ``raw`` is given.
    raw : bytes or None
        The bytes the shell scores with (XGBoost: the booster's UBJSON, loaded once per
        process).
    top : int
        Reason codes per row.
    threshold : float
        ``alert`` is ``score >= threshold``.
    keep : sequence of str
        Columns of ``part`` carried to the output.
    version : int
        Registry version recorded in ``model_version``.
    chunk_rows : int
        Rows encoded, scored and explained at a time (bounds the working memory; the results
        do not depend on it).

    Returns
    -------
    pandas.DataFrame
    """
    if chunk_rows < 1:
        raise ValueError(f"score: chunk_rows must be >= 1, got {chunk_rows}")
    out = part[list(keep)].copy()
    n = len(part)
    score = np.empty(n, dtype=np.float32)
    reasons = [np.full(n, None, dtype=object) for _ in range(top)]
    codes = [reason_code(c) for c in model.columns]
    for lo in range(0, n, chunk_rows):
        hi = min(n, lo + chunk_rows)
        rows = part.iloc[lo:hi]
        matrix = encode_partition(rows, model.columns, model.categories).to_numpy(np.float32)
        score[lo:hi] = model.predict_matrix(matrix, raw)
        if top > 0:
            contribs = model.contributions(matrix, raw)
            for column, values in zip(reasons, top_reasons(contribs, codes, top), strict=True):
                column[lo:hi] = values
            del contribs
        del matrix
    out["score"] = score
    out["alert"] = score >= np.float32(threshold)
    for name, values in zip(reason_columns(top), reasons, strict=True):
        out[name] = pd.Series(values, index=part.index, dtype=object).astype(STRING_DTYPE)
    out["model_version"] = np.int32(version)
    return out


def score_features(
    frame: Any,
    model: Any,
    *,
    top: int = 3,
    threshold: float = 0.5,
    keep: Sequence[str] | None = None,
    version: int = 0,
    chunk_rows: int = CHUNK_ROWS,
) -> Any:
    """Score a lazy frame of features: ``score``, ``alert``, ``reason_1..top``, lazily.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Rows holding the model's inputs (e.g. ``build_features`` output).
    model : fraud_dask.train.Model
        The model to score with.
    top : int
        Reason codes per row (0: none).
    threshold : float
        Decision threshold.
    keep : sequence of str, optional
        Columns carried to the output; default: those of :data:`CARRY` in the frame.
    version : int
        Registry version, recorded in ``model_version``.
    chunk_rows : int
        Rows of a partition scored at a time (see :data:`CHUNK_ROWS`).

    Returns
    -------
    dask.dataframe.DataFrame
        Same partitions, one row per input row.

    Raises
    ------
    ValueError
        An input of the model, or a ``keep`` column, is missing from the frame.
    """
    import dask

    keep = [c for c in CARRY if c in frame.columns] if keep is None else list(keep)
    _check_columns(frame, [*model.columns, *keep])
    if top < 0:
        raise ValueError(f"score: top_reasons must be >= 0, got {top}")
    if chunk_rows < 1:
        raise ValueError(f"score: chunk_rows must be >= 1, got {chunk_rows}")
    # Batch scoring runs on the workers' CPUs whatever device the model trained on (the
    # reasons' TreeSHAP is CPU code); a large model travels once in the graph, not per task.
    shell, raw_bytes = dataclasses.replace(model, device="cpu").shell()
    raw = dask.delayed(raw_bytes, pure=True) if raw_bytes is not None else None
    kwargs = {
        "top": top,
        "threshold": threshold,
        "keep": keep,
        "version": version,
        "chunk_rows": chunk_rows,
    }
    meta = _meta(frame._meta, keep, top)
    return frame.map_partitions(score_partition, shell, raw, **kwargs, meta=meta)


def _check_columns(frame: Any, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"score: column(s) {missing} missing from the frame to score; it has "
            f"{list(frame.columns)}"
        )


def _meta(part: pd.DataFrame, keep: Sequence[str], top: int) -> pd.DataFrame:
    out = part[list(keep)].iloc[:0].copy()
    out["score"] = np.empty(0, np.float32)
    out["alert"] = np.empty(0, bool)
    for name in reason_columns(top):
        out[name] = pd.Series([], dtype=STRING_DTYPE)
    out["model_version"] = np.empty(0, np.int32)
    return out


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _last_rows(part: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    ordered = part.sort_values(["ts", "tx_id"], kind="stable")
    return ordered.dropna(subset=key).drop_duplicates(key, keep="last")


@dataclasses.dataclass
class PeriodRead:
    """The rows a scoring period needs, and the source reads they came from."""

    frame: Any
    """Lazy rows of the period plus the history their features need."""
    cut: pd.Timestamp | None
    """Where the history starts (None: all of it)."""
    reads: tuple[Any, ...]
    """The source reads (``fraud_dask.data.Frames``, disjoint): compute their
    ``lazy_counts()`` with the scores and sum them with ``fraud_dask.data.total_counts``."""

    def lazy_counts(self) -> list[Any]:
        """Every read's lazy counts, concatenated in order."""
        return [c for read in self.reads for c in read.lazy_counts()]


def load_period(
    data_cfg: SourceConf | Mapping[str, Any],
    features: Any,
    start: Any,
    end: Any = None,
    *,
    exact_recency: bool = True,
) -> tuple[Any, Any]:
    """The transactions of ``[start, end)`` plus the history their features need (lazy).

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The source (read through :func:`fraud_dask.data.read_transactions`).
    features : FeaturesConf, DictConfig or mapping
        The feature spec (its plan's horizon says how far back to read).
    start, end : str or Timestamp
        The scoring period (UTC when naive); ``end`` None: to the end of the data.
    exact_recency : bool
        Add the last earlier row of every entity with a time-since-previous feature.

    Returns
    -------
    (dask.dataframe.DataFrame, pandas.Timestamp or None)
        The rows, and where the history starts (None: all of it).
    """
    period = read_period(data_cfg, features, start, end, exact_recency=exact_recency)
    return period.frame, period.cut


def read_period(
    data_cfg: SourceConf | Mapping[str, Any],
    features: Any,
    start: Any,
    end: Any = None,
    *,
    exact_recency: bool = True,
) -> PeriodRead:
    """:func:`load_period`, also returning the source reads (for their counts).

    Each read quarantines repeated ``tx_id`` among its own rows unless ``data.dedupe`` is off.
    """
    import dask.dataframe as dd

    from fraud_dask.data import open_source, read_transactions
    from fraud_dask.features.plan import make_plan

    start = _utc(start)
    if start is None:
        raise ValueError("score: the scoring period needs a start (score.start)")
    source = open_source(data_cfg, end=end)
    columns = list(source.frames(dedupe=False).kept.columns)  # lazy: only the columns are used
    plan = make_plan(features, columns)
    horizon = plan.horizon()
    if horizon is None:
        whole = source.frames()
        return PeriodRead(whole.kept, None, (whole,))
    cut = start - pd.Timedelta(horizon, unit="ns")
    recent = read_transactions(data_cfg, start=cut, end=end)
    keys = [list(s.key) for s in plan.stages if s.needs_previous]
    if not (exact_recency and keys):
        return PeriodRead(recent.kept, cut, (recent,))
    try:
        older_read = read_transactions(data_cfg, end=cut)
    except ValueError as exc:
        if "fall in" not in str(exc):  # the data layer's "no files of ... fall in [...)"
            raise
        return PeriodRead(recent.kept, cut, (recent,))  # nothing before the history window
    older = older_read.kept
    from fraud_dask.features.build import shuffle_method
    from fraud_dask.features.config import as_features_conf

    method = shuffle_method(as_features_conf(features).shuffle, older.npartitions)
    lasts = []
    for key in keys:
        shuffled = older.shuffle(on=key[0] if len(key) == 1 else key, shuffle_method=method)
        lasts.append(shuffled.map_partitions(_last_rows, key, meta=older._meta))
    extra = dd.concat(lasts).drop_duplicates(subset=["tx_id"])
    return PeriodRead(dd.concat([extra, recent.kept]), cut, (recent, older_read))


def score_period(
    data_cfg: SourceConf | Mapping[str, Any],
    bundle: Any,
    start: Any,
    end: Any = None,
    *,
    top: int = 3,
    threshold: float = 0.5,
    exact_recency: bool = True,
) -> Any:
    """Score the transactions of ``[start, end)`` with a registry bundle, lazily.

    The bundle's feature spec is applied to the period and its history
    (:func:`load_period`), then the rows of the period are scored (:func:`score_features`).

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The source.
    bundle : fraud_dask.registry.ModelBundle
        Model, feature spec and version.
    start, end : str or Timestamp
        The period (UTC when naive).
    top, threshold, exact_recency
        See :func:`score_features` and :func:`load_period`.

    Returns
    -------
    (dask.dataframe.DataFrame, pandas.Timestamp or None)
        The scored rows of the period, and where the history read starts (None: all of it).
    """
    scored, period = score_period_read(
        data_cfg, bundle, start, end, top=top, threshold=threshold, exact_recency=exact_recency
    )
    return scored, period.cut


def score_period_read(
    data_cfg: SourceConf | Mapping[str, Any],
    bundle: Any,
    start: Any,
    end: Any = None,
    *,
    top: int = 3,
    threshold: float = 0.5,
    exact_recency: bool = True,
) -> tuple[Any, PeriodRead]:
    """:func:`score_period`, returning the :class:`PeriodRead` (reads and their counts)."""
    period, period_read = period_features(
        data_cfg, bundle.features, start, end, exact_recency=exact_recency
    )
    scored = score_features(
        period, bundle.model, top=top, threshold=threshold, version=bundle.version
    )
    return scored, period_read


def period_features(
    data_cfg: SourceConf | Mapping[str, Any],
    features: Any,
    start: Any,
    end: Any = None,
    *,
    exact_recency: bool = True,
) -> tuple[Any, PeriodRead]:
    """The features of the rows of ``[start, end)``, built over their history, lazily.

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The source.
    features : FeaturesConf, DictConfig or mapping
        The feature spec (a bundle's ``features``).
    start, end : str or Timestamp
        The period (UTC when naive); ``end`` None: to the end of the data.
    exact_recency : bool
        See :func:`load_period`.

    Returns
    -------
    (dask.dataframe.DataFrame, PeriodRead)
        ``build_features`` of the period and its history, filtered to the period's rows; the
        reads (their counts are not computed here).
    """
    from fraud_dask.features.build import build_features

    period_read = read_period(data_cfg, features, start, end, exact_recency=exact_recency)
    feats = build_features(period_read.frame, features)
    return rows_in_period(feats, start, end), period_read


def rows_in_period(frame: Any, start: Any, end: Any = None, *, ts_col: str = "ts") -> Any:
    """The rows of a lazy frame with ``start <= ts < end`` (``end`` None: no upper bound),
    filtered inside each partition.

    Written as ``feats[feats["ts"] >= start]`` on the output of ``build_features``, Dask's
    optimizer does not see the mask and the features as one frame after the stages' joins
    and aligns them by shuffling the whole feature frame on its index: at 10 M rows, 4 GiB
    workers died in that shuffle (docs/benchmarks.md, issue 17).
    """
    lo, hi = _utc(start), _utc(end)
    return frame.map_partitions(_in_period, lo, hi, ts_col, meta=frame._meta)


def _in_period(
    part: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, ts_col: str
) -> pd.DataFrame:
    keep = np.ones(len(part), dtype=bool)
    if start is not None:
        keep &= (part[ts_col] >= start).to_numpy()
    if end is not None:
        keep &= (part[ts_col] < end).to_numpy()
    return part[keep]


@dataclasses.dataclass
class StagedFeatures:
    """A period's features written to a staging dataset, and what writing them counted."""

    frame: Any
    """Lazy features read back from the staging dataset (the same columns and dtypes as the
    lazily built ones)."""
    path: str
    """The staging dataset (removed when :func:`staged_features`' block ends)."""
    rows: int
    """Rows staged (the period's rows)."""
    period_read: PeriodRead
    """The source reads the features were built from."""
    counts: list[Any]
    """Their ``lazy_counts()``, computed with the staging write (for ``total_counts``)."""


def staging_path(near: str, storage_options: dict[str, Any] | None = None) -> str:
    """A fresh hidden sibling of ``near`` on its filesystem: ``<parent>/.<name>.features-<hex>``.

    Parameters
    ----------
    near : str
        The output the staging serves (local path or fsspec URL).
    storage_options : dict, optional
        fsspec options of its filesystem.

    Returns
    -------
    str
        A URL with ``near``'s protocol.
    """
    from fraud_dask.data.io import filesystem

    fs, root = filesystem(near, storage_options)
    if not root:
        raise ValueError(f"score: refusing to stage features beside the root of {near!r}")
    parent, name = root.rsplit("/", 1) if "/" in root else ("", root)
    staging = f".{name}.features-{uuid.uuid4().hex}"
    return str(fs.unstrip_protocol(f"{parent}/{staging}" if parent else staging))


@contextlib.contextmanager
def staged_features(
    data_cfg: SourceConf | Mapping[str, Any],
    bundle: Any,
    start: Any,
    end: Any = None,
    *,
    near: str,
    storage_options: dict[str, Any] | None = None,
    exact_recency: bool = True,
) -> Iterator[StagedFeatures]:
    """Write the features a bundle scores of ``[start, end)`` to storage; yield them read back.

    The features are built as :func:`period_features` builds them; only the model's inputs
    and the :data:`CARRY` columns present are written (a flat dataset, one file per feature
    partition), in one ``dask.compute`` with the source reads' counts. Scoring the yielded
    frame is then a second graph that starts from files: no worker holds the feature build's
    shuffles while the scoring tasks run. The staging dataset lives in a hidden folder beside
    ``near`` on ``near``'s filesystem (:func:`staging_path`; an object store works as a local
    folder does) and is removed when the block ends, however it ends.

    Parameters
    ----------
    data_cfg : DataConf, DictConfig or mapping
        The source.
    bundle : fraud_dask.registry.ModelBundle
        Its ``features`` spec is built, its ``model.columns`` written.
    start, end : str or Timestamp
        The period (UTC when naive).
    near : str
        Where the scores go: the staging folder is its hidden sibling.
    storage_options : dict, optional
        fsspec options of ``near``'s filesystem.
    exact_recency : bool
        See :func:`load_period`.

    Yields
    ------
    StagedFeatures

    Raises
    ------
    ValueError
        An input of the model is missing from the features (before anything is written).
    """
    from fraud_dask.data.io import filesystem, read_dataset, write_datasets

    feats, period_read = period_features(
        data_cfg, bundle.features, start, end, exact_recency=exact_recency
    )
    _check_columns(feats, bundle.model.columns)
    carried = [c for c in CARRY if c in feats.columns]
    columns = list(dict.fromkeys([*carried, *bundle.model.columns]))
    frame = feats[columns]
    folder = staging_path(near, storage_options)
    path = f"{folder}/features"
    fs, root = filesystem(folder, storage_options)
    try:
        rows, *counts = write_datasets(
            [(frame, path, None)], storage_options, compute=False, extra=period_read.lazy_counts()
        )()
        log.info("score: %d rows of features staged in %s", rows, folder)
        staged = _same_dtypes(read_dataset(path, storage_options=storage_options), frame._meta)
        yield StagedFeatures(staged, path, int(rows), period_read, counts)
    finally:
        # write_datasets' own partial output sits inside the folder too: one removal covers all
        if fs.exists(root):
            fs.rm(root, recursive=True)


def _same_dtypes(staged: Any, meta: pd.DataFrame) -> Any:
    """The staged frame with the columns, order and dtypes of the frame that was written.

    Parquet keeps every dtype the features use (strings, categories, tz-aware times, nullable
    integers); a reader that widened one would change ``encode_partition``'s text codes of a
    category or the scores' output schema, so any difference is cast back (a category only
    when it came back as something else: its values are per partition).
    """
    if list(staged.columns) != list(meta.columns):
        _check_columns(staged, list(meta.columns))
        staged = staged[list(meta.columns)]
    casts = {}
    for col, want in meta.dtypes.items():
        got = staged._meta[col].dtype
        if isinstance(want, pd.CategoricalDtype):
            if not isinstance(got, pd.CategoricalDtype):
                casts[col] = "category"
        elif got != want:
            casts[col] = want
    if casts:
        log.warning("score: staged columns read back with other dtypes, cast back: %s", casts)
        staged = staged.astype(casts)
    return staged
