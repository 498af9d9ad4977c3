"""The evaluation report: one standalone HTML file of bokeh plots and tables.

:func:`write_report` takes the outputs of :func:`fraud_dask.metrics.evaluate` for each test fold
(and the baseline's), the model's feature importance and a summary, and writes
``<run_dir>/report.html``: a summary table, PR and ROC curves, score distributions by label,
metrics per day, feature importance and the threshold table. The bokeh JavaScript is inlined,
so the file opens without network access.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
HEADLINE = ("roc_auc", "average_precision", "card_precision_at_100", "recall_at_fpr")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain HTML table of ``rows`` (dicts), in ``columns`` order."""
    if not rows:
        return "<p>(no rows)</p>"
    columns = list(columns or rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="metrics"><tr>{head}</tr>{body}</table>'


def _curve_figures(models: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    from bokeh.plotting import figure

    roc = figure(
        title="ROC curve",
        x_axis_label="false-positive rate",
        y_axis_label="true-positive rate",
        width=520,
        height=420,
    )
    pr = figure(
        title="Precision-recall curve",
        x_axis_label="recall",
        y_axis_label="precision",
        width=520,
        height=420,
    )
    roc.line([0, 1], [0, 1], line_dash="dotted", color="grey")
    i = 0
    for model, folds in models.items():
        dash = "solid" if i == 0 else "dashed"
        for j, (fold, ev) in enumerate(folds.items()):
            curves = ev.get("curves")
            if not curves:
                continue
            colour = PALETTE[j % len(PALETTE)]
            label = f"{model} {fold}"
            roc.line(
                curves["roc"]["fpr"],
                curves["roc"]["tpr"],
                color=colour,
                line_dash=dash,
                legend_label=label,
            )
            pr.line(
                curves["pr"]["recall"],
                curves["pr"]["precision"],
                color=colour,
                line_dash=dash,
                legend_label=label,
            )
        i += 1
    for fig in (roc, pr):
        fig.legend.location = "bottom_right" if fig is roc else "top_right"
        fig.legend.label_text_font_size = "8pt"
    return [roc, pr]


def _score_figure(folds: Mapping[str, Any]) -> Any:
    import numpy as np
    from bokeh.plotting import figure

    fig = figure(
        title="Score distribution by label (share of each class per bin)",
        x_axis_label="score",
        y_axis_label="share of the class",
        width=520,
        height=380,
    )
    first = next((ev for ev in folds.values() if ev.get("curves")), None)
    if first is None:
        return fig
    hist = first["curves"]["score_histogram"]
    edges = np.asarray(hist["edges"])
    for key, colour in (("genuine", "#1f77b4"), ("fraud", "#d62728")):
        counts = np.asarray(hist[key], dtype=float)
        share = counts / counts.sum() if counts.sum() else counts
        fig.quad(
            top=share,
            bottom=0,
            left=edges[:-1],
            right=edges[1:],
            fill_color=colour,
            fill_alpha=0.45,
            line_color=colour,
            legend_label=f"{key} (first fold)",
        )
    return fig


def _per_day_figure(folds: Mapping[str, Any]) -> Any:
    import pandas as pd
    from bokeh.plotting import figure

    fig = figure(
        title="Metrics per test day",
        x_axis_type="datetime",
        x_axis_label="day",
        y_axis_label="value",
        width=1060,
        height=360,
    )
    for j, (fold, ev) in enumerate(folds.items()):
        per_day = ev.get("per_day") or {}
        if not per_day:
            continue
        days = [pd.Timestamp(d) for d in per_day]
        colour = PALETTE[j % len(PALETTE)]
        ap = [v.get("average_precision") for v in per_day.values()]
        cp = [v.get("card_precision_at_100") for v in per_day.values()]
        fig.line(
            days,
            [float("nan") if v is None else v for v in ap],
            color=colour,
            legend_label=f"AP {fold}",
        )
        fig.scatter(
            days,
            [float("nan") if v is None else v for v in cp],
            color=colour,
            marker="triangle",
            size=7,
            legend_label=f"CP@100 {fold}",
        )
    if fig.legend:
        fig.legend.label_text_font_size = "8pt"
        fig.legend.location = "top_left"
    return fig


def _importance_figure(importance: Mapping[str, float], top: int = 30) -> Any:
    from bokeh.models import FactorRange
    from bokeh.plotting import figure

    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    names = [k for k, _ in items] or ["(none)"]
    fig = figure(
        title="Feature importance (gain)",
        y_range=FactorRange(factors=names),
        width=1060,
        height=max(240, 22 * len(names) + 60),
        x_axis_label="total gain share",
    )
    total = sum(v for _, v in items) or 1.0
    fig.hbar(y=names, right=[v / total for _, v in items] or [0], height=0.7, color="#2ca02c")
    return fig


def report_figures(
    evaluations: Mapping[str, Mapping[str, Mapping[str, Any]]],
    importance: Mapping[str, float] | None = None,
) -> list[Any]:
    """The figures of ``report.html``, to show them elsewhere (a notebook: ``bokeh.io.show``).

    Parameters
    ----------
    evaluations : mapping
        As :func:`write_report`'s.
    importance : mapping, optional
        Input -> importance of the main model.

    Returns
    -------
    list of bokeh figures
        ROC curve, precision-recall curve, score distribution and metrics per day (of the
        first model), and the feature importance.
    """
    if not evaluations:
        raise ValueError("report_figures: no evaluation to show")
    main = next(iter(evaluations.values()))
    return [
        *_curve_figures(evaluations),
        _score_figure(main),
        _per_day_figure(main),
        _importance_figure(importance or {}),
    ]


def write_report(
    run_dir: str | Path,
    evaluations: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    importance: Mapping[str, float] | None = None,
    summary: Sequence[Mapping[str, Any]] | None = None,
    title: str = "fraud_dask evaluation",
    notes: list[str] | None = None,
) -> Path:
    """Write ``<run_dir>/report.html``.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (created if missing).
    evaluations : mapping
        Model name -> fold name -> output of :func:`fraud_dask.metrics.evaluate` (with
        ``curves`` and ``per_day``); the first model is the main one.
    importance : mapping, optional
        Input -> importance of the main model.
    summary : list of dict, optional
        Rows of the summary table (e.g. mean ± std per model); default: one row per fold.
    title : str
        Page title.
    notes : list of str, optional
        Lines shown under the title (data, protocol, device).

    Returns
    -------
    pathlib.Path
        The report's path.
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    if not evaluations:
        raise ValueError("write_report: no evaluation to report")
    main_name, main = next(iter(evaluations.items()))
    if summary is None:
        summary = [
            {"model": model, "fold": fold, **{k: ev.get(k) for k in HEADLINE}}
            for model, folds in evaluations.items()
            for fold, ev in folds.items()
        ]
    style = (
        "<style>table.metrics{border-collapse:collapse;font:13px sans-serif}"
        "table.metrics td,table.metrics th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}</style>"
    )
    intro = "".join(f"<p>{html.escape(n)}</p>" for n in notes or [])
    first_fold, first = next(iter(main.items()))
    blocks = [
        Div(
            text=f"{style}<h1>{html.escape(title)}</h1>{intro}<h2>Summary</h2>"
            + html_table(list(summary)),
            width=1060,
        ),
        row(*_curve_figures(evaluations)),
        row(_score_figure(main)),
        _per_day_figure(main),
        _importance_figure(importance or {}),
        Div(
            text=f"<h2>Threshold table ({html.escape(main_name)}, {html.escape(first_fold)})</h2>"
            + html_table(first.get("threshold_table", [])),
            width=1060,
        ),
    ]
    out = Path(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(file_html(column(*blocks), INLINE, title), encoding="utf-8")
    log.info("report: %s", out)
    return out
