"""Champion vs challenger: both models replayed on the same rows, differences with bootstrap CIs.

The metric values come from :func:`fraud_dask.metrics.evaluate` (exact). Confidence intervals
come from a paired bootstrap over cards: each replicate draws cards with replacement (a card
drawn twice counts as two cards, so card precision@k stays well defined), takes all their rows,
and evaluates both models on that same sample; the interval of ``challenger - champion`` is the
percentile interval of the replicates. Cards, not rows, are resampled because a card's
transactions are not independent (and CP@k counts cards). Per client, cards are resampled within
the client's rows.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: The compared metrics: name -> how to read it from ``evaluate``'s result.
METRICS = ("average_precision", "card_precision_at_k", "recall_at_fpr", "value_caught_at_fpr")


@dataclass
class CompareConf:
    """Schema of the ``compare`` config node (``task=compare``).

    Attributes
    ----------
    champion, challenger : str
        Registry references (alias, ``latest`` or a number) of ``registry.name``.
    start, end : str or None
        The replay period ``[start, end)``; null start: the data's last day.
    known_compromised : str
        ``label_ts`` (default): as in evaluation, a row on day D is left out when its card had
        a fraud whose label was known before D (``label_ts`` before the start of D, anywhere in
        the source's history); ``none``: compare every row.
    n_boot : int
        Bootstrap replicates.
    ci : float
        Confidence level of the intervals.
    k : int
        Cards per day for card precision@k.
    max_fpr : float
        False-positive rate of ``recall_at_fpr`` and of the value-caught threshold.
    seed : int
        Seed of the bootstrap draws.
    allow_incompatible : bool
        Compare even when the two versions come from different sources (``data.name``) or
        take different inputs (feature names), or when the replay source is not theirs; by
        default such a pair is refused (see :func:`incompatibilities`).
    decisions : str or None
        A decision log of ``task=serve``'s arms (``score.serve.arms``): compare the arms it
        logged on the labels ``data`` holds now (:func:`fraud_dask.score.arms.compare_arms`)
        instead of replaying two versions.
    """

    champion: str = "champion"
    challenger: str = "latest"
    start: str | None = None
    end: str | None = None
    known_compromised: str = "label_ts"
    n_boot: int = 200
    ci: float = 0.95
    k: int = 100
    max_fpr: float = 0.01
    seed: int = 0
    allow_incompatible: bool = False
    decisions: str | None = None


def _listed(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" (+{len(names) - most} more)" if len(names) > most else "")


def incompatibilities(champion: Any, challenger: Any, replay: str | None = None) -> list[str]:
    """What makes two registry versions unfit for a like-for-like comparison (empty: nothing).

    Parameters
    ----------
    champion, challenger : fraud_dask.registry.ModelBundle
        The loaded versions; their ``source`` (recorded, or from their config for older
        bundles) and their model inputs (``manifest['model']['columns']``) are compared.
    replay : str, optional
        ``data.name`` of the source the comparison replays; it must be the models' source.

    Returns
    -------
    list of str
        One phrase per difference, naming the versions: a different source, inputs only one
        model takes, a replay source that is not the models'. An unrecorded source is not a
        difference.
    """
    a, b = champion.version, challenger.version
    out = []
    src_a = (champion.source or {}).get("name")
    src_b = (challenger.source or {}).get("name")
    if src_a and src_b and src_a != src_b:
        out.append(f"source {src_a!r} (v{a}) vs {src_b!r} (v{b})")
    cols_a = list(champion.manifest.get("model", {}).get("columns") or [])
    cols_b = list(challenger.manifest.get("model", {}).get("columns") or [])
    only_a = [c for c in cols_a if c not in set(cols_b)]
    only_b = [c for c in cols_b if c not in set(cols_a)]
    if only_a or only_b:
        sides = []
        if only_a:
            sides.append(f"only v{a} takes {_listed(only_a)}")
        if only_b:
            sides.append(f"only v{b} takes {_listed(only_b)}")
        out.append(f"feature names differ ({'; '.join(sides)})")
    models = {s for s in (src_a, src_b) if s}
    if replay and models and replay not in models:
        out.append(f"the replay source data.name={replay!r} is not the models' {sorted(models)}")
    return out


def _metrics(frame: Any, score_col: str, k: int, max_fpr: float) -> dict[str, float | None]:
    from fraud_dask.metrics import evaluate

    out = evaluate(
        frame,
        k=k,
        max_fpr=max_fpr,
        budgets=(),
        by_day=False,
        by_client=False,
        curves=False,
        score_col=score_col,
    )
    return {
        "average_precision": out["average_precision"],
        "card_precision_at_k": out[f"card_precision_at_{k}"],
        "recall_at_fpr": out["recall_at_fpr"],
        "value_caught_at_fpr": out["fraud_value_caught_at_fpr"],
    }


def _resample(frame: pd.DataFrame, groups: list[np.ndarray], rng: np.random.Generator):
    draw = rng.integers(0, len(groups), len(groups))
    rows = np.concatenate([groups[i] for i in draw])
    sizes = np.array([len(groups[i]) for i in draw])
    sample = frame.iloc[rows].copy()
    sample["card_id"] = np.repeat(np.arange(len(draw)), sizes)  # a card drawn twice: two cards
    return sample


def bootstrap_difference(
    frame: pd.DataFrame,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    k: int = 100,
    max_fpr: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of two models on the same rows, and their differences with bootstrap CIs.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per transaction: ``score_champion``, ``score_challenger``, ``is_fraud``,
        ``card_id``, ``ts``, ``amount``.
    n_boot, ci, k, max_fpr, seed
        See :class:`CompareConf`.

    Returns
    -------
    dict
        ``rows``, ``frauds``, ``champion`` and ``challenger`` (metric -> value), and
        ``difference`` (metric -> ``value``, ``ci_low``, ``ci_high``, ``p_challenger_better``,
        ``replicates``); a metric undefined in a replicate (no fraud drawn) is left out of it.

    Raises
    ------
    ValueError
        A column is missing, ``n_boot < 1`` or ``ci`` is not in (0, 1).
    """
    need = ["score_champion", "score_challenger", "is_fraud", "card_id", "ts", "amount"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"compare: column(s) {missing} missing; got {list(frame.columns)}")
    if n_boot < 1 or not 0 < ci < 1:
        raise ValueError(f"compare: need n_boot >= 1 and 0 < ci < 1, got {n_boot}, {ci}")
    frame = frame[need].reset_index(drop=True)
    point = {m: _metrics(frame, f"score_{m}", k, max_fpr) for m in ("champion", "challenger")}
    groups = list(frame.groupby("card_id", sort=True).indices.values())
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        sample = _resample(frame, groups, rng)
        if not sample["is_fraud"].any():
            continue
        a = _metrics(sample, "score_champion", k, max_fpr)
        b = _metrics(sample, "score_challenger", k, max_fpr)
        for m in METRICS:
            va, vb = a[m], b[m]
            if va is not None and vb is not None:
                reps[m].append(float(vb) - float(va))
    alpha = (1 - ci) / 2
    diff = {}
    for m in METRICS:
        champ, chall = point["champion"][m], point["challenger"][m]
        values = np.asarray(reps[m])
        diff[m] = {
            "value": None if champ is None or chall is None else float(chall) - float(champ),
            "ci_low": float(np.quantile(values, alpha)) if len(values) else None,
            "ci_high": float(np.quantile(values, 1 - alpha)) if len(values) else None,
            "p_challenger_better": float(np.mean(values > 0)) if len(values) else None,
            "replicates": len(values),
        }
    return {
        "rows": len(frame),
        "frauds": int(frame["is_fraud"].sum()),
        "cards": len(groups),
        "champion": point["champion"],
        "challenger": point["challenger"],
        "difference": diff,
    }


def compare_frames(
    frame: pd.DataFrame, *, by_client: bool = True, **options: Any
) -> dict[str, Any]:
    """:func:`bootstrap_difference` overall and per ``client_id`` (when present).

    Returns
    -------
    dict
        The overall result, plus ``per_client`` (client -> result) and ``options``.
    """
    out = bootstrap_difference(frame, **options)
    out["options"] = {"n_boot": 200, "ci": 0.95, "k": 100, "max_fpr": 0.01, "seed": 0} | options
    if by_client and "client_id" in frame.columns:
        out["per_client"] = {}
        for client, part in frame.groupby(frame["client_id"].astype(str), sort=True):
            if part["is_fraud"].any():
                out["per_client"][str(client)] = bootstrap_difference(part, **options)
            else:
                out["per_client"][str(client)] = {
                    "rows": len(part),
                    "frauds": 0,
                    "note": "no fraud: metrics undefined",
                }
    return out


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.4f}" if isinstance(value, float) and value < 0 else f"{value:.4f}"


