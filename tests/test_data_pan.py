"""Card numbers never leak: detection (Luhn), keyed hashing, and no PAN in any output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from fraud_dask.data import load_transactions
from fraud_dask.data.pan import PanHasher, is_pan, luhn_valid
from fraud_dask.tasks import ingest

# Well-known test card numbers (Luhn-valid) in the forms real exports use.
PAN_A = "4111111111111111"
PAN_B = "5500 0000 0000 0004"
PAN_C = "4012-8888-8888-1881"
PAN_INT = 378282246310005  # 15-digit Amex test number stored as an integer
NOT_PAN = "4111111111111112"  # fails the Luhn check


def test_luhn_and_detection() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert is_pan(PAN_A) and is_pan(PAN_B) and is_pan(PAN_C) and is_pan(str(PAN_INT))
    assert not is_pan(NOT_PAN) and not is_pan("123456789012") and not is_pan("4" * 20)


def test_hasher_is_keyed_and_keeps_dtype() -> None:
    a, b = PanHasher("k1"), PanHasher("k2")
    s = pd.Series([PAN_A, f"card {PAN_B} used", NOT_PAN, None], dtype="str")
    out, n = a.scrub(s)
    assert n == 2 and out.dtype == s.dtype
    assert out[0] == a.token(PAN_A) and out[0] != b.token(PAN_A)
    assert out[1] == f"card {a.token(PAN_B.replace(' ', ''))} used"
    assert out[2] == NOT_PAN and pd.isna(out[3])
    ints, m = a.scrub(pd.Series([PAN_INT, 42], dtype="int64"))
    assert m == 1 and ints.dtype == "int64" and ints[1] == 42 and ints[0] != PAN_INT
    assert "k1" not in repr(a)
    with pytest.raises(ValueError, match="no hash key") as err:
        PanHasher(None).scrub(pd.Series([PAN_A], dtype="str"), "f.parquet: column 'card'")
    assert PAN_A not in str(err.value)


def _source(root: Path) -> None:
    root.mkdir(parents=True)
    rows = pd.DataFrame(
        {
            "tx_id": [1, 2, 3, 4, 5],
            "ts": pd.date_range("2024-02-01", periods=5, freq="6h"),
            "card_number": [PAN_A, PAN_B, PAN_A, NOT_PAN, PAN_C],
            "amount": [10.0, 20.0, -1.0, 5.0, 7.5],  # row 3 is quarantined, PAN and all
            "merchant_id": ["m1", "m2", "m1", "m3", "m2"],
            "note": ["ok", f"refund to {PAN_C}", "", f"ref {PAN_B}", None],
            "account": [PAN_INT, 7, PAN_INT, 8, 9],
        }
    )
    rows.to_parquet(root / "a.parquet", index=False)


def _digits(pan: str) -> str:
    return pan.replace(" ", "").replace("-", "")


def test_no_pan_in_any_output_log_or_report(client, tmp_path, monkeypatch, caplog) -> None:
    _source(tmp_path / "src")
    monkeypatch.setenv("TEST_PAN_KEY", "s3cret-key-for-tests")
    data = {
        "name": "cards",
        "path": str(tmp_path / "src"),
        "columns": {
            "tx_id": "tx_id",
            "ts": "ts",
            "card_number": "card_id",
            "amount": "amount",
            "merchant_id": "merchant_id",
            "note": "note",
            "account": "account",
        },
        "pii_columns": ["note", "account"],
        "pan": {"key_env": "TEST_PAN_KEY"},
    }
    run_dir = tmp_path / "run"
    cfg = OmegaConf.create({"data": data, "run_dir": str(run_dir)})
    with caplog.at_level(logging.DEBUG):
        report = ingest.run(cfg, client)
    (run_dir / "metrics.json").write_text(json.dumps(report))
    assert report["rows_kept"] == 4 and report["by_reason"]["negative_amount"] == 1

    secrets = [PAN_A, PAN_B, PAN_C, _digits(PAN_B), _digits(PAN_C), str(PAN_INT)]
    secrets += ["s3cret-key-for-tests"]
    texts = [caplog.text, json.dumps(report)]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        texts.append(path.read_bytes().decode("latin-1"))
        if path.suffix == ".parquet":  # compressed pages could hide a PAN from a byte scan
            table = pq.read_table(path)
            texts.append(table.to_pandas().astype(str).to_csv())
    for text in texts:
        for secret in secrets:
            assert secret not in text

    kept = load_transactions(data).compute().sort_values("tx_id")
    assert kept.loc[kept.tx_id == 4, "card_id"].item() == NOT_PAN  # not a PAN: untouched
    tokens = kept.set_index("tx_id")["card_id"]
    assert tokens[1].startswith("tok_") and tokens[1] != tokens[2]
    quarantine = pd.read_parquet(run_dir / "quarantine")
    assert quarantine["card_id"].item() == tokens[1]  # same PAN, same token, also quarantined
    assert kept["account"].dtype == "int64" and PAN_INT not in set(kept["account"])


def test_pan_without_key_fails_clearly(client, tmp_path, monkeypatch) -> None:
    _source(tmp_path / "src")
    monkeypatch.delenv("FRAUD_DASK_PAN_KEY", raising=False)
    data = {
        "name": "cards",
        "path": str(tmp_path / "src"),
        "columns": {
            "tx_id": "tx_id",
            "ts": "ts",
            "card_number": "card_id",
            "amount": "amount",
            "merchant_id": "merchant_id",
        },
        "pan": {"create_key": False},
    }
    with pytest.raises(ValueError, match=r"a\.parquet: column 'card_number'.*no hash key") as e:
        load_transactions(data).compute()
    assert PAN_A not in str(e.value)


def test_without_a_configured_key_the_data_home_key_is_created_once_and_reused(
    client, tmp_path, monkeypatch
) -> None:
    import stat

    _source(tmp_path / "src")
    monkeypatch.delenv("FRAUD_DASK_PAN_KEY", raising=False)
    monkeypatch.setenv("FRAUD_DASK_HOME", str(tmp_path / "home"))
    data = {
        "name": "cards",
        "path": str(tmp_path / "src"),
        "columns": {
            "tx_id": "tx_id",
            "ts": "ts",
            "card_number": "card_id",
            "amount": "amount",
            "merchant_id": "merchant_id",
        },
    }
    first = load_transactions(data).compute().set_index("tx_id")["card_id"]
    key_file = tmp_path / "home" / "pan.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) == 64
    second = load_transactions(data).compute().set_index("tx_id")["card_id"]
    assert key_file.read_text().strip() == key  # never replaced
    assert first[1].startswith("tok_") and PAN_A not in set(first)
    pd.testing.assert_series_equal(first.sort_index(), second.sort_index())
    # the same tokens as an explicit key equal to the file's
    given = load_transactions(data | {"pan": {"key": key}}).compute().set_index("tx_id")
    pd.testing.assert_series_equal(given["card_id"].sort_index(), first.sort_index())
