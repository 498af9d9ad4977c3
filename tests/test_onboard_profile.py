"""The onboarding profile and report, checked against pandas on the raw files, and in a browser.

The source uses its own column names, holds raw card numbers (in the card column and in a free
text column), bad rows, repeated ``tx_id`` and chargeback times. Every figure of the profile is
recomputed here from the raw Parquet files with plain pandas, with the kept rows chosen by the
data contract's rules written out again (not by the package's code).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import CHROMIUM, render
from omegaconf import OmegaConf

from fraud_dask.data import open_source
from fraud_dask.data.schema import REASONS
from fraud_dask.onboard.profile import QUANTILES, profile_source
from fraud_dask.onboard.report import console_summary, write_onboard_report

MAPPING = {
    "txn": "tx_id",
    "event_time": "ts",
    "pan": "card_id",
    "amt": "amount",
    "shop": "merchant_id",
    "term": "terminal_id",
    "cust_email": "email",
    "memo": "memo",
    "fraud_flag": "is_fraud",
    "chargeback_time": "label_ts",
}
UNMAPPED = ["channel_code", "internal_note"]
PAN_KEY = "onboard-test-key"


def _luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def make_source(root: Path, seed: int = 7) -> tuple[pd.DataFrame, list[str]]:
    """Three monthly Parquet files; returns the raw rows (in file order) and the PANs used."""
    rng = np.random.default_rng(seed)
    pans = [_luhn_complete("4" + "".join(rng.choice(list("0123456789"), 14))) for _ in range(30)]
    others = [f"CARD-{i:04d}" for i in range(10)]  # card IDs that are not card numbers
    frames = []
    next_id = 1000
    for month in ("2024-01", "2024-02", "2024-03"):
        start = pd.Timestamp(f"{month}-01")
        days = start.days_in_month
        n = 150
        ts = start + pd.to_timedelta(np.sort(rng.integers(0, days * 86_400, n)), unit="s")
        fraud = rng.random(n) < 0.08
        delay = pd.to_timedelta(rng.integers(2 * 86_400, 60 * 86_400, n), unit="s")
        cards = np.where(rng.random(n) < 0.8, rng.choice(pans, n), rng.choice(others, n))
        frame = pd.DataFrame(
            {
                "txn": np.arange(next_id, next_id + n, dtype=np.int64),
                "event_time": ts,
                "pan": pd.Series(cards, dtype=object),
                "amt": rng.integers(50, 90_000, n) / 100,
                "shop": rng.choice([f"shop{i}" for i in range(12)], n),
                "term": pd.Series([f"T{i:02d}" for i in rng.integers(1, 40, n)], dtype=object),
                "cust_email": pd.Series(
                    [f"user{i}@example.com" for i in rng.integers(0, 80, n)], dtype=object
                ),
                "memo": pd.Series(["ok"] * n, dtype=object),
                "fraud_flag": fraud.astype(np.int64),
                "chargeback_time": (ts + delay).where(fraud),
                "channel_code": rng.choice(["web", "pos"], n),
                "internal_note": "x",
            }
        )
        next_id += n
        frame.loc[rng.random(n) < 0.1, "cust_email"] = None
        frame.loc[rng.random(n) < 0.05, "term"] = None
        frames.append(frame)
    jan, feb, mar = frames
    # Bad rows: negative amounts, null cards; a fraud whose chargeback time is missing.
    jan.loc[[3, 40], "amt"] = [-12.5, -0.01]
    feb.loc[[5, 77], "pan"] = None
    feb.loc[feb.index[feb["fraud_flag"] == 1][0], "chargeback_time"] = pd.NaT
    # Card numbers in free text, and a card number cut by spaces.
    jan.loc[10, "memo"] = f"refund to {pans[0]} done"
    mar.loc[20, "pan"] = " ".join(re.findall("....", pans[1]))
    # Repeated tx_ids: later valid copies of earlier valid rows (one of them a fraud).
    repeat_of = [jan.loc[1], jan.loc[2], feb.loc[9]]
    for i, src in zip((30, 31, 60), repeat_of, strict=True):
        mar.loc[i, "txn"] = src["txn"]
    frames = [jan, feb, mar]
    root.mkdir(parents=True, exist_ok=True)
    for month, frame in zip(("2024-01", "2024-02", "2024-03"), frames, strict=True):
        frame.to_parquet(root / f"tx-{month}.parquet", index=False)
    return pd.concat(frames, ignore_index=True), pans


def expected_kept(raw: pd.DataFrame, label_delay_days: float) -> tuple[pd.DataFrame, dict]:
    """Kept rows and quarantine counts, from the data contract's rules written in pandas."""
    reason = pd.Series(None, index=raw.index, dtype=object)
    reason[raw["pan"].isna() | raw["txn"].isna()] = "null_key"
    reason[reason.isna() & (raw["amt"] < 0)] = "negative_amount"
    valid = reason.isna()
    first = ~raw.loc[valid, "txn"].duplicated(keep="first")
    dup = valid.copy()
    dup[valid] = ~first
    reason[dup] = "duplicate_tx_id"
    kept = raw[reason.isna()].copy()
    kept["ts"] = kept["event_time"].dt.tz_localize("UTC")
    label = kept["chargeback_time"].dt.tz_localize("UTC")
    kept["label_ts"] = label.fillna(kept["ts"] + pd.Timedelta(days=label_delay_days))
    counts = {r: int((reason == r).sum()) for r in REASONS}
    return kept, counts