def _rows(result: dict[str, Any]) -> str:
    cells = []
    for m in METRICS:
        d = result["difference"][m]
        lo, hi = d["ci_low"], d["ci_high"]
        verdict = ""
        if lo is not None and hi is not None:
            verdict = (
                "challenger better"
                if lo > 0
                else "champion better"
                if hi < 0
                else "no clear difference"
            )
        cells.append(
            f"<tr><td>{m}</td><td>{_fmt(result['champion'][m])}</td>"
            f"<td>{_fmt(result['challenger'][m])}</td><td>{_fmt(d['value'])}</td>"
            f"<td>[{_fmt(lo)}, {_fmt(hi)}]</td><td>{_fmt(d['p_challenger_better'])}</td>"
            f"<td>{verdict}</td></tr>"
        )
    return "\n".join(cells)


def _forest_figure(result: dict[str, Any]) -> Any:
    """Each metric's difference ``challenger - champion`` with its interval, overall and per
    client (a forest plot: right of the zero line, the challenger is better); None when no
    metric has an interval (no fraud in the period)."""
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
    from bokeh.models.annotations import Span
    from bokeh.plotting import figure

    from fraud_dask.report import PALETTE

    verdict_colour = {"challenger better": PALETTE[2], "champion better": PALETTE[3],
                      "no clear difference": PALETTE[0]}  # fmt: skip
    parts = [("overall", result)] + [
        (f"client {c}", r) for c, r in result.get("per_client", {}).items() if "difference" in r
    ]
    rows: dict[str, list[Any]] = {k: [] for k in ("y", "value", "lo", "hi", "colour", "verdict")}
    for where, res in parts:
        for m in METRICS:
            d = res["difference"][m]
            if d["value"] is None or d["ci_low"] is None or d["ci_high"] is None:
                continue
            lo, hi = float(d["ci_low"]), float(d["ci_high"])
            verdict = "challenger better" if lo > 0 else "champion better" if hi < 0 else (
                "no clear difference")  # fmt: skip
            rows["y"].append(f"{where}: {m}")
            rows["value"].append(float(d["value"]))
            rows["lo"].append(lo)
            rows["hi"].append(hi)
            rows["colour"].append(verdict_colour[verdict])
            rows["verdict"].append(verdict)
    if not rows["y"]:
        return None
    factors = list(reversed(rows["y"]))
    low, high = min(0.0, *rows["lo"]), max(0.0, *rows["hi"])  # the zero line always shows
    pad = 0.05 * (high - low or 1.0)
    fig = figure(
        x_range=Range1d(low - pad, high + pad),
        y_range=FactorRange(factors=factors),
        width=900,
        height=60 + 26 * max(len(factors), 1),
        title=f"challenger - champion, {result['options']['ci']:.0%} interval (right of 0: "
        "the challenger is better)",
        x_axis_label="difference",
        toolbar_location=None,
    )
    source = ColumnDataSource(rows)
    fig.segment("lo", "y", "hi", "y", source=source, color="colour", line_width=3)
    dots = fig.scatter("value", "y", source=source, color="colour", size=9)
    fig.add_layout(Span(location=0, dimension="height", line_color="#444", line_dash="dashed"))
    fig.add_tools(
        HoverTool(
            renderers=[dots],
            tooltips=[
                ("", "@y"),
                ("difference", "@value{0.0000}"),
                ("interval", "[@lo{0.0000}, @hi{0.0000}]"),
                ("", "@verdict"),
            ],
        )  # fmt: skip
    )
    return fig


