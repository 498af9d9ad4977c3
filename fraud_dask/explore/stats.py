"""The statistics of emerging risk, on a small pandas table of per-segment counts.

For a segment with ``n_b`` rows and ``f_b`` frauds in the baseline window and ``n_r``, ``f_r``
in the recent one, the question is whether its fraud rate rose by more than the source's rate
did overall (``ratio``: the recent rate over the baseline rate of the segment's column). If it
did not, the frauds are Poisson with rates proportional to ``n_b`` and ``n_r * ratio``, and
given their total ``k = f_b + f_r``, ``f_r`` is binomial with

    pi = n_r * ratio / (n_r * ratio + n_b),

whatever the segment's own rate: the exact conditional test of two Poisson rates. The p-value
is ``P(X >= f_r)`` for ``X ~ Binomial(k, pi)``, one-sided (a rise). Segments with fewer than
``min_frauds`` frauds in both windows together cannot reach significance and are not tested
(their ``k`` does not depend on the rise, so leaving them out keeps the test valid); segments
without baseline rows are new and not tested either. The Benjamini-Hochberg procedure over
every segment tested, of every column, keeps the expected share of false discoveries among the
segments flagged at ``fdr``.

Pure functions of pandas frames: the same code ranks a table built on Dask or by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: columns of the per-segment count table :func:`emerging` takes
COUNT_COLUMNS = (
    "column",
    "value",
    "n_base",
    "n_recent",
    "frauds_base",
    "frauds_recent",
    "value_base",
    "value_recent",
)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of independent or PRDS tests.

    Parameters
    ----------
    p : numpy.ndarray
        p-values.

    Returns
    -------
    numpy.ndarray
        ``q[i] = min over j with p_j >= p_i of p_j * m / rank_j``, capped at 1; a test is a
        discovery at level ``alpha`` when ``q <= alpha``.
    """
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def rise_log_pvalue(
    f_base: np.ndarray,
    f_recent: np.ndarray,
    n_base: np.ndarray,
    n_recent: np.ndarray,
    ratio: float | np.ndarray = 1.0,
) -> np.ndarray:
    """Natural log of the one-sided exact p-value of a rate rise beyond ``ratio`` (see module).

    Logarithms, so that very strong signals still rank (a p-value of 1e-400 is 0 in floats).
    """
    from scipy import stats

    f_base = np.asarray(f_base, dtype=float)
    f_recent = np.asarray(f_recent, dtype=float)
    k = f_base + f_recent
    exposure = np.asarray(n_recent, dtype=float) * np.asarray(ratio, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = exposure / (exposure + np.asarray(n_base, dtype=float))
    # P(X >= f_r) = sf(f_r - 1)
    return np.asarray(stats.binom.logsf(f_recent - 1, k, pi), dtype=float)


def _column_ratio(group: pd.DataFrame) -> float:
    fb, fr = group["frauds_base"].sum(), group["frauds_recent"].sum()
    nb, nr = group["n_base"].sum(), group["n_recent"].sum()
    if fb <= 0 or fr <= 0 or nb <= 0 or nr <= 0:
        return 1.0
    return float((fr / nr) / (fb / nb))


def emerging(table: pd.DataFrame, *, fdr: float = 0.05, min_frauds: int = 3) -> pd.DataFrame:
    """Test every segment of ``table`` for a fraud-rate rise and rank them.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per segment, with :data:`COUNT_COLUMNS` (``value_*``: fraud amount).
    fdr : float
        False-discovery rate of the Benjamini-Hochberg procedure.
    min_frauds : int
        Segments with fewer frauds in both windows together are not tested.

    Returns
    -------
    pandas.DataFrame
        The tested segments, ranked: significant ones first (``significant``: ``q <= fdr``),
        then by p-value, then by ``excess_value``. Added columns: ``rate_base``,
        ``rate_recent``, ``lift`` (recent over baseline rate; inf when the baseline had no
        fraud), ``expected_recent`` (frauds expected under no rise beyond the column's
        ``ratio``), ``excess_frauds``, ``excess_value`` (recent fraud value above the
        baseline's per-row fraud value times the recent rows), ``ratio``, ``log_p``, ``p``,
        ``q``, ``significant``.
    """
    missing = [c for c in COUNT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"explore: the segment table lacks column(s) {missing}")
    ratios = {c: _column_ratio(g) for c, g in table.groupby("column", sort=False)}
    k = table["frauds_base"] + table["frauds_recent"]
    tested = table[(k >= min_frauds) & (table["n_base"] > 0) & (table["n_recent"] > 0)].copy()
    ratio = tested["column"].map(ratios).astype(float).to_numpy()
    fb = tested["frauds_base"].to_numpy(float)
    fr = tested["frauds_recent"].to_numpy(float)
    nb = tested["n_base"].to_numpy(float)
    nr = tested["n_recent"].to_numpy(float)
    log_p = rise_log_pvalue(fb, fr, nb, nr, ratio)
    p = np.exp(log_p)
    q = benjamini_hochberg(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = nr * ratio / (nr * ratio + nb)
        tested["rate_base"] = fb / nb
        tested["rate_recent"] = fr / nr
        tested["lift"] = np.where(fb > 0, (fr / nr) / (fb / nb), np.inf)
    tested["expected_recent"] = (fb + fr) * pi
    tested["excess_frauds"] = fr - tested["expected_recent"]
    tested["excess_value"] = tested["value_recent"] - tested["value_base"] * nr / nb
    tested["ratio"] = ratio
    tested["log_p"] = log_p
    tested["p"] = p
    tested["q"] = q
    tested["significant"] = q <= fdr
    # the smallest q first; ties (q can tie by construction) by the p-value, then value
    tested = tested.sort_values(
        ["significant", "log_p", "excess_value"], ascending=[False, True, False], kind="stable"
    )
    return tested.reset_index(drop=True)


def misses(table: pd.DataFrame) -> pd.DataFrame:
    """Rank segments by the fraud value the model misses.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per segment: ``column``, ``value``, ``rows``, ``frauds``, ``caught``,
        ``fraud_value``, ``caught_value`` (the frauds and their amount, all and alerted).

    Returns
    -------
    pandas.DataFrame
        The segments with fraud, by ``missed_value`` (descending), with ``recall``,
        ``value_recall`` and ``missed_value``.
    """
    out = table[table["frauds"] > 0].copy()
    out["recall"] = out["caught"] / out["frauds"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["value_recall"] = np.where(
            out["fraud_value"] > 0, out["caught_value"] / out["fraud_value"], np.nan
        )
    out["missed_value"] = out["fraud_value"] - out["caught_value"]
    out = out.sort_values(["missed_value", "column"], ascending=[False, True], kind="stable")
    return out.reset_index(drop=True)
