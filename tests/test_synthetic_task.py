"""``task=generate``: the default data config, a real write on the cluster, the data read back."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fraud_dask.data.config import DataConf
from fraud_dask.data.synthetic import BASE_SCENARIOS, Scenario, generate

ROOT = Path(__file__).resolve().parents[1]
SIZE = {
    "n_rows": 30_000,
    "n_days": 30,
    "customers_per_block": 100,
    "rows_per_partition": 8_000,
    "fraud_rate": 0.02,
}


def _cfg(tmp_path, **synthetic) -> object:
    """The run config a user gets with ``data=synthetic`` (the YAML merged on its schema)."""
    data = OmegaConf.merge(
        OmegaConf.structured(DataConf), OmegaConf.load(ROOT / "configs" / "data" / "synthetic.yaml")
    )
    cfg = OmegaConf.create(
        {
            "paths": {"data_home": str(tmp_path / "home")},
            "run_dir": str(tmp_path / "run"),
            "seed": 5,
            "task": {"name": "generate"},
        }
    )
    cfg.data = data
    cfg.data.synthetic = OmegaConf.merge(cfg.data.synthetic, synthetic)
    return cfg


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=[c for c in ("day",) if c in df.columns])
    out = out.astype({c: "str" for c in out.columns if not pd.api.types.is_numeric_dtype(out[c])})
    out = out.astype({c: str(df[c].dtype) for c in ("ts", "label_ts")})
    return out.sort_values("tx_id").reset_index(drop=True)[sorted(out.columns)]


def test_default_source_config_composes_on_its_schema(tmp_path):
    cfg = _cfg(tmp_path)
    assert cfg.data.name == "synthetic"
    assert cfg.data.path == str(tmp_path / "home" / "synthetic" / "transactions")
    assert cfg.data.synthetic.seed == 5  # follows the run's seed
    assert cfg.data.synthetic.n_rows == 1_000_000
    assert 0.005 <= cfg.data.synthetic.fraud_rate <= 0.01
    with pytest.raises(Exception, match="n_rowz"):
        OmegaConf.merge(cfg.data.synthetic, {"n_rowz": 1})


def test_generate_writes_the_rows_once_and_they_read_back(client, tmp_path):
    from fraud_dask.data import count_rows, load_transactions, read_dataset
    from fraud_dask.tasks.generate import run

    cfg = _cfg(tmp_path, **SIZE)
    result = run(cfg, client)
    path = cfg.data.path
    assert result["output"] == path
    assert result["rows_written"] == 30_000 == count_rows(path)
    assert result["partitions"] == 4
    assert sum(result["scenarios"].values()) == 30_000
    assert all(result["scenarios"][s.name] > 0 for s in BASE_SCENARIOS)
    assert result["scenarios"]["emerging_pattern"] == 0  # only with drift.new_pattern
    assert result["fraud_rows"] == 30_000 - result["scenarios"]["genuine"]
    assert result["fraud_rate"] == pytest.approx(0.02, rel=0.5)  # small world: few terminals
    assert result["rows_per_s"] > 0

    # the files hold exactly the generator's rows, one hive folder per day
    expected = generate(cfg.data.synthetic).compute(scheduler="sync")
    written = read_dataset(path).compute()
    assert sorted(written["day"].unique()) == [f"2025-01-{d:02d}" for d in range(1, 31)]
    assert (written["day"] == written["ts"].dt.strftime("%Y-%m-%d")).all()
    pd.testing.assert_frame_equal(_canonical(written), _canonical(expected))
    counts = expected["scenario"].value_counts()
    assert result["scenarios"] == {s.name: int(counts.get(int(s), 0)) for s in Scenario}

    # the data layer accepts it as a clean canonical source: nothing quarantined
    with dask.config.set(scheduler="sync"):
        kept = load_transactions(cfg.data).compute()
    assert len(kept) == 30_000
    assert kept["tx_id"].is_unique
    np.testing.assert_array_equal(np.sort(kept["tx_id"].to_numpy()), np.arange(30_000))

    # a rerun with another size replaces the dataset, never adds to it
    smaller = _cfg(tmp_path, **{**SIZE, "n_rows": 12_345})
    assert run(smaller, client)["rows_written"] == 12_345
    assert count_rows(path) == 12_345


def test_generate_names_a_missing_path_and_a_bad_field(client, tmp_path):
    from fraud_dask.tasks.generate import run

    cfg = _cfg(tmp_path, **SIZE)
    cfg.data.path = ""
    with pytest.raises(ValueError, match=r"data\.path"):
        run(cfg, client)
    cfg = _cfg(tmp_path, **SIZE)
    cfg.data.synthetic.fraud_rate = 0.9
    with pytest.raises(ValueError, match=r"data\.synthetic\.fraud_rate"):
        run(cfg, client)