def render_html(result: dict[str, Any], title: str) -> str:
    """A self-contained HTML report of :func:`compare_frames`' result: the tables and a forest
    plot of the differences, with BokehJS embedded (readable offline)."""
    from bokeh.embed import components
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import INLINE

    opts = result["options"]
    forest = _forest_figure(result)
    if forest is None:
        bokehjs, script = "", ""
        div = "<p>No interval to plot: no metric is defined on these rows.</p>"
    else:
        # BokehJS inline, only the parts this figure needs
        bokehjs = bundle_for_objs_and_resources([forest], INLINE).scripts()
        script, div = components(forest)
    head = (
        "<tr><th>metric</th><th>champion</th><th>challenger</th><th>difference</th>"
        f"<th>{opts['ci']:.0%} CI</th><th>P(challenger better)</th><th>verdict</th></tr>"
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}</style>",
        bokehjs,
        script,
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{result['rows']} transactions, {result['frauds']} frauds, {result['cards']} cards. "
        f"Paired bootstrap over cards, {opts['n_boot']} replicates (seed {opts['seed']}); "
        f"CP@k with k={opts['k']}; recall and value caught at FPR {opts['max_fpr']}.</p>",
        f"<h2>Overall</h2><table>{head}{_rows(result)}</table>",
        f"<h2>Differences with their intervals</h2>{div}",
    ]
    for client, res in result.get("per_client", {}).items():
        if "difference" in res:
            parts.append(
                f"<h2>Client {html.escape(client)}</h2><p>{res['rows']} transactions, "
                f"{res['frauds']} frauds</p><table>{head}{_rows(res)}</table>"
            )
        else:
            parts.append(f"<h2>Client {html.escape(client)}</h2><p>{html.escape(res['note'])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