def _cfg(path: Path, **extra: object) -> object:
    data = {
        "name": "acme",
        "path": str(path),
        "columns": MAPPING,
        "pii_columns": ["cust_email", "memo"],
        "pan": {"key_env": "TEST_ONBOARD_PAN_KEY"},
        "label_delay_days": 30,
        **extra,
    }
    return OmegaConf.create(data)


@pytest.fixture
def onboarded(client, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_ONBOARD_PAN_KEY", PAN_KEY)
    raw, pans = make_source(tmp_path / "src")
    source = open_source(_cfg(tmp_path / "src"))
    profile = profile_source(source, client=client, examples=3)
    return raw, pans, profile, tmp_path


def _quantiles(values: pd.Series) -> dict[str, float]:
    return {f"p{p:g}": float(values.quantile(p / 100)) for p in QUANTILES}


def test_profile_matches_pandas(onboarded) -> None:
    raw, pans, profile, _ = onboarded
    json.dumps(profile)  # goes to metrics.json as is
    kept, counts = expected_kept(raw, 30)

    rows = profile["rows"]
    assert rows["in"] == len(raw) == rows["kept"] + rows["quarantined"]
    assert rows["kept"] == len(kept)
    assert rows["by_reason"] == counts
    assert counts["null_key"] == 2 and counts["negative_amount"] == 2
    assert counts["duplicate_tx_id"] == 3
    assert profile["duplicates"] == {"rows": 3, "tx_ids": 3}
    assert profile["quarantine"]["by_reason"] == {r: n for r, n in counts.items() if n}

    assert profile["files"]["count"] == 3 and profile["files"]["rows_in_footers"] == len(raw)
    assert [f["path"] for f in profile["files"]["listed"]] == [
        "tx-2024-01.parquet",
        "tx-2024-02.parquet",
        "tx-2024-03.parquet",
    ]

    t = profile["time"]
    assert pd.Timestamp(t["first_ts"]) == kept["ts"].min()
    assert pd.Timestamp(t["last_ts"]) == kept["ts"].max()
    span = (kept["ts"].max() - kept["ts"].min()).total_seconds() / 86_400
    assert t["span_days"] == pytest.approx(span)
    per_day = kept.groupby(kept["ts"].dt.strftime("%Y-%m-%d")).agg(
        rows=("txn", "size"), frauds=("fraud_flag", "sum")
    )
    assert profile["rows_per_day"] == [
        {"day": d, "rows": int(r.rows), "frauds": int(r.frauds)} for d, r in per_day.iterrows()
    ]
    assert t["days_with_rows"] == len(per_day)
    all_days = pd.date_range(per_day.index[0], per_day.index[-1], freq="D")
    assert t["days_without_rows"] == len(all_days) - len(per_day)
    monday = kept["event_time"].dt.to_period("W-SUN").dt.start_time.dt.strftime("%Y-%m-%d")
    per_week = kept.groupby(monday)["txn"].size()
    assert [(w["week"], w["rows"]) for w in profile["rows_per_week"]] == list(per_week.items())

    cols = profile["columns"]
    assert cols["mapped"] == MAPPING
    assert cols["unmapped"] == UNMAPPED
    assert cols["not_found"] == [] and cols["missing_in_files"] == {}

    canonical = kept.rename(columns=MAPPING)
    for col in MAPPING.values():
        if col == "label_ts":
            continue
        assert profile["null_rates"][col] == pytest.approx(canonical[col].isna().mean()), col
    assert profile["null_rates"]["email"] > 0 and profile["null_rates"]["terminal_id"] > 0
    assert profile["null_rates"]["label_ts"] == 0  # filled from the configured delay

    expected_distinct = {
        "card_id": kept["pan"].str.replace(" ", "").nunique(),
        "merchant_id": kept["shop"].nunique(),
        "terminal_id": kept["term"].nunique(),
        "email": kept["cust_email"].nunique(),
        "client_id": 1,
    }
    assert profile["distinct"] == expected_distinct

    amount = profile["amount"]
    frauds = kept[kept["fraud_flag"] == 1]
    genuine = kept[kept["fraud_flag"] == 0]
    for name, part in (("all", kept), ("fraud", frauds), ("genuine", genuine)):
        assert amount[name]["count"] == len(part)
        assert amount[name]["mean"] == pytest.approx(part["amt"].mean())
        assert amount[name]["quantiles"] == pytest.approx(_quantiles(part["amt"]))
    hist = amount["histogram"]
    assert sum(hist["counts"]["fraud"]) + sum(hist["counts"]["genuine"]) == len(kept)

    fraud = profile["fraud"]
    assert fraud["frauds"] == len(frauds) and fraud["rate"] == pytest.approx(
        len(frauds) / len(kept)
    )
    assert fraud["fraud_amount"] == pytest.approx(frauds["amt"].sum())
    month = kept["ts"].dt.strftime("%Y-%m")
    by_month = kept.groupby(month).agg(
        rows=("txn", "size"), frauds=("fraud_flag", "sum"), amount=("amt", "sum")
    )
    fraud_amount = frauds.groupby(month[frauds.index])["amt"].sum()
    assert [m["month"] for m in profile["fraud_by_month"]] == ["2024-01", "2024-02", "2024-03"]
    for got in profile["fraud_by_month"]:
        want = by_month.loc[got["month"]]
        assert (got["rows"], got["frauds"]) == (want.rows, want.frauds)
        assert got["rate"] == pytest.approx(want.frauds / want.rows)
        assert got["amount"] == pytest.approx(want.amount)
        assert got["fraud_amount"] == pytest.approx(fraud_amount.get(got["month"], 0.0))

    delay = profile["label_delay"]
    days = (frauds["label_ts"] - frauds["ts"]).dt.total_seconds() / 86_400
    assert delay["source"] == "data" and delay["frauds"] == len(frauds)
    assert delay["quantiles"] == pytest.approx(_quantiles(days))
    assert delay["quantiles"]["p0"] >= 2 and delay["quantiles"]["p100"] <= 60

    # Card numbers: every row read counts (quarantined ones too), free text included.
    in_pan = raw["pan"].str.replace(" ", "").isin(pans).sum()
    cards = profile["card_numbers"]
    assert cards["scanned"] == ["pan", "cust_email", "memo"]
    assert cards["columns"] == {"pan": int(in_pan), "memo": 1}
    assert cards["values_tokenized"] == in_pan + 1


def test_quarantine_examples_are_redacted(onboarded) -> None:
    raw, pans, profile, _ = onboarded
    examples = profile["quarantine"]["examples"]
    assert list(examples) == ["null_key", "negative_amount", "duplicate_tx_id"]
    assert [e["amount"] for e in examples["negative_amount"]] == [-12.5, -0.01]
    assert [e["source_file"] for e in examples["null_key"]] == ["tx-2024-02.parquet"] * 2
    assert [e["source_row"] for e in examples["null_key"]] == [5, 77]
    assert all(e["card_id"] is None for e in examples["null_key"])
    dup_ids = [e["tx_id"] for e in examples["duplicate_tx_id"]]
    assert dup_ids == [int(raw.loc[1, "txn"]), int(raw.loc[2, "txn"]), int(raw.loc[159, "txn"])]
    for rows in examples.values():
        for e in rows:
            if e["card_id"] is not None:  # a token, masked to its last four characters
                assert re.fullmatch(r"\*\*\*[0-9a-zA-Z-]{4}", e["card_id"]), e["card_id"]
            if e["email"] is not None:
                assert e["email"].startswith("***") and "@example" not in e["email"]

    text = json.dumps(profile)
    for pan in pans:
        assert pan not in text
    # nothing that looks like a card number (13-19 digits, spaces or dashes allowed) at all,
    # decimals (null rates, amounts) aside
    assert not re.search(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?!\d)", text)


def test_profile_does_not_depend_on_partitioning(onboarded, client) -> None:
    _, _, profile, tmp_path = onboarded
    per_file = open_source(_cfg(tmp_path / "src", rows_per_partition=None))
    again = profile_source(per_file, client=client, examples=3)
    assert again == profile


def test_source_without_labels_or_label_ts(client, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_ONBOARD_PAN_KEY", PAN_KEY)
    raw, pans = make_source(tmp_path / "src")
    mapping = {k: v for k, v in MAPPING.items() if v not in ("label_ts", "is_fraud")}
    profile = profile_source(open_source(_cfg(tmp_path / "src", columns=mapping)), client=client)
    delay = profile["label_delay"]
    assert delay["source"] == "filled" and "quantiles" not in delay
    assert "filled from data.label_delay_days (30 days" in delay["note"]
    assert delay["note"] in profile["warnings"]
    assert {"chargeback_time", "fraud_flag"} <= set(profile["columns"]["unmapped"])
    fraud = profile["fraud"]
    assert not fraud["labelled"] and fraud["rate"] is None and fraud["frauds"] is None
    assert any(w.startswith("no is_fraud column") for w in profile["warnings"])
    kept, _ = expected_kept(raw, 30)
    assert profile["amount"]["all"]["quantiles"] == pytest.approx(_quantiles(kept["amt"]))
    assert set(profile["amount"]["histogram"]["counts"]) == {"all"}
    page = write_onboard_report(tmp_path / "run", profile=profile).read_text(encoding="utf-8")
    summary = console_summary(profile)
    assert "no labels" in page and "(not given)" in page
    assert "label delay: the source has no label_ts" in summary
    for pan in pans:
        assert pan not in page and pan not in summary


def _report(profile: dict, run_dir: Path) -> Path:
    split = {
        "folds": [
            {
                "name": "fold0",
                "train_start": "2024-01-01",
                "train_end": "2024-02-15",
                "test_start": "2024-03-01",
                "test_end": "2024-04-01",
                "rows": 120,
                "frauds": 9,
            }
        ],
        "reasons": ["3 months of data: one fold, a 14-day gap for the label delay"],
    }
    evaluation = {
        "models": {
            "client": {
                "average_precision": 0.41,
                "recall_at_1pct_fpr": 0.35,
                "fraud_value_caught": 0.52,
                "alert_budgets": [{"budget": 0.01, "precision": 0.6, "recall": 0.2}],
                "per_month": {"2024-03": {"rows": 120, "frauds": 9, "average_precision": 0.41}},
            },
            "champion": {"average_precision": 0.33, "recall_at_1pct_fpr": 0.3},
        },
        "notes": ["the champion is the global model"],
    }
    return write_onboard_report(
        run_dir,
        profile=profile,
        split=split,
        skipped_features=["device_id windows: no device_id column"],
        evaluation=evaluation,
        warnings=["client model trained on 3 months only"],
    )


def test_report_and_console_hold_no_card_number(onboarded) -> None:
    raw, pans, profile, tmp_path = onboarded
    path = _report(profile, tmp_path / "run")
    assert path == tmp_path / "run" / "onboard.html"
    page = path.read_text(encoding="utf-8")
    assert "cdn.bokeh.org" not in page and "<script src=" not in page  # readable offline
    summary = console_summary(profile, report_path=path)
    for pan in pans:
        assert pan not in page and pan not in summary
    assert "acme" in summary and f"{profile['rows']['in']:,}" in summary
    assert "client model trained on 3 months only" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_report_renders_in_a_browser(onboarded) -> None:
    raw, pans, profile, tmp_path = onboarded
    path = _report(profile, tmp_path / "run")
    dom, shot = render(path, tmp_path / "onboard.png")
    for pan in pans:
        assert pan not in dom
    # what the reader sees: sections, the warnings box first, and plots that Bokeh drew
    for heading in (
        "Summary",
        "Data profile",
        "Quarantine",
        "Split",
        "Features skipped",
        "Evaluation",
    ):
        assert heading in dom, heading
    assert dom.index("client model trained on 3 months only") < dom.index("Data profile")
    # each plot is a host element Bokeh adds (it draws inside its shadow root)
    assert dom.count('class="bk-Figure"') == 3, "the Bokeh plots did not render"
    assert "***" in dom and shot.stat().st_size > 50_000
