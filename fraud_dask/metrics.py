"""Exact fraud metrics computed on Dask: ROC AUC, average precision, CP@k, alert budgets.

Exactness comes from aggregating on the workers by distinct score (rows, frauds, fraud amount
per score value) and building the curves on the client from that table: every threshold the
data has is a point, so ties are handled as scikit-learn handles them. Card precision@k
shuffles the rows by card once, aggregates per (day, card) partition by partition and ships only
the card-days that can reach a day's top k. :func:`evaluate` gets everything (overall, per day,
per client) from one ``dask.compute``, so the input is read once. The client holds one row per
distinct score (per day or client when those are asked for); continuous scores on huge data make
that table as long as the data.

Conventions: an alert is ``score >= threshold``; a metric that is undefined (no fraud, or no
genuine row) is ``None``; card ties are broken by ``card_id`` ascending. Output is plain JSON
types.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_BUDGETS: tuple[float, ...] = (100, 0.001, 0.01, 0.05)
TABLE_FRACTIONS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def _div(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


class ScoreCurve:
    """Exact ROC / PR curve from a per-distinct-score table.

    Parameters
    ----------
    table : pandas.DataFrame
        Index or column ``score``; columns ``n`` (rows), ``pos`` (frauds) and optionally
        ``fraud_amount``; one row per distinct score (duplicates are summed).
    """

    def __init__(self, table: pd.DataFrame) -> None:
        t = table.reset_index() if "score" not in table.columns else table
        t = t.groupby("score", sort=True)[["n", "pos", "fraud_amount"]].sum().iloc[::-1]
        self.scores = t.index.to_numpy(dtype=float)
        self.pos = t["pos"].to_numpy(dtype=np.int64)
        self.neg = t["n"].to_numpy(dtype=np.int64) - self.pos
        self.tps = np.cumsum(self.pos)
        self.fps = np.cumsum(self.neg)
        self.alerts = self.tps + self.fps
        self.value = np.cumsum(t["fraud_amount"].to_numpy(dtype=float))
        self.n_pos = int(self.tps[-1]) if len(t) else 0
        self.n_neg = int(self.fps[-1]) if len(t) else 0
        self.fraud_amount = float(self.value[-1]) if len(t) else 0.0

    def roc_auc(self) -> float | None:
        """Area under the ROC curve (trapezoids through every distinct score), exactly."""
        if not self.n_pos or not self.n_neg:
            return None
        # Integer numerator: each negative scores 1 per positive above it and 1/2 per tie.
        numerator = int(np.sum(self.neg * (2 * (self.tps - self.pos) + self.pos)))
        return numerator / (2 * self.n_pos * self.n_neg)

    def average_precision(self) -> float | None:
        """scikit-learn's average precision: sum of (R_i - R_{i-1}) * P_i over thresholds."""
        if not self.n_pos:
            return None
        return float(np.sum(self.pos / self.n_pos * (self.tps / self.alerts)))

    def point(self, i: int) -> dict[str, Any]:
        """Confusion figures when alerting on the ``i + 1`` highest distinct scores."""
        if i < 0:
            tp = fp = 0
            value, threshold = 0.0, None
        else:
            tp, fp = int(self.tps[i]), int(self.fps[i])
            value, threshold = float(self.value[i]), float(self.scores[i])
        return {
            "threshold": threshold,
            "n_alerts": tp + fp,
            "alert_rate": _div(tp + fp, self.n_pos + self.n_neg),
            "tp": tp,
            "fp": fp,
            "precision": _div(tp, tp + fp),
            "recall": _div(tp, self.n_pos),
            "fpr": _div(fp, self.n_neg),
            "fraud_value_caught": _div(value, self.fraud_amount),
        }

    def at_threshold(self, threshold: float) -> dict[str, Any]:
        """Figures when alerting on ``score >= threshold``."""
        i = int(np.searchsorted(-self.scores, -float(threshold), side="right")) - 1
        return self.point(i) | {"threshold": float(threshold)}

    def recall_at_fpr(self, max_fpr: float = 0.01) -> dict[str, Any]:
        """Highest recall whose false-positive rate is at most ``max_fpr`` (lowest threshold)."""
        if not self.n_neg:
            return self.point(-1) | {"max_fpr": max_fpr, "recall": None}
        # The same division as scikit-learn's roc_curve, so the boundary compares identically.
        ok = np.flatnonzero(self.fps / self.n_neg <= max_fpr)
        return self.point(int(ok[-1]) if len(ok) else -1) | {"max_fpr": max_fpr}

    def at_budget(self, budget: float) -> dict[str, Any]:
        """Figures when alerting on the top ``budget`` rows (int: a count; float < 1: a share).

        The threshold is the score of the last row inside the budget; rows tied with it are
        alerted too, so ``n_alerts`` may exceed the budget.
        """
        n = self.n_pos + self.n_neg
        if isinstance(budget, float) and 0 < budget < 1:
            wanted, kind = max(1, math.ceil(budget * n)), "fraction"
        elif float(budget).is_integer() and budget >= 1:
            wanted, kind = int(budget), "count"
        else:
            raise ValueError(
                f"alert budget: got {budget!r}, expected a count >= 1 or a share in (0, 1)"
            )
        i = min(int(np.searchsorted(self.alerts, wanted, side="left")), len(self.alerts) - 1)
        return {"budget": budget, "kind": kind} | self.point(i)

    def threshold_table(self, thresholds: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """One row per threshold (default: the thresholds of alert shares ``TABLE_FRACTIONS``)."""
        if thresholds is None:
            rows = [self.at_budget(f) for f in TABLE_FRACTIONS]
            return [{k: v for k, v in r.items() if k not in ("budget", "kind")} for r in rows]
        return [self.at_threshold(t) for t in sorted(thresholds, reverse=True)]

    def curves(self, max_points: int = 200, bins: int = 20) -> dict[str, Any]:
        """ROC and PR points thinned to ``max_points`` (for plots) and exact score histograms."""
        keep = np.unique(np.linspace(0, len(self.scores) - 1, max_points).round().astype(int))
        fpr = self.fps[keep] / max(self.n_neg, 1)
        tpr = self.tps[keep] / max(self.n_pos, 1)
        edges = np.linspace(self.scores.min(), self.scores.max(), bins + 1)
        return {
            "roc": {"fpr": [0.0, *fpr.tolist()], "tpr": [0.0, *tpr.tolist()]},
            "pr": {
                "recall": tpr.tolist(),
                "precision": (self.tps[keep] / self.alerts[keep]).tolist(),
            },
            "score_histogram": {
                "edges": edges.tolist(),
                "fraud": np.histogram(self.scores, edges, weights=self.pos)[0].astype(int).tolist(),
                "genuine": np.histogram(self.scores, edges, weights=self.neg)[0]
                .astype(int)
                .tolist(),
            },
        }

    def summary(self, max_fpr: float, budgets: Sequence[float]) -> dict[str, Any]:
        """Headline numbers: counts, ROC AUC, AP, recall at ``max_fpr``, alert budgets."""
        at_fpr = self.recall_at_fpr(max_fpr)
        return {
            "n": self.n_pos + self.n_neg,
            "n_fraud": self.n_pos,
            "fraud_rate": _div(self.n_pos, self.n_pos + self.n_neg),
            "fraud_amount": self.fraud_amount,
            "roc_auc": self.roc_auc(),
            "average_precision": self.average_precision(),
            "max_fpr": max_fpr,
            "recall_at_fpr": at_fpr["recall"],
            "threshold_at_fpr": at_fpr["threshold"],
            "precision_at_fpr": at_fpr["precision"],
            "fraud_value_caught_at_fpr": at_fpr["fraud_value_caught"],
            "alert_budgets": [self.at_budget(b) for b in budgets],
        }


def card_candidates(
    cards: pd.DataFrame, fraud_cards: pd.DataFrame, k: int, by: Sequence[str]
) -> pd.DataFrame:
    """Card-days that can enter a day's top k after any removal of detected cards.

    Only cards with a fraud somewhere in their population can be detected and removed, so the
    top k of a day after removal lies inside: every card-day of such cards, plus the k best
    card-days of the other cards. ``cards`` has columns ``*by, day, card, score, label`` (one row
    per card and day; the results of frames holding disjoint card-days can be unioned);
    ``fraud_cards`` has columns ``*by, card``, one row per card with a fraud.
    """
    keys = [*by, "day"]
    ranked = cards.sort_values(
        [*keys, "score", "card"], ascending=[True] * len(keys) + [False, True]
    )
    if by:
        suspect = pd.MultiIndex.from_frame(ranked[[*by, "card"]]).isin(
            pd.MultiIndex.from_frame(fraud_cards[[*by, "card"]])
        )
    else:
        suspect = ranked["card"].isin(fraud_cards["card"]).to_numpy()
    others = ranked[~suspect].groupby(keys, sort=False).head(k)
    return pd.concat([ranked[suspect], others], ignore_index=True)


def card_precision_from_candidates(
    candidates: pd.DataFrame, k: int, remove_detected: bool = True
) -> dict[str, Any]:
    """Handbook card precision@k from :func:`card_candidates` of one population.

    For each day in order: drop cards detected on earlier days, rank cards by maximum score
    (ties: ``card`` ascending), count frauds among the top k, divide by k; the frauds found are
    removed from later days. Returns the mean over days and the per-day values.
    """
    detected: set[Any] = set()
    per_day, fraud_cards = {}, {}
    for day, group in candidates.groupby("day", sort=True):
        group = group[~group["card"].isin(detected)]
        group = group.sort_values(["score", "card"], ascending=[False, True])
        top = group.head(k)
        found = top.loc[top["label"] == 1, "card"]
        key = pd.Timestamp(day).date().isoformat()
        per_day[key] = len(found) / k
        fraud_cards[key] = int((group["label"] == 1).sum())
        if remove_detected:
            detected.update(found.tolist())
    mean = float(np.mean(list(per_day.values()))) if per_day else None
    return {"k": k, "mean": mean, "per_day": per_day, "fraud_cards_per_day": fraud_cards}


def _is_dask(frame: Any) -> bool:
    return hasattr(frame, "dask") and hasattr(frame, "npartitions")


def metric_columns(part: pd.DataFrame, names: dict[str, str | None]) -> pd.DataFrame:
    """One partition in the internal layout: score, label, card, day, fraud_amount[, client].

    Parameters
    ----------
    part : pandas.DataFrame
        Scored transactions.
    names : dict
        Column of ``part`` for each of ``score``, ``label``, ``card``, ``ts`` (or ``day``),
        ``amount`` and ``client``; ``None`` where absent.

    Returns
    -------
    pandas.DataFrame
        Same rows and index; ``day`` is midnight of ``ts`` unless a day column is named.
    """
    label = part[names["label"]]
    amount = part[names["amount"]] if names["amount"] else pd.Series(0.0, index=part.index)
    out = pd.DataFrame(
        {
            "score": part[names["score"]].astype("float64"),
            "label": label,
            "card": part[names["card"]],
            "day": part[names["ts"]].dt.floor("D") if names["day"] is None else part[names["day"]],
            "fraud_amount": amount.astype("float64") * (label == 1),
        },
        index=part.index,
    )
    if names["client"]:
        out["client"] = part[names["client"]].astype(str)
    return out


def _columns(frame: Any, names: dict[str, str | None]) -> Any:
    wanted = {k: v for k, v in names.items() if v is not None}
    if names["day"] is not None:
        del wanted["ts"]
    missing = sorted({v for v in wanted.values() if v not in frame.columns})
    if missing:
        raise ValueError(
            f"evaluate: missing column(s) {missing}; the frame has {list(frame.columns)} "
            "(pass score_col=, label_col=, ... to name yours)"
        )
    if not _is_dask(frame):
        return metric_columns(frame, names)
    meta = metric_columns(frame._meta, names)
    return frame.map_partitions(metric_columns, names, meta=meta)


def _score_table(frame: Any, keys: list[str]) -> Any:
    # The table comes to the client whole, so a tree reduction into one partition is enough.
    extra = {"split_out": 1} if _is_dask(frame) else {}
    return frame.groupby(keys, observed=True).agg(
        n=("label", "count"), pos=("label", "sum"), fraud_amount=("fraud_amount", "sum"), **extra
    )


def card_day_candidates(part: pd.DataFrame, k: int, by: Sequence[str]) -> pd.DataFrame:
    """:func:`card_candidates` of a partition holding every row of each of its cards.

    Parameters
    ----------
    part : pandas.DataFrame
        Rows with columns ``*by, day, card, score, label`` (all rows of a card together).
    k : int
        Cards per day.
    by : sequence of str
        Population keys (e.g. ``["client"]``); empty for the whole frame.

    Returns
    -------
    pandas.DataFrame
        Card-days (max score, max label) that can enter some day's top k.
    """
    keys = [*by, "day", "card"]
    cards = part.groupby(keys, observed=True, sort=False).agg(
        score=("score", "max"), label=("label", "max")
    )
    cards = cards.reset_index()
    fraud_cards = cards.loc[cards["label"] == 1, [*by, "card"]].drop_duplicates()
    return card_candidates(cards, fraud_cards, k, by)


def _candidates(by_card: Any, by: list[str], k: int) -> Any:
    if not _is_dask(by_card):
        return card_day_candidates(by_card, k, by)
    meta = card_day_candidates(by_card._meta, k, by)
    return by_card.map_partitions(card_day_candidates, k, by, meta=meta)


def evaluate(
    frame: Any,
    *,
    k: int = 100,
    max_fpr: float = 0.01,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    thresholds: Sequence[float] | None = None,
    by_day: bool = True,
    by_client: bool | None = None,
    curves: bool = True,
    score_col: str = "score",
    label_col: str = "is_fraud",
    card_col: str = "card_id",
    ts_col: str = "ts",
    day_col: str | None = None,
    amount_col: str | None = "amount",
    client_col: str = "client_id",
) -> dict[str, Any]:
    """All fraud metrics of scored transactions, exactly, in one pass over the data.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame or pandas.DataFrame
        Scored transactions (e.g. a test fold with a score column).
    k : int
        Cards per day for card precision@k (the book: 100).
    max_fpr : float
        False-positive rate for ``recall_at_fpr``.
    budgets : sequence of int or float
        Alert budgets: an int is a count of top rows, a float in (0, 1) a share of rows.
    thresholds : sequence of float, optional
        Rows of the threshold table; default: thresholds of fixed alert shares.
    by_day : bool
        Add ``per_day`` (metrics of each test day; its CP@k is that day's value in the sequence).
    by_client : bool, optional
        Add ``per_client``; default: when ``client_col`` is a column.
    curves : bool
        Add thinned ROC/PR points and exact score histograms by label, for plots.
    score_col, label_col, card_col, ts_col, day_col, amount_col, client_col : str
        Column names; the day is ``floor(ts, "D")`` unless ``day_col`` names a day column;
        ``amount_col=None`` drops the fraud-value figures.

    Returns
    -------
    dict
        JSON-serialisable: ``n``, ``n_fraud``, ``roc_auc``, ``average_precision``,
        ``card_precision_at_{k}``, ``recall_at_fpr`` (+ threshold, precision, fraud value),
        ``alert_budgets``, ``card_precision`` (per day), ``threshold_table``, and optionally
        ``per_day``, ``per_client``, ``curves``.

    Raises
    ------
    ValueError
        On a missing column, an empty frame, a label other than 0/1, or a missing or infinite
        score; the message names the column.
    """
    import dask

    if k < 1:
        raise ValueError(f"evaluate: k must be >= 1, got {k}")
    if not 0 <= max_fpr <= 1:
        raise ValueError(f"evaluate: max_fpr must be in [0, 1], got {max_fpr}")
    if by_client is None:
        by_client = client_col in frame.columns
    names = {
        "score": score_col,
        "label": label_col,
        "card": card_col,
        "ts": ts_col,
        "day": day_col,
        "amount": amount_col,
        "client": client_col if by_client else None,
    }
    work = _columns(frame, names)
    lazy = {
        "rows": work["label"].size,
        "bad_labels": (~work["label"].isin([0, 1])).sum(),
        "bad_scores": work["score"].isna().sum() + (work["score"].abs() == np.inf).sum(),
        "table": _score_table(work, ["day", "score"] if by_day else ["score"]),
    }
    # One shuffle puts all rows of a card in one partition; the card-day maxima and the
    # candidates for CP@k (overall and per client) are then computed partition by partition.
    by_card = work.shuffle(on="card") if _is_dask(work) else work
    lazy["cards"] = _candidates(by_card, [], k)
    if by_client:
        lazy["client_table"] = _score_table(work, ["client", "score"])
        lazy["client_cards"] = _candidates(by_card, ["client"], k)
    got = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
    if not got["rows"]:
        raise ValueError("evaluate: the frame has no rows")
    if got["bad_labels"]:
        raise ValueError(
            f"evaluate: column {label_col!r} has {got['bad_labels']} value(s) other than 0/1"
        )
    if got["bad_scores"]:
        raise ValueError(
            f"evaluate: column {score_col!r} has {got['bad_scores']} missing or infinite value(s)"
        )

    table = got["table"].reset_index()
    curve = ScoreCurve(table)
    cp = card_precision_from_candidates(got["cards"], k)
    out = curve.summary(max_fpr, budgets)
    out[f"card_precision_at_{k}"] = cp["mean"]
    out["card_precision"] = cp
    out["threshold_table"] = curve.threshold_table(thresholds)
    if curves:
        out["curves"] = curve.curves()
    if by_day:
        out["per_day"] = {
            pd.Timestamp(day).date().isoformat(): ScoreCurve(part).summary(max_fpr, budgets)
            | {f"card_precision_at_{k}": cp["per_day"][pd.Timestamp(day).date().isoformat()]}
            for day, part in table.groupby("day", sort=True)
        }
    if by_client:
        cands = got["client_cards"]
        out["per_client"] = {}
        for client, part in got["client_table"].reset_index().groupby("client", sort=True):
            ccp = card_precision_from_candidates(cands[cands["client"] == client], k)
            out["per_client"][str(client)] = ScoreCurve(part).summary(max_fpr, budgets) | {
                f"card_precision_at_{k}": ccp["mean"],
                "card_precision": ccp,
            }
    return out
