"""Binning and drift measures: one rule to put a value in a reference bin, PSI, Jensen-Shannon.

A reference (:mod:`fraud_dask.monitor.reference`) describes each input and the score by bins:

- numeric: interior edges ``e_0 < ... < e_{m-1}``; bin ``i`` holds ``e_{i-1} < x <= e_i``
  (``-inf`` and ``+inf`` at the ends), so there are ``m + 1`` value bins, then one bin for
  missing values (``m + 2`` in all);
- categorical: a category list ``c_0 ... c_{m-1}``; bin ``i`` holds ``c_i`` (compared as text),
  bin ``m`` any other value, bin ``m + 1`` missing values.

:func:`bin_codes` applies that rule to a column of a pandas partition (the same function at
registration and in monitoring); :func:`binned_counts` counts the rows of a partition per key
(client, period), input and bin. The measures are plain numpy on two count vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: the pseudo-input under which the score's bins are counted
SCORE = "__score__"


#: up to this many edges, a value's bin is found by comparing it with each edge
_FEW_EDGES = 32


def bin_codes(values: pd.Series, spec: Mapping[str, Any]) -> np.ndarray:
    """The bin of each value under ``spec`` (``kind`` numeric with ``edges``, or categorical
    with ``categories``), as int64; see the module docstring for the rule."""
    if spec["kind"] == "categorical":
        cats = pd.Index([str(c) for c in spec["categories"]], dtype=object)
        as_text = values.astype("string").astype(object)
        codes = cats.get_indexer(as_text).astype(np.int64)
        codes[codes < 0] = len(cats)  # another value
        codes[values.isna().to_numpy()] = len(cats) + 1
        return codes
    edges = np.asarray(spec["edges"], dtype=np.float64)
    x = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    if len(edges) <= _FEW_EDGES:
        # searchsorted's bin (side="left") is the number of edges below the value: with a few
        # edges, counting them is faster than its binary search (NaN is below none)
        codes = np.zeros(len(x), dtype=np.int64)
        for edge in edges:
            codes += x > edge
    else:
        codes = np.searchsorted(edges, x, side="left").astype(np.int64)
    codes[np.isnan(x)] = len(edges) + 1
    return codes


def n_bins(spec: Mapping[str, Any]) -> int:
    """How many bins ``spec`` has (the missing bin included)."""
    if spec["kind"] == "categorical":
        return len(spec["categories"]) + 2
    return len(spec["edges"]) + 2


def binned_counts(
    part: pd.DataFrame,
    specs: Mapping[str, Mapping[str, Any]],
    keys: Sequence[str],
) -> pd.DataFrame:
    """Rows of ``part`` per key, input and bin: the long table both sides of monitoring sum.

    Parameters
    ----------
    part : pandas.DataFrame
        Rows holding the ``keys`` columns and every input of ``specs`` (the score under
        :data:`SCORE` is read from the ``score`` column).
    specs : mapping
        Input -> bin spec.
    keys : sequence of str
        Grouping columns (e.g. ``client``, ``period``), any hashable values.

    Returns
    -------
    pandas.DataFrame
        Columns ``*keys``, ``feature`` (str), ``bin`` (int64), ``count`` (int64); only the
        non-zero counts.
    """
    columns = [*keys, "feature", "bin", "count"]
    if not len(part):
        return _empty(part, keys)
    if keys:
        # groupby's numbering, not a MultiIndex's factorize (which builds a tuple per row)
        by = part.groupby(list(keys), observed=True, sort=False, dropna=False)
        group_codes = by.ngroup().to_numpy(dtype=np.int64)
        _, first = np.unique(group_codes, return_index=True)  # the first row of each group
        groups = pd.MultiIndex.from_frame(part[list(keys)].iloc[first])
    else:
        group_codes, groups = np.zeros(len(part), np.int64), pd.MultiIndex.from_tuples([()])
    n_groups = len(groups)
    frames = []
    for name, spec in specs.items():
        values = part["score" if name == SCORE else name]
        nb = n_bins(spec)
        codes = bin_codes(values, spec)
        counts = np.bincount(group_codes * nb + codes, minlength=n_groups * nb)
        nz = np.flatnonzero(counts)
        g, b = np.divmod(nz, nb)
        frame = pd.DataFrame(
            {"feature": name, "bin": b.astype(np.int64), "count": counts[nz].astype(np.int64)}
        )
        for i, key in enumerate(keys):
            frame.insert(i, key, groups.get_level_values(i)[g])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[columns]


def _empty(part: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    out = {k: part[k].iloc[:0] for k in keys}
    out |= {
        "feature": pd.Series([], dtype=object),
        "bin": pd.Series([], dtype=np.int64),
        "count": pd.Series([], dtype=np.int64),
    }
    return pd.DataFrame(out)


def psi(expected: Any, actual: Any, epsilon: float = 1e-4) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts on the same bins).

    ``sum((a_i - e_i) * ln(a_i / e_i))`` over the bins, with ``a`` and ``e`` the two count
    vectors as proportions, each proportion raised to at least ``epsilon`` (an empty bin on one
    side would make it infinite). NaN when either side has no row.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return math.nan
    p = np.maximum(e / e.sum(), epsilon)
    q = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(expected: Any, actual: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors on the same bins:
    the square root of the mean Kullback-Leibler divergence of each to their average, as
    :func:`scipy.spatial.distance.jensenshannon` with ``base=2``. NaN when a side is empty."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return math.nan
    p, q = e / e.sum(), a / a.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        keep = x > 0
        return float(np.sum(x[keep] * np.log2(x[keep] / m[keep])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def psi_p_value(value: float, n_expected: float, n_actual: float, bins: int) -> float:
    """The chance that two samples of one distribution give a PSI of at least ``value``.

    Under the same distribution, ``PSI / (1/n_expected + 1/n_actual)`` follows approximately a
    chi-square law with ``bins - 1`` degrees of freedom (PSI is the symmetric Kullback-Leibler
    divergence, twice which is asymptotically a chi-square statistic): small samples make a
    large PSI likely, which this p-value accounts for.
    """
    from scipy.stats import chi2

    if not (n_expected > 0 and n_actual > 0) or bins < 2 or math.isnan(value):
        return 1.0
    return float(chi2.sf(value / (1.0 / n_expected + 1.0 / n_actual), bins - 1))


def alert_rate_p_value(alerts: int, rows: int, expected_rate: float) -> float:
    """Two-sided exact binomial p-value of ``alerts`` among ``rows`` at ``expected_rate``."""
    from scipy.stats import binomtest

    if rows <= 0:
        return 1.0
    rate = min(max(float(expected_rate), 1e-9), 1 - 1e-9)
    return float(binomtest(int(alerts), int(rows), rate).pvalue)
