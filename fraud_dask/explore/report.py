"""``explore.html``: emerging-risk segments and the champion's misses, readable offline."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fraud_dask.report import PALETTE, html_table

log = logging.getLogger(__name__)

EMERGING_COLUMNS = [
    "column",
    "value",
    "n_base",
    "frauds_base",
    "n_recent",
    "frauds_recent",
    "expected_recent",
    "lift",
    "excess_value",
    "p",
    "q",
    "significant",
]
MISSES_COLUMNS = [
    "column",
    "value",
    "rows",
    "frauds",
    "caught",
    "recall",
    "fraud_value",
    "missed_value",
    "value_recall",
]


def _bars(rows: Sequence[Mapping[str, Any]], value: str, title: str, axis: str, colour: Any) -> Any:
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool
    from bokeh.plotting import figure

    labels = [f"{r['column']}={r['value']}" for r in rows][::-1]
    values = [float(r[value]) for r in rows][::-1]
    colours = [colour(r) for r in rows][::-1]
    fig = figure(
        title=title,
        y_range=FactorRange(factors=labels or ["(none)"]),
        x_axis_label=axis,
        width=1000,
        height=max(160, 24 * len(labels) + 60),
    )
    source = ColumnDataSource({"label": labels, "value": values, "colour": colours})
    fig.hbar(y="label", right="value", height=0.7, color="colour", source=source)
    fig.add_tools(HoverTool(tooltips=[("segment", "@label"), (axis, "@value")]))
    return fig


def write_explore_report(
    run_dir: str | Path,
    emerging: Sequence[Mapping[str, Any]],
    misses: Sequence[Mapping[str, Any]] | None,
    *,
    notes: Sequence[str] = (),
    fdr: float = 0.05,
) -> Path:
    """Write ``<run_dir>/explore.html``.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    emerging : sequence of dict
        Ranked segments (rows of :func:`fraud_dask.explore.stats.emerging`).
    misses : sequence of dict or None
        Segments by missed fraud value (rows of :func:`fraud_dask.explore.stats.misses`);
        None: not computed (a note says why).
    notes : sequence of str
        Lines under the title (windows, source, model).
    fdr : float
        The false-discovery rate the ``significant`` flags used.

    Returns
    -------
    pathlib.Path
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    style = (
        "<style>table.metrics{border-collapse:collapse;font:13px sans-serif}"
        "table.metrics td,table.metrics th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}</style>"
    )
    intro = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    n_sig = sum(bool(r["significant"]) for r in emerging)
    blocks: list[Any] = [
        Div(
            text=f"{style}<h1>Emerging risk</h1>{intro}"
            f"<h2>Segments whose fraud rose ({n_sig} significant at FDR {fdr:g})</h2>"
            + html_table([{c: r.get(c) for c in EMERGING_COLUMNS} for r in emerging]),
            width=1060,
        )
    ]
    if emerging:
        blocks.append(
            _bars(
                emerging,
                "strength",
                "Strength of the rise: -log10 p (significant segments in red)",
                "-log10 p",
                lambda r: PALETTE[3] if r["significant"] else PALETTE[7],
            )
        )
    if misses is None:
        blocks.append(Div(text="<h2>Where the model misses</h2><p>not computed</p>", width=1060))
    else:
        blocks.append(
            Div(
                text="<h2>Where the model misses the most fraud value</h2>"
                + html_table([{c: r.get(c) for c in MISSES_COLUMNS} for r in misses]),
                width=1060,
            )
        )
        if misses:
            blocks.append(
                _bars(misses, "missed_value", "Fraud value missed", "amount", lambda r: PALETTE[0])
            )
    out = Path(run_dir) / "explore.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(file_html(column(*blocks), INLINE, "fraud_dask emerging risk"), "utf-8")
    log.info("explore report: %s", out)
    return out


def strength(log_p: float) -> float:
    """``-log10 p`` from the natural log of p (finite for p = 0 in floats)."""
    return -log_p / math.log(10.0)
