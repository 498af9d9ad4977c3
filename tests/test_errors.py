"""User-facing errors are one line: ``error: ...`` on stderr, exit status 2, no traceback.

Each case runs ``python -m fraud_dask`` as a user would, with a mistake in its input, and checks
what the user sees and that the run left no ``metrics.json``, performance report or output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from omegaconf import OmegaConf

from fraud_dask.data.pan import luhn_valid
from fraud_dask.registry import Registry
from fraud_dask.train import XGBoostModel

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

#: these runs fail before any real work: one worker is enough
QUICK = ["cluster.n_workers=1"]


def _run(
    args: list[str], tmp_path: Path, *, full_error: bool = False
) -> subprocess.CompletedProcess[str]:
    unset = ("HYDRA_FULL_ERROR", "FRAUD_DASK_PAN_KEY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["FRAUD_DASK_HOME"] = str(tmp_path / "home")
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "fraud_dask", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a user error (and the checks that it is one)."""
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return lines[0]


def _left_no_outputs(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert "metrics.json" not in names
    assert "dask-report.html" not in names
    # what the entry point writes before the task runs: the run's record, nothing else
    assert names <= {"resolved_config.yaml", "overrides.yaml", "fraud_dask.log"}, names


def _pan(prefix: str) -> str:
    """A 16-digit number that passes the Luhn check, as card numbers do."""
    return next(f"{prefix}{d}" for d in "0123456789" if luhn_valid(f"{prefix}{d}"))


def _transactions(n: int = 20, *, card_ids: list[str] | None = None) -> pd.DataFrame:
    ts = pd.date_range("2025-01-01", periods=n, freq="h")
    return pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": ts,
            "card_id": card_ids if card_ids is not None else [str(i % 5) for i in range(n)],
            "terminal_id": np.arange(n, dtype="int64") % 3,
            "amount": np.linspace(1.0, 100.0, n),
            "is_fraud": np.zeros(n, dtype="int8"),
        }
    )


def test_missing_pan_hash_key_names_the_file_and_column_and_the_setting(tmp_path: Path) -> None:
    cards = [_pan(f"411111111111{i:03d}") for i in range(20)]
    source = tmp_path / "cards.parquet"
    _transactions(card_ids=cards).to_parquet(source)
    run_dir = tmp_path / "run"
    out = _run(
        ["task=ingest", "data=parquet", f"data.path={source}", "cluster.n_workers=1",
         "data.pan.create_key=false", f"hydra.run.dir={run_dir}"],
        tmp_path,
    )  # fmt: skip
    line = _one_line(out)
    assert "no hash key is configured" in line
    assert f"{source}: column 'card_id'" in line
    assert "FRAUD_DASK_PAN_KEY" in line and "data.pan.key" in line
    assert not any(card in out.stdout + out.stderr for card in cards)
    _left_no_outputs(run_dir)


def test_bad_option_value_fails_at_compose_time_before_any_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = _run(["task=registry", "task.action=delete", f"hydra.run.dir={run_dir}"], tmp_path)
    line = _one_line(out)
    assert "task.action=delete" in line
    assert "expected one of [list, show, promote]" in line
    assert not run_dir.exists()  # composing failed: nothing ran, nothing was created


def test_bad_option_value_under_cfg_job_is_one_line_too(tmp_path: Path) -> None:
    out = _run(["--cfg", "job", "task=registry", "task.action=delete"], tmp_path)
    assert "task.action=delete" in _one_line(out)
    assert out.stdout == ""


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "transactions"
    run_dir = tmp_path / "run"
    out = _run(
        ["task=ingest", "data=parquet", f"data.path={missing}", f"hydra.run.dir={run_dir}", *QUICK],
        tmp_path,
    )
    assert _one_line(out) == f"error: data source not found: {missing}"
    _left_no_outputs(run_dir)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    source = tmp_path / "tx"
    source.mkdir()
    _transactions().to_parquet(source / "part-0.parquet")
    garbage = source / "part-1.parquet"
    garbage.write_bytes(b"this is not parquet at all\n" * 20)
    run_dir = tmp_path / "run"
    out = _run(
        ["task=ingest", "data=parquet", f"data.path={source}", f"hydra.run.dir={run_dir}", *QUICK],
        tmp_path,
    )
    line = _one_line(out)
    assert line.startswith(f"error: {garbage}: unreadable or corrupt parquet file")
    _left_no_outputs(run_dir)


def _registry_with_one_version(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (x["a"] > 0.5).astype(int)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, y), num_boost_round=2)
    model = XGBoostModel(["a", "b"], info={"rows": 200}, booster=booster, best_iteration=1)
    features = {"name": "tiny", "windows": [{"entity": ["card_id"], "windows": ["1d"]}]}
    version = Registry(str(path)).register(
        "fraud", model, features=features, config=OmegaConf.create({"seed": 0})
    )
    assert version == 1


def test_unknown_registry_version_lists_the_versions(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    _registry_with_one_version(registry)
    run_dir = tmp_path / "run"
    out = _run(
        ["task=registry", "task.action=show", f"registry.path={registry}", "registry.name=fraud",
         "registry.version=99", f"hydra.run.dir={run_dir}", *QUICK],
        tmp_path,
    )  # fmt: skip
    line = _one_line(out)
    assert "'fraud' has no version 99" in line and "[1]" in line
    _left_no_outputs(run_dir)


def test_full_error_shows_the_traceback_instead(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    run_dir = tmp_path / "run"
    out = _run(
        ["task=ingest", "data=parquet", f"data.path={missing}", f"hydra.run.dir={run_dir}", *QUICK],
        tmp_path,
        full_error=True,
    )
    assert out.returncode != 0
    assert "Traceback (most recent call last)" in out.stderr
    assert f"InputNotFoundError: data source not found: {missing}" in out.stderr
    assert "metrics.json" not in {p.name for p in run_dir.iterdir()}

    composed = _run(["task=registry", "task.action=delete"], tmp_path, full_error=True)
    assert composed.returncode != 0
    assert "Traceback (most recent call last)" in composed.stderr
    assert "ConfigCompositionException" in composed.stderr


def test_multirun_reports_one_line_per_failing_job_and_runs_the_others(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    _registry_with_one_version(registry)
    out = _run(
        ["-m", "task=registry", "task.action=show", f"registry.path={registry}",
         "registry.name=fraud", "registry.version=98,1,99", *QUICK],
        tmp_path,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith("error: job 0 (") and "registry.version=98" in lines[0]
    assert "has no version 98" in lines[0]
    assert lines[1].startswith("error: job 2 (") and "has no version 99" in lines[1]
    sweep = tmp_path / "home" / "multirun"
    metrics = sorted(p.parent.name for p in sweep.glob("*/*/*/metrics.json"))
    assert metrics == ["1"]  # the good job ran and wrote its metrics; the failing ones did not
