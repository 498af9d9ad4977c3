"""The data profile of an onboarded source: what came in, what was kept, what it looks like.

:func:`profile_source` takes an opened source (:func:`fraud_dask.data.load.open_source`) and its
lazy frames (``Source.frames(dedupe=True)``) and computes every figure in one ``dask.compute``:
small per-partition summaries (pure pandas functions of one partition, combined on the cluster)
rather than one pass per question. Everything it returns is plain JSON (the task writes it to
``metrics.json``) and holds no card number: IDs in the quarantine examples are masked and any
13-19 digit card number in them is cut to its last four digits.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.data.pan import PAN_PATTERN, PanHasher, luhn_valid
from fraud_dask.data.schema import REASONS, STRING_DTYPE

QUANTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)
"""Percentiles reported for amounts and label delays (keys ``p0`` ... ``p100``)."""

ENTITY_COLUMNS = (
    "card_id",
    "merchant_id",
    "terminal_id",
    "customer_id",
    "device_id",
    "account_id",
    "ip",
    "email",
    "phone",
    "client_id",
)
"""Canonical entity columns whose distinct values are counted when present."""

MASKED_COLUMNS = ("card_id", "customer_id", "device_id", "account_id", "ip", "email", "phone")
"""Columns masked in quarantine examples (with the source's ``pii_columns``)."""

AMOUNT_DECIMALS = 2
"""Amount quantiles are exact on amounts rounded to this many decimals (cents): the cluster
counts rows per distinct rounded amount, a table that stays small however many rows there are."""

HISTOGRAM_BINS = 30
_FILES_LISTED = 100
_NS_PER_DAY = 86_400 * 10**9


# -- per-partition summaries (pure pandas; each is also its own meta on an empty frame) -------
def _labels(pdf: pd.DataFrame) -> pd.Series:
    if "is_fraud" in pdf.columns:
        return pdf["is_fraud"].astype("int64")
    return pd.Series(np.zeros(len(pdf), dtype=np.int64), index=pdf.index)


def day_summary(pdf: pd.DataFrame) -> pd.DataFrame:
    """Rows, frauds, amount and fraud amount per UTC day of one partition of kept rows."""
    fraud = _labels(pdf)
    amount = pdf["amount"].astype("float64")
    frame = pd.DataFrame(
        {
            "day": pdf["ts"].dt.floor("D"),
            "rows": np.ones(len(pdf), dtype=np.int64),
            "frauds": fraud,
            "amount": amount,
            "fraud_amount": amount.where(fraud == 1, 0.0),
        },
        index=pdf.index,
    )
    return frame.groupby("day", as_index=False, sort=False).sum()


def amount_counts(pdf: pd.DataFrame) -> pd.DataFrame:
    """Rows per (amount in cents, label) of one partition of kept rows."""
    scale = 10**AMOUNT_DECIMALS
    cents = np.round(pdf["amount"].to_numpy(dtype="float64") * scale).astype(np.int64)
    frame = pd.DataFrame({"cents": cents, "label": _labels(pdf).to_numpy(), "n": np.int64(1)})
    return frame.groupby(["cents", "label"], as_index=False, sort=False)["n"].sum()


def fraud_delays(pdf: pd.DataFrame) -> pd.DataFrame:
    """Frauds per exact label delay (``label_ts - ts``, nanoseconds) of one partition."""
    fraud = _labels(pdf).to_numpy() == 1
    delay = (pdf["label_ts"] - pdf["ts"]).to_numpy()[fraud].astype("timedelta64[ns]")
    frame = pd.DataFrame({"delay_ns": delay.astype(np.int64), "n": np.int64(1)})
    return frame.groupby("delay_ns", as_index=False, sort=False)["n"].sum()


def quarantine_heads(pdf: pd.DataFrame, k: int) -> pd.DataFrame:
    """The first ``k`` quarantined rows of each reason in one partition (file order)."""
    return pdf.groupby("reason", sort=False, observed=True).head(k)


def pan_counts(
    pdf: pd.DataFrame,
    path: str,
    index: Any,
    *,
    columns: Mapping[str, str],
    id_kinds: Mapping[str, str],
    hasher: PanHasher,
    plan: Any = None,
    raw_ts: str | None = None,
) -> pd.DataFrame:
    """Values holding a card number, per raw column, in one partition of raw rows.

    The detection is :meth:`PanHasher.scrub`'s, on the values as ingest sees them (integer IDs
    widened to floats for nulls are cast back first), so the count is what ingest tokenized.
    """
    keep = np.ones(len(pdf), dtype=bool)
    if plan is not None and raw_ts is not None:
        from fraud_dask.data.validate import parse_timestamps

        ts, _, _ = parse_timestamps(pdf[raw_ts], plan)
        if plan.start is not None:
            keep &= ~(ts < plan.start).to_numpy()
        if plan.end is not None:
            keep &= ~(ts >= plan.end).to_numpy()
    counts = {}
    for raw, out in columns.items():
        s = pdf[raw][keep]
        if out in id_kinds:
            if pd.api.types.is_float_dtype(s.dtype):
                s = s.astype("Int64")
            if id_kinds[out] == "str":
                s = s.astype(STRING_DTYPE)
        counts[raw] = [hasher.scrub(s, f"{path}: column {raw!r}")[1] if len(s) else 0]
    return pd.DataFrame(counts, dtype="int64")


# -- redaction ----------------------------------------------------------------------------
def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "***" + digits[-4:] if luhn_valid(digits) else match.group(0)


def redact(value: Any, *, mask: bool = False) -> Any:
    """A JSON value safe to show: masked when ``mask``, card numbers cut to their last 4 digits.

    Parameters
    ----------
    value : object
        A cell of a frame (numbers, strings, timestamps, nulls).
    mask : bool
        Replace the value by ``***`` and its last four characters (only ``***`` when it is
        shorter than eight characters), for IDs and personal data.

    Returns
    -------
    None, bool, int, float or str
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if mask:
        text = str(value)
        return "***" + text[-4:] if len(text) >= 8 else "***"
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        text = str(int(value))
        return int(value) if PAN_PATTERN.fullmatch(text) is None else _redact_text(text)
    if isinstance(value, float | np.floating):
        return float(value)
    return _redact_text(str(value))


def _redact_text(text: str) -> str:
    return PAN_PATTERN.sub(_mask_pan, text)


def _example_rows(
    heads: pd.DataFrame, k: int, files: Sequence[str], root: str, masked: set[str]
) -> dict[str, list[dict[str, Any]]]:
    if heads.empty:
        return {}
    order = {f: i for i, f in enumerate(files)}
    heads = heads.assign(_file=heads["source_file"].map(order))
    heads = heads.sort_values(["_file", "source_row"], kind="stable").drop(columns="_file")
    out: dict[str, list[dict[str, Any]]] = {}
    for reason, rows in heads.groupby("reason", sort=False, observed=True):
        examples = []
        for row in rows.head(k).to_dict(orient="records"):
            shown = {}
            for col, value in row.items():
                if isinstance(value, str) and root:  # file paths relative to the source
                    value = value.replace(root + "/", "")
                shown[col] = redact(value, mask=col in masked and col != "reason")
            examples.append(shown)
        out[str(reason)] = examples
    return {r: out[r] for r in REASONS if r in out}


# -- quantiles from counted values ----------------------------------------------------------
def weighted_quantiles(values: np.ndarray, counts: np.ndarray, percents: Sequence[float]) -> dict:
    """Exact quantiles (numpy's and pandas' default, linear) of values repeated ``counts`` times.

    Parameters
    ----------
    values : numpy.ndarray
        Distinct values, any order.
    counts : numpy.ndarray
        How often each value occurs (positive integers).
    percents : sequence of float
        Percentiles in [0, 100].

    Returns
    -------
    dict
        ``{"p<percent>": value}``; empty when there is no value.
    """
    order = np.argsort(values, kind="stable")
    values = np.asarray(values, dtype="float64")[order]
    cum = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
    n = int(cum[-1]) if len(cum) else 0
    if n == 0:
        return {}
    out = {}
    for p in percents:
        h = (n - 1) * p / 100
        lo, hi = math.floor(h), math.ceil(h)
        a = values[np.searchsorted(cum, lo, side="right")]
        b = values[np.searchsorted(cum, hi, side="right")]
        t = h - lo
        out[f"p{p:g}"] = float(a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t))
    return out


def _amount_stats(table: pd.DataFrame, labelled: bool) -> dict[str, Any]:
    scale = 10**AMOUNT_DECIMALS
    groups = {"all": table}
    if labelled:
        groups["fraud"] = table[table["label"] == 1]
        groups["genuine"] = table[table["label"] == 0]
    stats: dict[str, Any] = {}
    for name, t in groups.items():
        per_value = t.groupby("cents")["n"].sum()
        count = int(per_value.sum())
        total = float((per_value.index.to_numpy() * per_value.to_numpy()).sum() / scale)
        stats[name] = {
            "count": count,
            "mean": total / count if count else None,
            "quantiles": weighted_quantiles(
                per_value.index.to_numpy() / scale, per_value.to_numpy(), QUANTILES
            ),
        }
    positive = table.loc[table["cents"] > 0, "cents"]
    lo = positive.min() / scale if len(positive) else 0.01
    hi = table["cents"].max() / scale if len(table) else 1.0
    edges = np.geomspace(lo, max(hi, lo * 10), HISTOGRAM_BINS + 1)
    hist: dict[str, Any] = {"edges": [float(e) for e in edges], "counts": {}, "zero": {}}
    for name, t in groups.items():
        if name == "all" and labelled:
            continue
        values = t["cents"].to_numpy() / scale
        weights = t["n"].to_numpy()
        counts, _ = np.histogram(values, bins=edges, weights=weights)
        hist["counts"][name] = [int(c) for c in counts]
        hist["zero"][name] = int(weights[values <= 0].sum())
    stats["histogram"] = hist
    return stats


# -- the profile -------------------------------------------------------------------------
def _compute(lazies: dict[str, Any], client: Any) -> dict[str, Any]:
    import dask

    keys = list(lazies)
    if client is not None:
        values = client.compute([lazies[k] for k in keys], sync=True)
    else:
        values = dask.compute(*[lazies[k] for k in keys])
    return dict(zip(keys, values, strict=True))


def _day_table(days: pd.DataFrame) -> pd.DataFrame:
    days = days.reset_index() if "day" not in days.columns else days
    return days.sort_values("day").reset_index(drop=True)


def _rows_per(days: pd.DataFrame, key: pd.Series, name: str) -> list[dict[str, Any]]:
    table = days.groupby(key.rename(name), sort=True)[["rows", "frauds"]].sum().reset_index()
    return [
        {name: str(r[name]), "rows": int(r["rows"]), "frauds": int(r["frauds"])}
        for r in table.to_dict(orient="records")
    ]


def profile_source(
    source: Any,
    frames: Any = None,
    *,
    client: Any = None,
    examples: int = 5,
) -> dict[str, Any]:
    """Profile a source: counts, quarantine, time span, columns, entities, amounts, labels.

    Parameters
    ----------
    source : fraud_dask.data.load.Source
        The opened source (``open_source(cfg.data)``).
    frames : fraud_dask.data.load.Frames, optional
        Its lazy frames; default ``source.frames(dedupe=True)`` (which runs the duplicate pass).
        Pass the frames the task trains on, so that both share the reading.
    client : distributed.Client, optional
        Compute on this client; default: the current one (``dask.compute``).
    examples : int
        Quarantined rows shown per reason (redacted).

    Returns
    -------
    dict
        Plain JSON, with these keys:

        - ``source``: ``name``, ``path``, ``format``;
        - ``rows``: ``in``, ``kept``, ``quarantined``, ``by_reason`` (every reason, zeros
          included), ``quarantined_share``;
        - ``duplicates``: ``rows`` (quarantined as ``duplicate_tx_id``) and ``tx_ids`` (distinct
          repeated IDs among them);
        - ``files``: ``count``, ``rows_in_footers`` (None for CSV), ``listed`` (the first 100,
          ``{"path", "rows"}``, paths relative to the source root);
        - ``time``: ``first_ts``, ``last_ts`` (ISO, UTC), ``span_days``, ``days_with_rows``,
          ``days_without_rows`` (calendar days inside the span without a kept row);
        - ``rows_per_day`` / ``rows_per_week`` (weeks start on Monday): lists of
          ``{"day"|"week", "rows", "frauds"}``;
        - ``columns``: ``mapped`` (raw -> canonical), ``unmapped`` (raw columns of the files that
          no mapping names, so they are not read), ``partition_keys`` (hive folder keys),
          ``not_found`` (mapped raw names in no file), ``missing_in_files`` (raw -> files
          lacking it, when some do), ``kept`` (canonical columns of the kept frame);
        - ``null_rates``: kept column -> share of nulls among kept rows;
        - ``distinct``: entity column -> exact distinct count among kept rows;
        - ``amount``: ``all``/``fraud``/``genuine`` -> ``count``, ``mean``, ``quantiles``
          (``p0`` ... ``p100``, exact on amounts rounded to cents), and ``histogram``
          (``edges``, log-spaced, ``counts`` and ``zero`` per class);
        - ``fraud``: ``labelled`` (bool), ``rows``, ``frauds``, ``rate``, ``amount``,
          ``fraud_amount``;
        - ``fraud_by_month``: ``{"month", "rows", "frauds", "rate", "amount", "fraud_amount"}``
          per UTC month;
        - ``label_delay``: ``source`` (``"data"`` when the source has its own ``label_ts``,
          else ``"filled"``), ``configured_days``, ``note``, and with the source's own
          ``label_ts``: ``frauds`` and ``quantiles`` of ``label_ts - ts`` in days over frauds
          (missing ``label_ts`` values were filled with ``ts`` + the configured delay first);
        - ``card_numbers``: ``scanned`` (raw columns scanned: the card column and
          ``pii_columns``), ``columns`` (raw column -> values tokenized, only those with some),
          ``values_tokenized``;
        - ``quarantine``: ``by_reason`` (reasons with rows) and ``examples`` (reason -> up to
          ``examples`` redacted rows, first in file order);
        - ``warnings``: list of str (see :func:`profile_warnings`).
    """
    from fraud_dask.data import io

    conf = source.conf
    if frames is None:
        frames = source.frames(dedupe=True)
    kept, quarantine = frames.kept, frames.quarantine
    labelled = "is_fraud" in kept.columns
    own_label_ts = "label_ts" in source.mapping.values()

    lazies: dict[str, Any] = {
        "rows_in": frames.rows_in,
        "by_reason": frames.by_reason,
        "days": kept.map_partitions(day_summary, meta=day_summary(kept._meta)).groupby("day").sum(),
        "amounts": kept.map_partitions(amount_counts, meta=amount_counts(kept._meta))
        .groupby(["cents", "label"])["n"]
        .sum(),
        "first_ts": kept["ts"].min(),
        "last_ts": kept["ts"].max(),
        "nulls": kept.isna().sum(),
        "heads": quarantine.map_partitions(
            quarantine_heads, examples, meta=quarantine_heads(quarantine._meta, examples)
        ),
        "dup_ids": quarantine.loc[quarantine["reason"] == "duplicate_tx_id", "tx_id"].nunique(),
    }
    entities = [c for c in ENTITY_COLUMNS if c in kept.columns]
    for col in entities:
        lazies[f"distinct:{col}"] = kept[col].nunique()
    if labelled and own_label_ts:
        lazies["delays"] = (
            kept.map_partitions(fraud_delays, meta=fraud_delays(kept._meta))
            .groupby("delay_ns")["n"]
            .sum()
        )
    plan = source.plan()
    scan = {raw: out for raw, out in source.mapping.items() if out in plan.scan_columns}
    if scan:
        raw_ts = next(raw for raw, out in source.mapping.items() if out == "ts")
        bounded = source.start is not None or source.end is not None
        count = functools.partial(
            pan_counts,
            columns=scan,
            id_kinds=source.id_kinds,
            # a throwaway key: only the count of values scrub() changes is kept
            hasher=PanHasher(secrets.token_hex(16)),
            plan=plan if bounded else None,
            raw_ts=raw_ts if bounded else None,
        )
        lazies["pans"] = io.read_files(
            source.infos,
            fs=source.fs,
            fmt=conf.format.value,
            columns=list(dict.fromkeys([*scan, *([raw_ts] if bounded else [])])),
            filters=source.filters,
            csv_options=dict(conf.csv_options),
            process=count,
            meta=pd.DataFrame({raw: pd.Series([], dtype="int64") for raw in scan}),
            label="onboard-pan-scan",
            rows_per_partition=conf.rows_per_partition,
        ).sum()

    got = _compute(lazies, client)

    rows_in = int(got["rows_in"])
    by_reason = {r: int(got["by_reason"].get(r, 0)) for r in REASONS}
    quarantined = sum(by_reason.values())
    days = _day_table(got["days"])
    n_kept = int(days["rows"].sum())
    frauds = int(days["frauds"].sum())
    total_amount = float(days["amount"].sum())
    fraud_amount = float(days["fraud_amount"].sum())

    first, last = got["first_ts"], got["last_ts"]
    has_rows = n_kept > 0 and not pd.isna(first)
    span_days = (last - first).total_seconds() / 86_400 if has_rows else None
    calendar = (
        (last.floor("D") - first.floor("D")).days + 1 if has_rows else 0
    )  # days from first to last, both included
    week_start = days["day"] - pd.to_timedelta(days["day"].dt.day_of_week, unit="D")
    months = days["day"].dt.strftime("%Y-%m")
    by_month = days.groupby(months.rename("month"), sort=True)[
        ["rows", "frauds", "amount", "fraud_amount"]
    ].sum()

    root = source.root
    all_raw: dict[str, None] = {}
    hive: dict[str, None] = {}
    for info in source.infos:
        all_raw.update(dict.fromkeys(info.schema.names))
        hive.update(dict.fromkeys(info.hive))
    missing_in_files = {}
    for raw in source.mapping:
        lacking = [
            i.path[len(root) + 1 :]
            for i in source.infos
            if raw not in i.schema.names and raw not in i.hive
        ]
        if lacking:
            missing_in_files[raw] = lacking[:10]

    amounts = got["amounts"].reset_index()
    delay_info: dict[str, Any] = {
        "source": "data" if own_label_ts else "filled",
        "configured_days": float(conf.label_delay_days),
    }
    if not own_label_ts:
        delay_info["note"] = (
            f"the source has no label_ts: filled from data.label_delay_days "
            f"({conf.label_delay_days:g} days after ts)"
        )
    elif not labelled:
        delay_info["note"] = "the source has label_ts but no is_fraud: no delay to measure"
    else:
        delays = got["delays"]
        delay_info["note"] = (
            "label_ts - ts of frauds, from the source's label_ts (missing values filled with "
            f"ts + data.label_delay_days = {conf.label_delay_days:g} days)"
        )
        delay_info["frauds"] = int(delays.sum())
        delay_info["quantiles"] = weighted_quantiles(
            delays.index.to_numpy() / _NS_PER_DAY, delays.to_numpy(), QUANTILES
        )

    pans = got["pans"] if scan else {}
    pan_columns = {raw: int(pans[raw]) for raw in scan if int(pans[raw])}
    masked = set(MASKED_COLUMNS) | {conf.columns.get(c, c) for c in conf.pii_columns}
    profile: dict[str, Any] = {
        "source": {"name": conf.name, "path": str(conf.path), "format": conf.format.value},
        "rows": {
            "in": rows_in,
            "kept": n_kept,
            "quarantined": quarantined,
            "by_reason": by_reason,
            "quarantined_share": quarantined / rows_in if rows_in else None,
        },
        "duplicates": {"rows": by_reason["duplicate_tx_id"], "tx_ids": int(got["dup_ids"])},
        "files": {
            "count": len(source.files),
            "rows_in_footers": source.rows_in_files(),
            "listed": [
                {"path": i.path[len(root) + 1 :] or i.path, "rows": i.num_rows}
                for i in source.infos[:_FILES_LISTED]
            ],
        },
        "time": {
            "first_ts": first.isoformat() if has_rows else None,
            "last_ts": last.isoformat() if has_rows else None,
            "span_days": span_days,
            "days_with_rows": len(days),
            "days_without_rows": calendar - len(days),
        },
        "rows_per_day": [
            {"day": d.strftime("%Y-%m-%d"), "rows": int(r), "frauds": int(f)}
            for d, r, f in zip(days["day"], days["rows"], days["frauds"], strict=True)
        ],
        "rows_per_week": _rows_per(days, week_start.dt.strftime("%Y-%m-%d"), "week"),
        "columns": {
            "mapped": dict(source.mapping),
            "unmapped": [c for c in all_raw if c not in source.mapping and c not in hive],
            "partition_keys": list(hive),
            "not_found": [c for c in conf.columns if c not in source.mapping],
            "missing_in_files": missing_in_files,
            "kept": list(kept.columns),
        },
        "null_rates": {
            col: (int(n) / n_kept if n_kept else None) for col, n in got["nulls"].items()
        },
        "distinct": {col: int(got[f"distinct:{col}"]) for col in entities},
        "amount": _amount_stats(amounts, labelled),
        "fraud": {
            "labelled": labelled,
            "rows": n_kept,
            "frauds": frauds if labelled else None,
            "rate": frauds / n_kept if labelled and n_kept else None,
            "amount": total_amount,
            "fraud_amount": fraud_amount if labelled else None,
        },
        "fraud_by_month": [
            {
                "month": str(month),
                "rows": int(r["rows"]),
                "frauds": int(r["frauds"]) if labelled else None,
                "rate": r["frauds"] / r["rows"] if labelled and r["rows"] else None,
                "amount": float(r["amount"]),
                "fraud_amount": float(r["fraud_amount"]) if labelled else None,
            }
            for month, r in by_month.iterrows()
        ],
        "label_delay": delay_info,
        "card_numbers": {
            "scanned": list(scan),
            "columns": pan_columns,
            "values_tokenized": sum(pan_columns.values()),
        },
        "quarantine": {
            "by_reason": {r: n for r, n in by_reason.items() if n},
            "examples": _example_rows(got["heads"], examples, source.files, root, masked),
        },
    }
    profile["warnings"] = profile_warnings(profile)
    return profile


def profile_warnings(profile: Mapping[str, Any]) -> list[str]:
    """What a data scientist should look at first, in plain sentences (most serious first).

    Parameters
    ----------
    profile : dict
        Output of :func:`profile_source`.

    Returns
    -------
    list of str
    """
    out = []
    rows = profile["rows"]
    share = rows.get("quarantined_share") or 0.0
    if rows["quarantined"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in profile["quarantine"]["by_reason"].items())
        out.append(
            f"{rows['quarantined']:,} of {rows['in']:,} rows ({share:.2%}) quarantined: {reasons}"
        )
    dup = profile["duplicates"]
    if dup["rows"]:
        out.append(
            f"{dup['rows']:,} rows repeat {dup['tx_ids']:,} tx_id(s); the first valid copy was kept"
        )
    fraud = profile["fraud"]
    if not fraud["labelled"]:
        out.append("no is_fraud column: the source has no labels to train or evaluate on")
    elif not fraud["frauds"]:
        out.append("no fraud among the kept rows")
    cards = profile["card_numbers"]
    if cards["values_tokenized"]:
        cols = ", ".join(f"{c} ({n:,})" for c, n in cards["columns"].items())
        out.append(f"raw card numbers found and tokenized (keyed hash) in: {cols}")
    delay = profile["label_delay"]
    if delay["source"] == "filled":
        out.append(delay["note"])
    cols = profile["columns"]
    if cols["not_found"]:
        out.append(f"mapped column(s) in no file: {', '.join(cols['not_found'])}")
    if cols["missing_in_files"]:
        out.append(f"column(s) missing in some files: {', '.join(cols['missing_in_files'])}")
    if cols["unmapped"]:
        out.append(
            f"{len(cols['unmapped'])} raw column(s) not mapped (not read): "
            + ", ".join(cols["unmapped"][:20])
        )
    high = [c for c, r in profile["null_rates"].items() if r is not None and r > 0.5]
    if high:
        out.append(f"more than half null: {', '.join(high)}")
    t = profile["time"]
    if t["days_without_rows"]:
        out.append(f"{t['days_without_rows']} day(s) inside the time span have no rows")
    if t["span_days"] is not None and t["span_days"] < 28:
        out.append(f"only {t['span_days']:.1f} days of data: too short for a time-based split")
    return out
