"""The statistics of task=explore on small pandas tables: p-values, FDR control, ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fraud_dask.explore.stats import benjamini_hochberg, emerging, misses, rise_log_pvalue


def _segments(seed: int, lift: float = 1.0) -> pd.DataFrame:
    """A stationary source's segment counts (value 0 of ``category`` rises by ``lift``)."""
    rng = np.random.default_rng(seed)
    parts = []
    for column, n_values in (("category", 10), ("merchant_id", 300), ("hour_band", 4)):
        weight = rng.dirichlet(np.full(n_values, 2.0))
        rate = rng.gamma(4.0, 0.008 / 4.0, size=n_values)
        n_base = rng.poisson(200_000 * weight)
        n_recent = rng.poisson(50_000 * weight)
        rise = np.where((np.arange(n_values) == 0) & (column == "category"), lift, 1.0)
        f_base = rng.binomial(n_base, rate)
        f_recent = rng.binomial(n_recent, np.minimum(rate * rise, 1.0))
        parts.append(
            pd.DataFrame(
                {
                    "column": column,
                    "value": [str(i) for i in range(n_values)],
                    "n_base": n_base,
                    "n_recent": n_recent,
                    "frauds_base": f_base,
                    "frauds_recent": f_recent,
                    "value_base": f_base * 80.0,
                    "value_recent": f_recent * 80.0,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_p_values_are_the_exact_binomial_test():
    rng = np.random.default_rng(1)
    for _ in range(30):
        fb, fr = rng.integers(0, 40, size=2)
        nb, nr = rng.integers(100, 10_000, size=2)
        ratio = rng.uniform(0.5, 2.0)
        pi = nr * ratio / (nr * ratio + nb)
        expected = stats.binomtest(int(fr), int(fb + fr), pi, alternative="greater").pvalue
        got = np.exp(rise_log_pvalue(np.array([fb]), np.array([fr]), nb, nr, ratio))[0]
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(2)
    for m in (1, 7, 200):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))


def test_a_stationary_source_flags_nothing_over_20_seeds():
    # Benjamini-Hochberg at 5%: under the global null P(any flag) <= 5%, so about 1 seed in 20
    # at most; the exact test's discreteness makes it conservative
    flagged = [bool(emerging(_segments(seed))["significant"].any()) for seed in range(20)]
    assert sum(flagged) <= 2, flagged


def test_a_risen_segment_is_found_and_ranked_first():
    for seed in range(5):
        ranked = emerging(_segments(seed, lift=3.0))
        top = ranked.iloc[0]
        assert (top["column"], top["value"]) == ("category", "0"), seed
        assert top["significant"] and top["lift"] > 2.0
        # the other segments of the column are not flagged: the column's overall rise is
        # taken out of their test
        others = ranked[(ranked["column"] == "category") & (ranked["value"] != "0")]
        assert not others["significant"].any()


def test_the_table_adds_up():
    table = _segments(3, lift=2.0)
    ranked = emerging(table, min_frauds=5)
    k = table["frauds_base"] + table["frauds_recent"]
    assert len(ranked) == int((k >= 5).sum())  # segments with too few frauds are not tested
    row = ranked.iloc[0]
    assert row["rate_recent"] == pytest.approx(row["frauds_recent"] / row["n_recent"])
    assert row["excess_value"] == pytest.approx(
        row["value_recent"] - row["value_base"] * row["n_recent"] / row["n_base"]
    )
    assert row["q"] >= row["p"]


def test_misses_rank_by_missed_value():
    table = pd.DataFrame(
        {
            "column": ["category"] * 3 + ["client_id"] * 2,
            "value": ["a", "b", "c", "x", "y"],
            "rows": [100, 100, 100, 150, 150],
            "frauds": [4, 3, 0, 5, 2],
            "caught": [1, 3, 0, 4, 0],
            "fraud_value": [400.0, 90.0, 0.0, 290.0, 200.0],
            "caught_value": [100.0, 90.0, 0.0, 240.0, 0.0],
        }
    )
    got = misses(table)
    assert list(zip(got["column"], got["value"], strict=True)) == [
        ("category", "a"),
        ("client_id", "y"),
        ("client_id", "x"),
        ("category", "b"),
    ]
    assert got["missed_value"].tolist() == [300.0, 200.0, 50.0, 0.0]
    assert got["recall"].tolist() == [0.25, 0.0, 0.8, 1.0]
    assert got["value_recall"].tolist() == [0.25, 0.0, 240 / 290, 1.0]
