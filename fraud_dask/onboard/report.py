"""The onboarding report: ``onboard.html`` for the client, and a few lines for the console.

:func:`write_onboard_report` writes one self-contained page (BokehJS and its styles inlined, as
``fraud_dask.report`` does, so it opens offline): a summary with the warnings first, the data
profile of :func:`fraud_dask.onboard.profile.profile_source` (tables and Bokeh plots: rows per
day, fraud rate per month, amount distribution), the quarantine with redacted examples, the split
chosen and why, the features skipped and why, and the evaluation. Text and tables are plain HTML
(readable, searchable and printable without scripts); only the plots need JavaScript.
"""

from __future__ import annotations

import html
import json
import logging
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fraud_dask.report import PALETTE, html_table

log = logging.getLogger(__name__)

_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;
background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{margin:0 0 4px;font-size:26px}
h2{margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid #1f77b4;font-size:20px}
h3{margin:22px 0 8px;font-size:16px}
h4{margin:14px 0 6px;font-size:14px;color:#444}
.sub{color:#666;margin:0 0 16px}
.warnings{border:1px solid #e0a800;border-left:6px solid #e0a800;background:#fff8e1;
padding:10px 16px;margin:16px 0;border-radius:4px}
.warnings h2{border:none;margin:0 0 6px;padding:0;font-size:16px;color:#8a6100}
.warnings ul{margin:0;padding-left:20px}
.ok{border-left:6px solid #2ca02c;background:#eef8ee;padding:8px 16px;margin:16px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{flex:1 1 150px;border:1px solid #ddd;border-radius:6px;padding:8px 12px;background:#fafbfc}
.card .v{font-size:20px;font-weight:600}
.card .k{color:#666;font-size:12px}
table.metrics{border-collapse:collapse;font:13px sans-serif;margin:6px 0 12px}
table.metrics td,table.metrics th{border:1px solid #ccc;padding:3px 8px;text-align:right}
table.metrics th{background:#f0f2f5}
table.metrics td:first-child,table.metrics th:first-child{text-align:left}
.scroll{max-width:100%;overflow-x:auto}
.scroll td{white-space:nowrap}
.side{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.plot{margin:8px 0 16px}
code{background:#f0f2f5;padding:0 3px;border-radius:3px}
details summary{cursor:pointer;font-weight:600;color:#444;margin:8px 0}
details summary{cursor:pointer;font-weight:600;color:#444;margin:8px 0}
"""


# -- small formatting helpers ------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"  # type: ignore[arg-type]


def _pct(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f}%"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | numbers.Number)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``html_table`` with the union of the rows' keys as columns, scrolling when wide."""
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    rows = [{k: _cell(v) for k, v in r.items()} for r in rows]
    return f'<div class="scroll">{html_table(list(rows), list(columns))}</div>'


def _cell(value: Any) -> Any:
    return value if _is_scalar(value) else json.dumps(value, default=str)


def _items(values: Sequence[Any]) -> str:
    if not values:
        return "<p>(none)</p>"
    return "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in values) + "</ul>"


def _index_name(key: str) -> str:
    return key[4:] if key.startswith("per_") else "key"


def generic_html(value: Any, key: str = "") -> str:
    """Render a value of plain data as HTML tables (what the evaluation and split pass in).

    A mapping of mappings becomes a table with one row per key (the first column named after
    ``key`` without its ``per_`` prefix), a mapping of scalars a two-column table, a list of
    mappings a table, a list of scalars a bullet list, anything else its text.
    """
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            name = _index_name(key)
            return _table([{name: k, **v} for k, v in value.items()])
        return _table([{"name": k, "value": v} for k, v in value.items()])
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, Mapping) for v in value):
            return _table(value)
        return _items(value)
    return f"<p>{_e(value)}</p>"


# -- plots (Bokeh, drawn by the inlined BokehJS) ---------------------------------------------
def _days_figure(per_day: Sequence[Mapping[str, Any]]) -> Any:
    import pandas as pd
    from bokeh.models import (
        BasicTicker,
        ColumnDataSource,
        DataRange1d,
        HoverTool,
        LinearAxis,
        Range1d,
    )
    from bokeh.plotting import figure

    days = [pd.Timestamp(d["day"]) for d in per_day]
    rows = [d["rows"] for d in per_day]
    frauds = [d["frauds"] for d in per_day]
    src = ColumnDataSource({"day": days, "rows": rows, "frauds": frauds})
    with_fraud = [i for i, f in enumerate(frauds) if f]  # zero-fraud days would hide the bars
    fraud_src = ColumnDataSource(
        {"day": [days[i] for i in with_fraud], "frauds": [frauds[i] for i in with_fraud]}
    )
    fig = figure(
        y_range=DataRange1d(start=0),
        title="Kept rows per day (bars) and frauds per day (red, right axis)",
        x_axis_type="datetime",
        width=1040,
        height=300,
        y_axis_label="rows",
        tools="pan,xwheel_zoom,box_zoom,reset,save",
    )
    fig.vbar(x="day", top="rows", width=86_400_000 * 0.8, source=src, color=PALETTE[0], alpha=0.7)
    fig.extra_y_ranges = {"frauds": Range1d(start=0, end=max([*frauds, 1]) * 1.15)}
    fig.add_layout(
        LinearAxis(y_range_name="frauds", axis_label="frauds", ticker=BasicTicker(min_interval=1)),
        "right",
    )
    fig.scatter(
        x="day", y="frauds", source=fraud_src, y_range_name="frauds", color=PALETTE[3], size=6
    )
    fig.add_tools(
        HoverTool(
            tooltips=[("day", "@day{%F}"), ("rows", "@rows"), ("frauds", "@frauds")],
            formatters={"@day": "datetime"},
        )
    )
    return fig


def _months_figure(per_month: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool
    from bokeh.plotting import figure

    months = [m["month"] for m in per_month]
    src = ColumnDataSource(
        {
            "month": months,
            "rate": [100 * (m["rate"] or 0.0) for m in per_month],
            "rows": [m["rows"] for m in per_month],
            "frauds": [m["frauds"] or 0 for m in per_month],
        }
    )
    fig = figure(
        y_range=DataRange1d(start=0),
        title="Fraud rate per month (% of kept rows)",
        x_range=FactorRange(factors=months or ["(none)"]),
        width=510,
        height=320,
        y_axis_label="fraud rate (%)",
        tools="save",
    )
    fig.vbar(x="month", top="rate", width=0.7, source=src, color=PALETTE[3], alpha=0.8)
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("month", "@month"),
                ("rate", "@rate{0.00}%"),
                ("frauds", "@frauds"),
                ("rows", "@rows"),
            ]
        )
    )
    return fig


def _amount_figure(histogram: Mapping[str, Any]) -> Any:
    from bokeh.models import DataRange1d
    from bokeh.plotting import figure

    edges = histogram["edges"]
    fig = figure(
        y_range=DataRange1d(start=0),
        title="Amount distribution (share of each class per bin, log scale)",
        x_axis_type="log",
        width=510,
        height=320,
        x_axis_label="amount",
        y_axis_label="share of the class",
        tools="save",
    )
    colours = {"genuine": PALETTE[0], "fraud": PALETTE[3], "all": PALETTE[0]}
    for name, counts in histogram["counts"].items():
        total = sum(counts) + histogram["zero"].get(name, 0)
        share = [c / total if total else 0.0 for c in counts]
        fig.quad(
            top=share,
            bottom=0,
            left=edges[:-1],
            right=edges[1:],
            fill_color=colours.get(name, PALETTE[2]),
            fill_alpha=0.45,
            line_color=colours.get(name, PALETTE[2]),
            legend_label=name,
        )
    if fig.legend:
        fig.legend.location = "top_left"
    return fig


# -- sections ------------------------------------------------------------------------------
def _cards(pairs: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>'
            for k, v in pairs
        )
        + "</div>"
    )


def _summary(profile: Mapping[str, Any]) -> str:
    rows, t, fraud = profile["rows"], profile["time"], profile["fraud"]
    span = "–"
    if t["first_ts"]:
        span = f"{t['first_ts'][:10]} → {t['last_ts'][:10]} ({t['span_days']:.1f} days)"
    cards = [
        ("rows in", _num(rows["in"])),
        ("rows kept", _num(rows["kept"])),
        ("quarantined", f"{_num(rows['quarantined'])} ({_pct(rows['quarantined_share'])})"),
        ("fraud rate", _pct(fraud["rate"]) if fraud["labelled"] else "no labels"),
        ("frauds", _num(fraud["frauds"])),
        ("days of data", f"{t['span_days']:.0f}" if t["span_days"] is not None else "–"),
    ]
    src = profile["source"]
    facts = [
        {"fact": "source", "value": f"{src['name']} ({src['format']})"},
        {"fact": "path", "value": src["path"]},
        {"fact": "files", "value": _num(profile["files"]["count"])},
        {"fact": "time span (UTC)", "value": span},
        {"fact": "amount, total", "value": _num(fraud["amount"])},
        {"fact": "fraud amount", "value": _num(fraud["fraud_amount"])},
        {"fact": "duplicate tx_id rows", "value": _num(profile["duplicates"]["rows"])},
        {
            "fact": "card numbers tokenized",
            "value": _num(profile["card_numbers"]["values_tokenized"]),
        },
    ]
    return "<h2>Summary</h2>" + _cards(cards) + _table(facts)


def _warnings(lines: Sequence[str]) -> str:
    if not lines:
        return '<div class="ok">No warnings.</div>'
    return f'<div class="warnings"><h2>Warnings ({len(lines)})</h2>{_items(lines)}</div>'


def _profile_section(profile: Mapping[str, Any], divs: Mapping[str, str]) -> str:
    out = ["<h2>Data profile</h2>"]
    out.append("<h3>Rows per day</h3>" + f'<div class="plot">{divs["days"]}</div>')
    weeks = profile["rows_per_week"]
    week_rows = [
        {"week": w["week"], "rows": _num(w["rows"]), "frauds": _num(w["frauds"])} for w in weeks
    ]
    out.append(
        f"<details><summary>Rows per week ({len(weeks)} weeks, starting on Monday)</summary>"
        f"{_table(week_rows)}</details>"
    )
    out.append("<h3>Fraud by month</h3>")
    months = [
        {
            "month": m["month"],
            "rows": _num(m["rows"]),
            "frauds": _num(m["frauds"]),
            "fraud rate": _pct(m["rate"]),
            "amount": _num(m["amount"]),
            "fraud amount": _num(m["fraud_amount"]),
        }
        for m in profile["fraud_by_month"]
    ]
    out.append(f'<div class="side"><div class="plot">{divs["months"]}</div>{_table(months)}</div>')
    amount = profile["amount"]
    out.append("<h3>Amount distribution</h3>")
    classes = [c for c in ("all", "fraud", "genuine") if c in amount]
    quantile_keys = list(amount["all"]["quantiles"])
    qrows = [
        {"": "rows", **{c: _num(amount[c]["count"]) for c in classes}},
        {"": "mean", **{c: _num(amount[c]["mean"]) for c in classes}},
    ]
    for q in quantile_keys:
        qrows.append({"": q, **{c: _num(amount[c]["quantiles"].get(q)) for c in classes}})
    out.append(f'<div class="side"><div class="plot">{divs["amounts"]}</div>{_table(qrows)}</div>')

    out.append("<h3>Label delay</h3>")
    delay = profile["label_delay"]
    out.append(f"<p>{_e(delay['note'])}.</p>")
    if delay.get("quantiles"):
        out.append(
            _table(
                [{"": "frauds", "days": _num(delay["frauds"])}]
                + [{"": q, "days": _num(v)} for q, v in delay["quantiles"].items()]
            )
        )

    cols = profile["columns"]
    out.append("<h3>Columns</h3>")
    nulls, distinct = profile["null_rates"], profile["distinct"]
    raw_of = {canon: raw for raw, canon in cols["mapped"].items()}
    crow = [
        {
            "column": c,
            "raw column": raw_of.get(c, "(derived)"),
            "null rate": _pct(nulls.get(c)),
            "distinct values": _num(distinct.get(c)),
        }
        for c in cols["kept"]
    ]
    out.append(_table(crow))
    if cols["unmapped"]:
        out.append(
            "<p>Raw columns not mapped (not read): "
            + ", ".join(f"<code>{_e(c)}</code>" for c in cols["unmapped"])
            + "</p>"
        )
    if cols["not_found"]:
        out.append(
            "<p>Mapped columns found in no file: "
            + ", ".join(f"<code>{_e(c)}</code>" for c in cols["not_found"])
            + "</p>"
        )
    if cols["missing_in_files"]:
        out.append(
            "<h4>Columns missing in some files</h4>" + generic_html(cols["missing_in_files"])
        )

    cards = profile["card_numbers"]
    out.append("<h3>Card numbers</h3>")
    scanned = ", ".join(f"<code>{_e(c)}</code>" for c in cards["scanned"]) or "(none)"
    if cards["values_tokenized"]:
        out.append(
            f"<p>Raw card numbers were found and replaced by keyed-hash tokens at ingest (columns "
            f"scanned: {scanned}). No card number is shown in this report.</p>"
            + _table(
                [
                    {"raw column": c, "values tokenized": _num(n)}
                    for c, n in cards["columns"].items()
                ]
            )
        )
    else:
        out.append(f"<p>No card number found in the columns scanned: {scanned}.</p>")

    files = profile["files"]
    listed = [{"file": f["path"], "rows": _num(f["rows"])} for f in files["listed"]]
    more = files["count"] - len(listed)
    out.append(
        f"<h3>Files</h3><details><summary>{_num(files['count'])} file(s)</summary>"
        + _table(listed)
        + (f"<p>… and {_num(more)} more.</p>" if more > 0 else "")
        + "</details>"
    )
    return "".join(out)


def _quarantine_section(profile: Mapping[str, Any]) -> str:
    q = profile["quarantine"]
    out = ["<h2>Quarantine</h2>"]
    if not q["by_reason"]:
        return out[0] + "<p>No row was quarantined.</p>"
    n_in = profile["rows"]["in"]
    out.append(
        _table(
            [
                {"reason": r, "rows": _num(n), "share of rows in": _pct(n / n_in if n_in else None)}
                for r, n in q["by_reason"].items()
            ]
        )
    )
    out.append(
        "<p>Examples (first rows in file order). IDs and personal data are masked to their "
        "last four characters.</p>"
    )
    for reason, rows in q["examples"].items():
        out.append(f"<h4>{_e(reason)}</h4>" + _table(_example_cells(rows)))
    return "".join(out)


def _example_cells(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Example rows as shown: where and why first, then the row; the reason (the heading) and
    columns null in every row left out; timestamps shortened."""
    where = ["source_file", "source_row", "detail"]
    names = dict.fromkeys([*where, *(k for r in rows for k in r)])
    shown = [c for c in names if c != "reason" and any(r.get(c) is not None for r in rows)]
    out = []
    for r in rows:
        cells = {}
        for c in shown:
            v = r.get(c)
            if isinstance(v, str) and _ISO.fullmatch(v):
                v = v[:19].replace("T", " ")
            elif isinstance(v, float):
                v = _num(v)
            cells[c] = v
        out.append(cells)
    return out


def _split_section(split: Mapping[str, Any] | None) -> str:
    out = ["<h2>Split</h2>"]
    if not split:
        return out[0] + "<p>(not given)</p>"
    if split.get("reasons"):
        out.append("<h4>Why</h4>" + _items(split["reasons"]))
    if split.get("folds"):
        out.append("<h4>Folds</h4>" + generic_html(list(split["folds"])))
    for key, value in split.items():
        if key not in ("folds", "reasons"):
            out.append(f"<h4>{_e(key)}</h4>" + generic_html(value, key))
    return "".join(out)


def _evaluation_section(evaluation: Mapping[str, Any] | None) -> str:
    out = ["<h2>Evaluation</h2>"]
    if not evaluation:
        return out[0] + "<p>(not given)</p>"
    models, notes = _models(evaluation)
    if notes:
        out.append(_items(notes))
    metrics: dict[str, None] = {}
    for m in models.values():
        metrics.update({k: None for k, v in m.items() if _is_scalar(v)})
    if metrics:
        out.append("<h3>Models compared</h3>")
        out.append(
            _table(
                [{"metric": k, **{name: m.get(k) for name, m in models.items()}} for k in metrics]
            )
        )
    for name, m in models.items():
        nested = {k: v for k, v in m.items() if not _is_scalar(v)}
        if nested:
            out.append(f"<h3>{_e(name)}</h3>")
        for key, value in nested.items():
            out.append(f"<h4>{_e(key)}</h4>" + generic_html(value, key))
    return "".join(out)


def _models(evaluation: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    if "models" in evaluation:
        return dict(evaluation["models"]), list(evaluation.get("notes") or [])
    models = {k: v for k, v in evaluation.items() if isinstance(v, Mapping)}
    return models, list(evaluation.get("notes") or [])


def _all_warnings(profile: Mapping[str, Any], warnings: Sequence[str] | None) -> list[str]:
    return list(dict.fromkeys([*(warnings or []), *profile.get("warnings", [])]))


# -- public ------------------------------------------------------------------------------
def write_onboard_report(
    run_dir: str | Path,
    *,
    profile: Mapping[str, Any],
    split: Mapping[str, Any] | None = None,
    skipped_features: Sequence[str] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    warnings: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write ``<run_dir>/onboard.html``, a self-contained page (no network needed to read it).

    Parameters
    ----------
    run_dir : str or Path
        The run directory (created if missing).
    profile : dict
        Output of :func:`fraud_dask.onboard.profile.profile_source`.
    split : dict, optional
        The split chosen and why: ``folds``, a list of dicts (e.g. ``name``, ``train_start``,
        ``train_end``, ``test_start``, ``test_end``, ``rows``, ``frauds``; any keys are shown),
        and ``reasons``, a list of sentences. Other keys are rendered as tables or lists.
    skipped_features : list of str, optional
        Features left out and why, one sentence each.
    evaluation : dict, optional
        ``{"models": {name: metrics, ...}, "notes": [str, ...]}`` (or the ``models`` mapping
        alone), with e.g. ``client`` and ``champion`` as names. In each model's metrics, numbers
        and strings (``average_precision``, ``recall_at_1pct_fpr``, ``fraud_value_caught``...)
        go into one table comparing the models; every other value becomes its own table under
        the model: a mapping of mappings (``per_month``: ``{"2024-03": {"rows": .., "frauds":
        .., "average_precision": ..}}``, ``per_fold`` likewise) one row per key, a list of
        mappings (``alert_budgets``: ``[{"budget", "precision", "recall"}]``) one row per item,
        a mapping of numbers a two-column table.
    warnings : list of str, optional
        Shown first, in a box, before the profile's own warnings (duplicates dropped).
    title : str, optional
        Page title; default ``Onboarding: <source name>``.

    Returns
    -------
    pathlib.Path
        The page's path.
    """
    from bokeh.embed import components
    from bokeh.resources import INLINE

    title = title or f"Onboarding: {profile['source']['name']}"
    figures = {
        "days": _days_figure(profile["rows_per_day"]),
        "months": _months_figure(profile["fraud_by_month"]),
        "amounts": _amount_figure(profile["amount"]["histogram"]),
    }
    script, divs = components(figures)
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Source <b>{_e(profile["source"]["name"])}</b>: '
        f"{_num(profile['rows']['in'])} rows in {_num(profile['files']['count'])} file(s).</p>",
        _warnings(_all_warnings(profile, warnings)),
        _summary(profile),
        # what the client will get first, then how it was measured, then the data behind it
        _evaluation_section(evaluation),
        _split_section(split),
        "<h2>Features skipped</h2>" + _items(list(skipped_features or [])),
        _profile_section(profile, divs),
        _quarantine_section(profile),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style>"
        f"{INLINE.render()}{script}</head><body><main>{''.join(body)}</main></body></html>\n"
    )
    out = Path(run_dir) / "onboard.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    log.info("onboarding report: %s", out)
    return out


def console_summary(
    profile: Mapping[str, Any],
    *,
    split: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    warnings: Sequence[str] | None = None,
    report_path: str | Path | None = None,
) -> str:
    """A few lines for the console: the source in numbers, the split, the models, the warnings.

    Parameters
    ----------
    profile : dict
        Output of :func:`fraud_dask.onboard.profile.profile_source`.
    split, evaluation, warnings :
        As for :func:`write_onboard_report`.
    report_path : str or Path, optional
        Named on the last line.

    Returns
    -------
    str
    """
    rows, t, fraud = profile["rows"], profile["time"], profile["fraud"]
    src = profile["source"]
    lines = [
        f"onboard {src['name']} ({src['path']}): {rows['in']:,} rows in "
        f"{profile['files']['count']:,} file(s), {rows['kept']:,} kept, "
        f"{rows['quarantined']:,} quarantined ({_pct(rows['quarantined_share'])})"
    ]
    if t["first_ts"]:
        lines.append(
            f"  span {t['first_ts'][:10]} -> {t['last_ts'][:10]} ({t['span_days']:.1f} days)"
        )
    if fraud["labelled"]:
        lines.append(
            f"  fraud rate {_pct(fraud['rate'])} ({fraud['frauds']:,} frauds, "
            f"fraud amount {_num(fraud['fraud_amount'])})"
        )
    delay = profile["label_delay"]
    if delay.get("quantiles"):
        q = delay["quantiles"]
        lines.append(
            f"  label delay of frauds: median {q['p50']:.1f} days, p95 {q['p95']:.1f} days"
        )
    else:
        lines.append(f"  label delay: {delay['note']}")
    if split and split.get("folds"):
        folds = split["folds"]
        names = ", ".join(str(f.get("name", i)) for i, f in enumerate(folds))
        lines.append(f"  split: {len(folds)} fold(s): {names}")
    if evaluation:
        models, _ = _models(evaluation)
        for name, m in models.items():
            shown = [
                f"{k} {_num(v, 4)}"
                for k, v in m.items()
                if isinstance(v, numbers.Number) and not isinstance(v, bool)
            ][:4]
            lines.append(f"  {name}: " + ", ".join(shown))
    notes = _all_warnings(profile, warnings)
    if notes:
        lines.append(f"warnings ({len(notes)}):")
        lines += [f"  - {w}" for w in notes]
    if report_path is not None:
        lines.append(f"report: {report_path}")
    return "\n".join(lines)
