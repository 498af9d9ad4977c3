"""``tune.html``: the study's trials as a table and plots, one self-contained file.

The page holds a summary (study, storage, best value and parameters, the experiment written),
the best trial's validation folds, the screening decisions when screening ran (what was dropped
and why), the history of values with the best so far, each trial's intermediate values (the
pruned ones in red), the value against each numeric parameter, and every trial in a table. The
bokeh JavaScript is inlined (:data:`bokeh.resources.INLINE`): the file opens offline.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fraud_dask.report import PALETTE, html_table

log = logging.getLogger(__name__)


def _history(trials: Sequence[Mapping[str, Any]], metric: str) -> Any:
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    fig = figure(
        title=f"Mean validation {metric} by trial",
        x_axis_label="trial",
        y_axis_label=metric,
        width=520,
        height=360,
    )
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if done:
        fig.scatter(
            source=ColumnDataSource(
                {"x": [t["number"] for t in done], "y": [t["value"] for t in done]}
            ),
            x="x",
            y="y",
            size=7,
            color=PALETTE[0],
            legend_label="complete",
        )
        best, xs, ys = float("-inf"), [], []
        for t in sorted(done, key=lambda t: t["number"]):
            best = max(best, t["value"])
            xs.append(t["number"])
            ys.append(best)
        fig.step(xs, ys, mode="after", color=PALETTE[1], legend_label="best so far")
        fig.legend.location = "bottom_right"
    return fig


def _intermediate(trials: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.plotting import figure

    fig = figure(
        title="Intermediate values (pruned trials in red)",
        x_axis_label="step (fold x rounds + round)",
        y_axis_label="value reported to the pruner",
        width=520,
        height=360,
    )
    for t in trials:
        steps = sorted(t["intermediate"])
        if not steps:
            continue
        pruned = t["state"] == "PRUNED"
        fig.line(
            steps,
            [t["intermediate"][s] for s in steps],
            color=PALETTE[3] if pruned else PALETTE[0],
            alpha=0.8 if pruned else 0.35,
        )
    return fig


def _by_param(trials: Sequence[Mapping[str, Any]], metric: str) -> list[Any]:
    from bokeh.plotting import figure

    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    names = sorted({p for t in done for p, v in t["params"].items() if _number(v)})
    figs = []
    for name in names:
        pts = [(t["params"][name], t["value"]) for t in done if _number(t["params"].get(name))]
        fig = figure(title=name, x_axis_label=name, y_axis_label=metric, width=340, height=280)
        fig.scatter([p[0] for p in pts], [p[1] for p in pts], size=6, color=PALETTE[2])
        figs.append(fig)
    return figs


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rows(trials: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The trials table: complete trials best first, then the others (a pruned trial's value is
    its last report, taken on part of the folds, so it never ranks among complete ones)."""
    ordered = sorted(
        trials,
        key=lambda t: (
            t["state"] != "COMPLETE",
            t["value"] is None,
            -(t["value"] or 0.0),
            t["number"],
        ),
    )
    out = []
    for t in ordered:
        pruned = t.get("pruned_at") or {}
        out.append(
            {
                "trial": t["number"],
                "state": t["state"],
                "value": t["value"],
                **{f"{k}": v for k, v in sorted(t["params"].items())},
                "pruned at": (
                    f"{pruned.get('fold')} round {pruned.get('round')}" if pruned else ""
                ),
                "seconds": t["seconds"],
            }
        )
    return out


def write_tune_report(
    run_dir: str | Path,
    summary: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    screen: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<run_dir>/tune.html``.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (created if missing).
    summary : mapping
        Key facts shown first (study, storage, trials, best value, best parameters, ...).
    trials : sequence of dict
        :func:`fraud_dask.tune.study.trials_table`.
    metric : str
        The tuned metric.
    screen : mapping, optional
        :func:`fraud_dask.tune.screen.screen_features`' result.

    Returns
    -------
    pathlib.Path
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    style = (
        "<style>table.metrics{border-collapse:collapse;font:13px sans-serif}"
        "table.metrics td,table.metrics th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}</style>"
    )
    facts = [{"what": k, "value": _text(v)} for k, v in summary.items()]
    best = next(
        (
            t
            for t in sorted(trials, key=lambda t: -(t["value"] or float("-inf")))
            if t["state"] == "COMPLETE"
        ),
        None,
    )
    parts = [f"{style}<h1>fraud_dask tuning</h1><h2>Summary</h2>" + html_table(facts)]
    if best is not None and best.get("per_fold"):
        parts.append(
            f"<h2>Best trial ({best['number']}): validation folds</h2>"
            + html_table(list(best["per_fold"]))
        )
    if screen:
        parts.append(
            "<h2>Feature screening</h2><p>"
            + html.escape(str(screen.get("rule", "")))
            + "</p>"
            + html_table(list(screen.get("table", [])))
        )
    blocks: list[Any] = [Div(text="".join(parts), width=1060)]
    blocks.append(row(_history(trials, metric), _intermediate(trials)))
    by_param = _by_param(trials, metric)
    for i in range(0, len(by_param), 3):
        blocks.append(row(*by_param[i : i + 3]))
    blocks.append(Div(text="<h2>Trials</h2>" + html_table(_rows(trials)), width=1060))
    out = Path(run_dir) / "tune.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(file_html(column(*blocks), INLINE, "fraud_dask tuning"), encoding="utf-8")
    log.info("tune report: %s", out)
    return out


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)
