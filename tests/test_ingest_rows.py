"""Row-level bad values never crash an ingest, and no raw card number is ever written.

A source holds a 10 MB card id, a long free-text value, amounts that are not numbers, and card
numbers in string columns nobody listed as personal data (plain text, dictionary-encoded, a
``client_id``, the raw text of a bad amount). ``task=ingest`` must quarantine the bad rows with
their reasons (rows in = kept + quarantined, compared with pandas on the raw file), tokenize
every card number wherever it is, and write no raw number and no oversized value anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from fraud_dask.data.pan import PanHasher
from fraud_dask.errors import UserError
from fraud_dask.tasks import ingest

PAN_A = "4111111111111111"
PAN_B = "5500 0000 0000 0004"
KEY = "rows-test-key"
HUGE = 10 * 1024 * 1024


def _rows(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "ts": pd.date_range("2024-06-01", periods=n, freq="h", tz="UTC"),
            "card_id": [f"c{i % 6}" for i in range(n)],
            "amount": [f"{1.5 * i:.2f}" for i in range(n)],
            "merchant_id": [f"m{i % 4}" for i in range(n)],
            "memo": ["fine"] * n,
            "client": ["acme"] * n,
        }
    )


def write_source(root: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """One Parquet file; returns the raw rows and the expected reason of each bad row."""
    raw = _rows()
    raw.loc[3, "card_id"] = "x" * HUGE  # a 10 MB id
    raw.loc[4, "memo"] = "y" * 1025  # one character over the limit
    raw.loc[5, "amount"] = "abc"
    raw.loc[6, "amount"] = f"paid with {PAN_A}"  # a bad amount whose text holds a card number
    raw.loc[7, "amount"] = "-3"
    raw.loc[8, "memo"] = f"customer read out {PAN_B} on the phone"
    raw.loc[9, "memo"] = "y" * 1024  # at the limit: kept
    raw.loc[10, "client"] = PAN_A  # even a client name
    expect = {3: "oversized_value", 4: "oversized_value", 5: "unparseable_amount",
              6: "unparseable_amount", 7: "negative_amount"}  # fmt: skip
    table = pa.Table.from_pandas(raw, preserve_index=False)
    # the card number also hides in a dictionary-encoded column
    channel = pa.array([PAN_B if i == 11 else "web" for i in range(len(raw))])
    table = table.append_column("channel", channel.dictionary_encode())
    raw["channel"] = channel.to_pylist()
    root.mkdir(parents=True)
    pq.write_table(table, root / "rows.parquet")
    return raw, expect


def _cfg(src: Path, run: Path, **pan: object) -> object:
    data = {
        "name": "rows",
        "path": str(src),
        "columns": {"client": "client_id"},
        "keep_unmapped": True,
        "pan": {"key": KEY, **pan},
    }
    return OmegaConf.create({"data": data, "run_dir": str(run), "task": {}})


def _all_text(folder: Path) -> str:
    frames = [pd.read_parquet(f) for f in sorted(folder.rglob("*.parquet"))]
    return "\n".join(f.astype(str).to_csv(index=False) for f in frames) + "\n".join(
        str(f) for f in folder.rglob("*")
    )


def test_bad_rows_are_quarantined_and_no_card_number_is_written(client, tmp_path: Path) -> None:
    raw, expect = write_source(tmp_path / "src")
    report = ingest.run(_cfg(tmp_path / "src", tmp_path / "run"), client)

    # rows in = kept + quarantined, as pandas counts the raw file
    assert report["rows_in"] == len(pd.read_parquet(tmp_path / "src")) == len(raw)
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    want = pd.Series(expect).value_counts().to_dict()
    assert {k: v for k, v in report["by_reason"].items() if v} == want

    quarantine = pd.read_parquet(report["quarantine"]).set_index("source_row")
    assert quarantine["reason"].to_dict() == expect
    assert quarantine.loc[3, "detail"] == f"card_id=<{HUGE} characters>"
    assert pd.isna(quarantine.loc[3, "card_id"])  # the value itself is not kept
    assert quarantine.loc[4, "detail"] == "memo=<1025 characters>"
    assert quarantine.loc[5, "detail"] == "amount=abc"
    token = PanHasher(KEY).token
    assert quarantine.loc[6, "detail"] == f"amount=paid with {token(PAN_A)}"

    kept = pd.read_parquet(report["output"]).set_index("tx_id")
    assert sorted(kept.index) == sorted(raw["tx_id"].drop(list(expect)))
    assert (
        kept.loc["t8", "memo"] == f"customer read out {token(PAN_B.replace(' ', ''))} on the phone"
    )
    assert kept.loc["t9", "memo"] == "y" * 1024
    assert kept.loc["t10", "client_id"] == token(PAN_A)
    assert kept.loc["t11", "channel"] == token(PAN_B.replace(" ", ""))
    assert isinstance(kept["channel"].dtype, pd.CategoricalDtype)

    written = _all_text(tmp_path / "run")
    for number in (PAN_A, PAN_B, PAN_B.replace(" ", "")):
        assert number not in written
    assert "x" * 2000 not in written and "y" * 1025 not in written
    assert sum(f.stat().st_size for f in (tmp_path / "run").rglob("*")) < HUGE // 10


def test_refuse_names_the_file_and_column(client, tmp_path: Path) -> None:
    write_source(tmp_path / "src")
    with pytest.raises(UserError, match=r"rows\.parquet: column 'memo' \(memo\): holds card"):
        ingest.run(_cfg(tmp_path / "src", tmp_path / "run", unlisted="refuse"), client)
    # listed columns are expected to hold card numbers: tokenized, not refused
    cfg = _cfg(tmp_path / "src", tmp_path / "run2", unlisted="refuse")
    cfg.data.pii_columns = ["memo", "channel", "client", "amount"]
    report = ingest.run(cfg, client)
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]


def test_max_value_length_is_configurable(client, tmp_path: Path) -> None:
    raw, expect = write_source(tmp_path / "src")
    cfg = _cfg(tmp_path / "src", tmp_path / "run")
    cfg.data.max_value_length = 5000
    report = ingest.run(cfg, client)
    assert report["by_reason"]["oversized_value"] == 1  # only the 10 MB id now
    kept = pd.read_parquet(report["output"])
    assert (kept["memo"].str.len() == 1025).sum() == 1
    assert np.isin(["t3"], kept["tx_id"]).sum() == 0
