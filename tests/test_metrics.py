"""Exact fraud metrics on Dask, checked against scikit-learn, pandas and a hand-computed CP@k."""

from __future__ import annotations

import json
import math

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from fraud_dask.metrics import ScoreCurve, card_precision_from_candidates, evaluate

EXACT = 1e-12  # float summation order differs from scikit-learn's; the values are the same


def scored(n: int = 12000, seed: int = 0, decimals: int = 2) -> pd.DataFrame:
    """Scored transactions over 7 days, 3 clients, ~5 % fraud, scores rounded so many tie."""
    rng = np.random.default_rng(seed)
    is_fraud = (rng.random(n) < 0.05).astype("int8")
    score = np.round(rng.random(n) * 0.6 + is_fraud * rng.random(n) * 0.5, decimals)
    return pd.DataFrame(
        {
            "tx_id": np.arange(n),
            "ts": pd.Timestamp("2024-03-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
            "card_id": rng.integers(0, 400, n).astype("int64"),
            "amount": np.round(rng.gamma(2.0, 40.0, n), 2),
            "client_id": rng.choice(["acme", "globex", "initech"], n),
            "is_fraud": is_fraud,
            "score": score,
        }
    )


def spread(pdf: pd.DataFrame, npartitions: int = 13) -> dd.DataFrame:
    return dd.from_pandas(pdf.sample(frac=1.0, random_state=7), npartitions=npartitions, sort=False)


def reference_summary(pdf: pd.DataFrame, max_fpr: float = 0.01) -> dict:
    """scikit-learn's answers on one population."""
    y, s = pdf.is_fraud.to_numpy(), pdf.score.to_numpy()
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    best = np.flatnonzero(fpr <= max_fpr)[-1]
    return {
        "n": len(pdf),
        "n_fraud": int(y.sum()),
        "roc_auc": roc_auc_score(y, s),
        "average_precision": average_precision_score(y, s),
        "recall_at_fpr": tpr[best],
        "threshold_at_fpr": thr[best],
    }


def assert_summary(got: dict, expected: dict) -> None:
    assert (got["n"], got["n_fraud"]) == (expected["n"], expected["n_fraud"])
    for key in ("roc_auc", "average_precision", "recall_at_fpr", "threshold_at_fpr"):
        assert got[key] == pytest.approx(expected[key], rel=EXACT, abs=0), key


def reference_alerts(pdf: pd.DataFrame, threshold: float) -> dict:
    alerted = pdf[pdf.score >= threshold]
    return {
        "n_alerts": len(alerted),
        "tp": int(alerted.is_fraud.sum()),
        "precision": alerted.is_fraud.mean(),
        "recall": alerted.is_fraud.sum() / pdf.is_fraud.sum(),
        "fpr": (1 - alerted.is_fraud).sum() / (1 - pdf.is_fraud).sum(),
        "fraud_value_caught": (alerted.amount * alerted.is_fraud).sum()
        / (pdf.amount * pdf.is_fraud).sum(),
    }


def reference_card_precision(pdf: pd.DataFrame, k: int) -> dict[str, float]:
    """The book's card_precision_top_k, transcribed, with ties ordered by card id."""
    pdf = pdf.assign(day=pdf.ts.dt.floor("D"))
    detected: list = []
    per_day = {}
    for day in sorted(pdf.day.unique()):
        df_day = pdf[pdf.day == day][["score", "card_id", "is_fraud"]]
        df_day = df_day[~df_day.card_id.isin(detected)]
        cards = df_day.groupby("card_id").max().reset_index()
        cards = cards.sort_values(["score", "card_id"], ascending=[False, True]).head(k)
        found = list(cards[cards.is_fraud == 1].card_id)
        per_day[pd.Timestamp(day).date().isoformat()] = len(found) / k
        detected.extend(found)
    return per_day


def test_overall_metrics_equal_scikit_learn(client) -> None:
    pdf = scored()
    assert pdf.score.nunique() < len(pdf) / 50  # heavy ties
    got = evaluate(spread(pdf), by_day=False, by_client=False)
    assert_summary(got, reference_summary(pdf))
    assert got["recall_at_fpr"] > 0  # the 1 % FPR point lies inside the curve
    expected_at_fpr = reference_alerts(pdf, got["threshold_at_fpr"])
    assert got["precision_at_fpr"] == pytest.approx(expected_at_fpr["precision"], rel=EXACT)
    assert got["fraud_value_caught_at_fpr"] == pytest.approx(
        expected_at_fpr["fraud_value_caught"], rel=1e-9
    )


@pytest.mark.parametrize("max_fpr", [0.0, 0.001, 0.05, 0.3, 1.0])
def test_recall_at_any_fpr_equals_roc_curve(client, max_fpr: float) -> None:
    pdf = scored(n=3000, seed=4, decimals=3)
    got = evaluate(spread(pdf, 5), max_fpr=max_fpr, by_day=False, by_client=False)
    assert_summary(got, reference_summary(pdf, max_fpr))


def test_continuous_scores_equal_scikit_learn(client) -> None:
    pdf = scored(n=5000, seed=2, decimals=12)
    got = evaluate(spread(pdf, 8), by_day=False, by_client=False)
    assert_summary(got, reference_summary(pdf))


def assert_same(a: object, b: object, where: str = "") -> None:
    """Equal structures; floats equal up to summation order (fraud amounts are float sums)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), where
    else:
        assert a == b, where


def test_partitioning_does_not_change_the_result(client) -> None:
    pdf = scored(n=4000, seed=5)
    first = evaluate(spread(pdf, 1), k=30)
    for other in [evaluate(spread(pdf, n), k=30) for n in (4, 11)] + [evaluate(pdf, k=30)]:
        assert_same(first, other)


def test_alert_budgets_and_threshold_table_equal_pandas(client) -> None:
    pdf = scored(seed=1)
    got = evaluate(
        spread(pdf), budgets=(50, 0.02, 0.1), thresholds=[0.3, 0.55, 0.8], by_client=False
    )
    ranked = pdf.score.sort_values(ascending=False).to_numpy()
    for row, wanted in zip(
        got["alert_budgets"], (50, math.ceil(0.02 * len(pdf)), 1200), strict=True
    ):
        threshold = ranked[wanted - 1]  # the score of the last row inside the budget
        expected = reference_alerts(pdf, threshold)
        assert row["threshold"] == threshold
        assert row["n_alerts"] >= wanted
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-9), (row["budget"], key)
    table = got["threshold_table"]
    assert [r["threshold"] for r in table] == [0.8, 0.55, 0.3]
    for row in table:
        for key, value in reference_alerts(pdf, row["threshold"]).items():
            assert row[key] == pytest.approx(value, rel=1e-9), (row["threshold"], key)
    default_table = evaluate(pdf, by_day=False, by_client=False)["threshold_table"]
    assert [r["n_alerts"] for r in default_table] == sorted(r["n_alerts"] for r in default_table)
    assert default_table[3]["n_alerts"] >= 0.01 * len(pdf)


def test_per_day_and_per_client_equal_pandas_groupby(client) -> None:
    pdf = scored(seed=3)
    got = evaluate(spread(pdf), k=20)
    days = pdf.groupby(pdf.ts.dt.floor("D"))
    assert list(got["per_day"]) == [d.date().isoformat() for d, _ in days]
    for day, part in days:
        assert_summary(got["per_day"][day.date().isoformat()], reference_summary(part))
    assert sorted(got["per_client"]) == ["acme", "globex", "initech"]
    for client_id, part in pdf.groupby("client_id"):
        result = got["per_client"][client_id]
        assert_summary(result, reference_summary(part))
        assert result["card_precision"]["per_day"] == reference_card_precision(part, 20)
    assert got["card_precision"]["per_day"] == reference_card_precision(pdf, 20)
    for day, value in got["card_precision"]["per_day"].items():
        assert got["per_day"][day]["card_precision_at_20"] == value


def test_card_precision_hand_computed(client) -> None:
    rows = [
        # day 1: cards ranked 4 (.95, genuine), 1 (.9, fraud), 2, 3 -> top 2 hold 1 fraud: 0.5
        ("2024-05-01 09:00", 1, 0.90, 0),
        ("2024-05-01 12:00", 1, 0.20, 1),  # card 1: max score .9, max label 1
        ("2024-05-01 10:00", 2, 0.80, 0),
        ("2024-05-01 11:00", 3, 0.70, 1),
        ("2024-05-01 13:00", 4, 0.95, 0),
        # day 2: card 1 (genuine today) was detected on day 1 and is gone; 3, 5, 7 tie at .6
        # -> card order 3, 5 (both fraud) -> 1.0
        ("2024-05-02 08:00", 1, 0.99, 0),
        ("2024-05-02 09:00", 7, 0.60, 0),
        ("2024-05-02 10:00", 5, 0.60, 1),
        ("2024-05-02 11:00", 3, 0.60, 1),
        ("2024-05-02 12:00", 2, 0.50, 0),
        # day 3: 3 was detected on day 2; only card 6 is left -> 0 frauds / 2 = 0.0
        ("2024-05-03 08:00", 3, 0.90, 1),
        ("2024-05-03 09:00", 6, 0.30, 0),
    ]
    pdf = pd.DataFrame(rows, columns=["ts", "card_id", "score", "is_fraud"])
    pdf = pdf.assign(ts=pd.to_datetime(pdf.ts).dt.tz_localize("UTC"), amount=10.0)
    got = evaluate(spread(pdf, 3), k=2, by_client=False)
    assert got["card_precision"]["per_day"] == {
        "2024-05-01": 0.5,
        "2024-05-02": 1.0,
        "2024-05-03": 0.0,
    }
    assert got["card_precision_at_2"] == 0.5
    assert got["card_precision"]["fraud_cards_per_day"] == {
        "2024-05-01": 2,
        "2024-05-02": 2,
        "2024-05-03": 0,
    }
    # Without removing detected cards, card 1 (day 2) and card 3 (day 3) would rank first.
    cards = pdf.assign(day=pdf.ts.dt.floor("D"), card=pdf.card_id, label=pdf.is_fraud)
    cards = cards.groupby(["day", "card"]).agg(score=("score", "max"), label=("label", "max"))
    kept = card_precision_from_candidates(cards.reset_index(), 2, remove_detected=False)
    assert kept["per_day"] == {"2024-05-01": 0.5, "2024-05-02": 0.5, "2024-05-03": 0.5}


@pytest.mark.parametrize(
    ("k", "seed", "npartitions"), [(3, 0, 1), (3, 0, 9), (25, 1, 1), (25, 1, 6), (1000, 2, 9)]
)
def test_card_precision_equals_the_books_algorithm(
    client, k: int, seed: int, npartitions: int
) -> None:
    # Few cards, many days of activity each: detected cards come back genuine on later days.
    pdf = scored(n=8000, seed=seed, decimals=2)
    got = evaluate(spread(pdf, npartitions), k=k, by_day=False, by_client=False)
    expected = reference_card_precision(pdf, k)
    assert got["card_precision"]["per_day"] == expected
    assert got[f"card_precision_at_{k}"] == pytest.approx(np.mean(list(expected.values())))


def test_output_is_plain_json_with_consistent_curves(client) -> None:
    pdf = scored(n=2000, seed=6)
    got = evaluate(spread(pdf, 4))
    json.dumps(got, allow_nan=False)
    curves = got["curves"]
    assert curves["roc"]["fpr"][0] == curves["roc"]["tpr"][0] == 0.0
    assert curves["roc"]["fpr"][-1] == curves["roc"]["tpr"][-1] == 1.0
    hist = curves["score_histogram"]
    assert sum(hist["fraud"]) == got["n_fraud"]
    assert sum(hist["genuine"]) == got["n"] - got["n_fraud"]
    expected_fraud, _ = np.histogram(pdf.score[pdf.is_fraud == 1], hist["edges"])
    assert hist["fraud"] == expected_fraud.tolist()


def test_day_column_and_undefined_metrics(client) -> None:
    pdf = scored(n=1500, seed=8)
    pdf = pdf.assign(day=pdf.ts.dt.date, is_fraud=np.where(pdf.ts.dt.day == 3, 0, pdf.is_fraud))
    got = evaluate(spread(pdf.drop(columns=["ts"]), 4), day_col="day", by_client=False)
    quiet = got["per_day"]["2024-03-03"]
    assert quiet["n_fraud"] == 0
    assert quiet["roc_auc"] is None and quiet["average_precision"] is None
    assert quiet["recall_at_fpr"] is None and quiet["card_precision_at_100"] == 0.0
    assert_summary(got, reference_summary(pdf))


def test_scorecurve_directly_on_a_tiny_table() -> None:
    # scores 0.9 (1 fraud), 0.5 (1 fraud + 1 genuine), 0.1 (2 genuine)
    table = pd.DataFrame(
        {"score": [0.1, 0.5, 0.9], "n": [2, 2, 1], "pos": [0, 1, 1], "fraud_amount": [0, 5, 15]}
    )
    curve = ScoreCurve(table)
    # Pairs (fraud, genuine): .9 beats all 3; .5 ties one (1/2) and beats two -> 5.5 / 6
    assert curve.roc_auc() == 5.5 / 6
    # AP: 1/2 * 1 + 1/2 * 2/3
    assert curve.average_precision() == pytest.approx(0.5 + 1 / 3, rel=EXACT)
    assert curve.at_threshold(0.5) | {"alert_rate": None} == {
        "threshold": 0.5,
        "n_alerts": 3,
        "alert_rate": None,
        "tp": 2,
        "fp": 1,
        "precision": 2 / 3,
        "recall": 1.0,
        "fpr": 1 / 3,
        "fraud_value_caught": 1.0,
    }
    assert curve.recall_at_fpr(0.2)["recall"] == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: p.assign(is_fraud=p.is_fraud.replace({1: 2})),
            "'is_fraud' has .* other than 0/1",
        ),
        (
            lambda p: p.assign(score=p.score.where(p.index != 5)),
            "'score' has 1 missing or infinite",
        ),
        (lambda p: p.assign(score=p.score.replace({p.score[0]: np.inf})), "'score' has"),
        (lambda p: p.drop(columns=["card_id"]), r"missing column\(s\) \['card_id'\]"),
        (lambda p: p.iloc[:0], "the frame has no rows"),
    ],
)
def test_bad_input_names_the_column(client, change, message: str) -> None:
    pdf = change(scored(n=300, seed=9))
    with pytest.raises(ValueError, match=message):
        evaluate(spread(pdf, 3) if len(pdf) else dd.from_pandas(pdf, npartitions=1))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1)), min_size=2, max_size=60).filter(
        lambda rows: 0 < sum(label for _, label in rows) < len(rows)
    )
)
def test_scorecurve_equals_scikit_learn_on_any_tied_sample(rows: list[tuple[int, int]]) -> None:
    pdf = pd.DataFrame(rows, columns=["score", "label"]).assign(score=lambda f: f.score / 4)
    table = pdf.groupby("score").agg(n=("label", "count"), pos=("label", "sum"))
    curve = ScoreCurve(table.assign(fraud_amount=0.0))
    assert curve.roc_auc() == pytest.approx(roc_auc_score(pdf.label, pdf.score), rel=EXACT)
    assert curve.average_precision() == pytest.approx(
        average_precision_score(pdf.label, pdf.score), rel=EXACT
    )
    fpr, tpr, _ = roc_curve(pdf.label, pdf.score, drop_intermediate=False)
    for max_fpr in (0.0, 0.1, 0.5):
        assert curve.recall_at_fpr(max_fpr)["recall"] == tpr[fpr <= max_fpr].max()
