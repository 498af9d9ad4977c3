"""``monitor.html``: one self-contained page (bokeh, JavaScript inlined, readable offline).

In order: the fired alerts, a drift heat map per client (inputs and the score by period, PSI),
the score's distribution per period against the training reference, performance by period with
the label-maturity band (periods whose labels are not complete are shaded and the share of rows
still pending is drawn beside the figures), the alert rate over time against the expected rate
and its band, and the tables behind them.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fraud_dask.report import PALETTE, html_table

log = logging.getLogger(__name__)

#: heat map colours, white (no drift) to dark red (PSI at or above the top of the scale)
_HEAT = ("#ffffff", "#fee5d9", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#99000d")


def _ts(day: str) -> Any:
    import pandas as pd

    return pd.Timestamp(day)


def _heat_map(rows: Sequence[Mapping[str, Any]], client: str, top: float) -> Any:
    from bokeh.models import (  # type: ignore[attr-defined]
        ColorBar,
        ColumnDataSource,
        FactorRange,
        HoverTool,
        LinearColorMapper,
    )
    from bokeh.plotting import figure

    mine = [r for r in rows if r["client"] == client]
    periods = [r["period"] for r in mine]
    names = ["score", *sorted(mine[0]["features"])] if mine else ["score"]
    data: dict[str, list[Any]] = {"period": [], "input": [], "psi": [], "shown": [], "rows": []}
    for r in mine:
        for name in names:
            m = r["score"] if name == "score" else r["features"][name]
            value = m["psi"]
            data["period"].append(r["period"])
            data["input"].append(name)
            data["psi"].append(value if value is not None else float("nan"))
            data["shown"].append(min(value, top) if value is not None else 0.0)
            data["rows"].append(r["rows"])
    mapper = LinearColorMapper(palette=list(_HEAT), low=0.0, high=top)
    fig = figure(
        title=f"Drift heat map, client {client} (PSI against the training reference)",
        x_range=FactorRange(factors=periods or ["-"]),
        y_range=FactorRange(factors=list(reversed(names))),
        width=max(420, 70 * len(periods) + 300),
        height=max(240, 16 * len(names) + 90),
        tools="save",
        x_axis_label="period",
    )
    fig.rect(
        x="period",
        y="input",
        width=1,
        height=1,
        source=ColumnDataSource(data),
        fill_color={"field": "shown", "transform": mapper},
        line_color="#dddddd",
    )
    fig.add_tools(HoverTool(tooltips=[("input", "@input"), ("period", "@period"),
                                      ("PSI", "@psi{0.000}"), ("rows", "@rows")]))  # fmt: skip
    fig.add_layout(ColorBar(color_mapper=mapper, title="PSI"), "right")
    fig.xaxis.major_label_orientation = 0.8
    fig.yaxis.major_label_text_font_size = "8pt"
    return fig


def _score_figure(
    rows: Sequence[Mapping[str, Any]], reference: Mapping[str, Any], client: str
) -> Any:
    import numpy as np
    from bokeh.models import FactorRange
    from bokeh.plotting import figure

    edges = list(reference["score"]["edges"])
    labels = [f"<= {edges[0]:.3g}"] + [f"<= {e:.3g}" for e in edges[1:]] + [f"> {edges[-1]:.3g}"]
    labels.append("missing")
    counts = reference["score"]["counts"]
    ref = np.asarray(
        counts.get(client) or np.sum([np.asarray(v) for v in counts.values()], axis=0), float
    )
    fig = figure(
        title=f"Score distribution, client {client}: share of rows per reference bin",
        x_range=FactorRange(factors=labels),
        width=760,
        height=340,
        tools="save",
        y_axis_label="share of rows",
    )
    fig.vbar(
        x=labels,
        top=(ref / ref.sum()).tolist() if ref.sum() else [0] * len(labels),
        width=0.8,
        color="#cccccc",
        legend_label="training reference",
    )
    for j, r in enumerate(x for x in rows if x["client"] == client):
        actual = np.asarray(r["score"]["actual"], dtype=float)
        share = actual / actual.sum() if actual.sum() else actual
        fig.line(labels, share.tolist(), color=PALETTE[j % len(PALETTE)], legend_label=r["period"])
    fig.xaxis.major_label_orientation = 0.8
    fig.legend.label_text_font_size = "7pt"
    fig.legend.location = "top_right"
    return fig


def _performance_figure(perf: Sequence[Mapping[str, Any]], freq: str) -> Any:
    import pandas as pd
    from bokeh.models import BoxAnnotation  # type: ignore[attr-defined]
    from bokeh.plotting import figure

    fig = figure(
        title="Performance by period on the rows labelled by the report date "
        "(shaded: labels not yet mature; dotted: share of rows still pending a label)",
        x_axis_type="datetime",
        width=1060,
        height=360,
        tools="save",
        y_axis_label="value",
    )
    length = pd.Timedelta(days=7 if freq == "week" else 1)
    shaded = sorted({r["period"] for r in perf if not r["mature"]})
    for day in shaded:
        left = _ts(day)
        fig.add_layout(
            BoxAnnotation(left=left, right=left + length, fill_color="#999999", fill_alpha=0.15)
        )
    clients = sorted({r["client"] for r in perf})
    for j, client in enumerate(clients):
        mine = sorted((r for r in perf if r["client"] == client), key=lambda r: r["period"])
        x = [_ts(r["period"]) + length / 2 for r in mine]
        colour = PALETTE[j % len(PALETTE)]
        for key, dash in (("average_precision", "solid"), ("recall_at_fpr", "dashed")):
            y = [r.get(key) for r in mine]
            fig.line(
                x,
                [float("nan") if v is None else v for v in y],
                color=colour,
                line_dash=dash,
                legend_label=f"{client} {'AP' if key == 'average_precision' else 'recall@FPR'}",
            )
        fig.line(
            x,
            [r["pending_share"] or 0.0 for r in mine],
            color=colour,
            line_dash="dotted",
            legend_label=f"{client} pending share",
        )
    if fig.legend:
        fig.legend.label_text_font_size = "7pt"
        fig.legend.location = "top_left"
    return fig


def _rate_figure(rates: Sequence[Mapping[str, Any]], low: float, high: float, freq: str) -> Any:
    import pandas as pd
    from bokeh.plotting import figure

    fig = figure(
        title=f"Alert rate at the decision threshold (band: {low:g}x to {high:g}x expected)",
        x_axis_type="datetime",
        width=1060,
        height=320,
        tools="save",
        y_axis_label="alert rate",
    )
    length = pd.Timedelta(days=7 if freq == "week" else 1)
    decision = [r for r in rates if r["threshold_name"] == "decision"]
    for j, client in enumerate(sorted({r["client"] for r in decision})):
        mine = sorted((r for r in decision if r["client"] == client), key=lambda r: r["period"])
        x = [_ts(r["period"]) + length / 2 for r in mine]
        colour = PALETTE[j % len(PALETTE)]
        expected = [r["expected"] or 0.0 for r in mine]
        fig.varea(
            x=x,
            y1=[low * e for e in expected],
            y2=[high * e for e in expected],
            fill_color=colour,
            fill_alpha=0.12,
        )
        fig.line(x, expected, color=colour, line_dash="dashed", legend_label=f"{client} expected")
        fig.line(
            x,
            [r["alert_rate"] or 0.0 for r in mine],
            color=colour,
            line_width=2,
            legend_label=f"{client} observed",
        )
    if fig.legend:
        fig.legend.label_text_font_size = "7pt"
        fig.legend.location = "top_left"
    return fig


def _bound(value: Any) -> str:
    """A rule's threshold as text: a number, or a band as "low to high" (4 significant digits)."""
    if isinstance(value, list | tuple):
        return " to ".join(_bound(v) for v in value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return "–" if value is None else str(value)


def write_monitor_report(
    run_dir: str | Path,
    result: Mapping[str, Any],
    reference: Mapping[str, Any],
    conf: Any,
    *,
    title: str,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``<run_dir>/monitor.html`` from a monitoring result and return its path.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    result : mapping
        :func:`fraud_dask.monitor.run.monitor_scores`'s result.
    reference : mapping
        The bundle's reference (score bins for the distributions).
    conf : MonitorConf
        The rules (bands and bounds drawn).
    title : str
        Page title.
    notes : sequence of str
        Lines under the title.
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    style = (
        "<style>table.metrics{border-collapse:collapse;font:12px sans-serif}"
        "table.metrics td,table.metrics th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right}</style>"
    )
    alerts = list(result["alerts"])
    alert_rows: list[Mapping[str, Any]] = [
        {
            k: a.get(k)
            for k in (
                "kind",
                "name",
                "client_id",
                "period",
                "value",
                "threshold",
                "rows",
                "p_value",
            )
        }  # fmt: skip
        | {"threshold": _bound(a.get("threshold"))}
        for a in alerts
    ]
    intro = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    head = (
        f"{style}<h1>{html.escape(title)}</h1>{intro}"
        f"<h2 id='alerts'>Alerts ({len(alerts)})</h2>"
        + (html_table(alert_rows) if alerts else "<p>No rule fired.</p>")
    )
    blocks: list[Any] = [Div(text=head, width=1060)]
    clients = list(result["clients"])
    top = max(0.5, 2 * float(conf.psi_feature))
    blocks.append(Div(text="<h2>Drift heat maps</h2>", width=1060))
    blocks += [_heat_map(result["drift"], c, top) for c in clients]
    blocks.append(Div(text="<h2>Score distributions against the reference</h2>", width=1060))
    blocks += [_score_figure(result["drift"], reference, c) for c in clients]
    blocks.append(Div(text="<h2>Performance as labels mature</h2>", width=1060))
    blocks.append(_performance_figure(result["performance"], result["freq"]))
    perf_cols = ["client", "period", "rows", "labelled", "pending_share", "mature",
                 "frauds_known", "average_precision", "expected_ap", "recall_at_fpr",
                 "precision_at_budget", "recall_at_budget", "fraud_value_caught"]  # fmt: skip
    blocks.append(
        Div(
            text="<h3>Performance table (pending share: rows whose label is not known by the "
            "report date)</h3>"
            + html_table(
                [{c: r.get(c) for c in perf_cols} for r in result["performance"]]
            ),  # fmt: skip
            width=1060,
        )
    )
    blocks.append(Div(text="<h2>Alert rate over time</h2>", width=1060))
    blocks.append(
        _rate_figure(
            result["alert_rate"],
            float(conf.alert_rate_low),
            float(conf.alert_rate_high),
            result["freq"],
        )
    )
    rate_cols = ["client", "period", "threshold_name", "threshold", "rows", "alerts",
                 "alert_rate", "expected", "ratio", "p_value"]  # fmt: skip
    blocks.append(
        Div(
            text="<h3>Alert rates</h3>"
            + html_table([{c: r.get(c) for c in rate_cols} for r in result["alert_rate"]]),
            width=1060,
        )
    )
    out = Path(run_dir) / "monitor.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(file_html(column(*blocks), INLINE, title), encoding="utf-8")
    log.info("monitor report: %s", out)
    return out
