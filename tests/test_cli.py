"""The CLI as a user runs it: ``python -m fraud_dask`` in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

#: a synthetic source small enough for a CLI run in seconds
TINY = [
    "data.synthetic.n_rows=2000",
    "data.synthetic.n_days=20",
    "data.synthetic.customers_per_block=100",
    "model.device=cpu",
]
#: a pipeline that runs for a while (the pipeline test's data)
PIPELINE = [
    "data.synthetic.n_rows=40000",
    "data.synthetic.n_customers=600",
    "data.synthetic.n_days=80",
    "data.synthetic.customers_per_block=300",
    "model.device=cpu",
]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["FRAUD_DASK_HOME"] = str(home)
    env.update(extra)
    return env


def _run(
    args: list[str], home: Path, timeout: float = 300, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fraud_dask", *args],
        cwd=ROOT,
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _tree(root: Path) -> set[str]:
    skip = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis"}
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip and d != "__pycache__"]
        out.update(str(Path(dirpath, f).relative_to(root)) for f in filenames)
    return out


def test_help_is_one_screen_and_task_help_explains_one_task(tmp_path: Path) -> None:
    out = _run(["--help"], tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) <= 60  # not Hydra's 430-line config dump
    for group in ("cluster", "data", "features", "model", "split", "experiment"):
        assert any(line.startswith(f"  {group}:") for line in lines), group
    for task in ("pipeline", "onboard", "registry", "serve", "info", "cluster"):
        line = next(line for line in lines if line.startswith(f"  {task} "))
        assert len(line.split(None, 1)[1]) > 10, line  # one line saying what it does
    assert "task=NAME --help" in out.stdout and "Examples:" in out.stdout

    one = _run(["task=registry", "--help"], tmp_path, timeout=120)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("task=registry: list, show or promote model versions")
    action = next(line for line in one.stdout.splitlines() if "task.action " in line)
    assert action.split()[1] == "list" and "[list|show|promote]" in action
    assert not (tmp_path / "runs").exists()  # help runs nothing


def test_cfg_job_prints_the_composed_config_without_starting_anything(tmp_path: Path) -> None:
    out = _run(["--cfg", "job", "cluster.n_workers=3", "task=info"], tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "n_workers: 3" in out.stdout
    assert "name: info" in out.stdout
    assert not (tmp_path / "runs").exists()


def test_misspelt_key_fails_before_any_cluster_starts(tmp_path: Path) -> None:
    out = _run(["cluster.n_workerz=3", "task=info"], tmp_path, timeout=60)
    assert out.returncode != 0
    assert "n_workerz" in out.stderr
    assert "Could not override" in out.stderr or "not in" in out.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_a_run_writes_its_artifacts_into_the_run_dir_and_nothing_into_the_source_tree(
    tmp_path: Path,
) -> None:
    before = _tree(ROOT)
    run_dir = tmp_path / "myrun"
    secret = "pan-key-0123456789-do-not-leak"
    out = _run(
        [
            "task=generate",
            *TINY,
            "cluster.n_workers=1",
            f"hydra.run.dir={run_dir}",
            f"data.pan.key={secret}",
        ],
        tmp_path / "home",
    )
    assert out.returncode == 0, out.stderr
    assert str(run_dir) in out.stdout
    for name in ("resolved_config.yaml", "fraud_dask.log", "metrics.json", "dask-report.html"):
        assert (run_dir / name).is_file(), name
    overrides = (run_dir / "overrides.yaml").read_text()
    assert "cluster.n_workers=1" in overrides and "data.pan.key=***" in overrides
    assert "n_workers: 1" in (run_dir / "resolved_config.yaml").read_text()
    # the PAN hash key never reaches the run directory or the console
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert secret not in out.stdout + out.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["rows_written"] == 2000
    # the summary: aligned, counts with separators, the output path
    data_path = tmp_path / "home" / "synthetic" / "transactions"
    assert re.search(r"^  rows_written +2,000$", out.stdout, re.MULTILINE), out.stdout
    assert re.search(rf"^  output +{re.escape(str(data_path))}$", out.stdout, re.MULTILINE)
    log = (run_dir / "fraud_dask.log").read_text()
    assert "dashboard=http://127.0.0.1:" in log
    assert "<html" in (run_dir / "dask-report.html").read_text()[:2000].lower()
    assert _tree(ROOT) == before

    # the same data.path with another generator option: one line before any cluster starts
    other = _run(
        ["task=ingest", *TINY, "data.synthetic.n_rows=3000", f"hydra.run.dir={tmp_path / 'r2'}"],
        tmp_path / "home",
        timeout=120,
    )
    assert other.returncode == 2, other.stdout + other.stderr
    assert other.stderr.strip().splitlines() == [
        f"error: data.path={data_path} holds synthetic data generated with other data.synthetic "
        "options (n_rows: 2000 -> 3000): run task=generate with these options to replace it, or "
        "give this dataset its own folder with data.path=..."
    ]
    assert "cluster=local scheduler=" not in (tmp_path / "r2" / "fraud_dask.log").read_text()


def test_info_and_registry_start_no_cluster(tmp_path: Path) -> None:
    import xgboost as xgb
    from omegaconf import OmegaConf

    from fraud_dask.registry import Registry
    from fraud_dask.train.models.xgboost import XGBoostModel

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (x["a"] > 0.5).astype(int)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, y), num_boost_round=3)
    reg = Registry(str(tmp_path / "reg"))
    reg.register(
        "fraud",
        XGBoostModel(["a", "b"], info={"rows": 300}, booster=booster, best_iteration=2),
        features={"name": "tiny"},
        config=OmegaConf.create({"model": {"kind": "xgboost", "params": {"max_depth": 2}}}),
        metrics={"test": {"average_precision": 0.9347003386727609, "roc_auc": 0.99}},
        training={"fold": "test-0", "start": "2025-01-01", "end": "2025-01-21", "rows": 300},
    )

    shown = _run(
        [
            "task=registry",
            "task.action=show",
            f"registry.path={tmp_path / 'reg'}",
            "registry.name=fraud",
            f"hydra.run.dir={tmp_path / 'show'}",
        ],
        tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    block = shown.stdout.split("fraud_dask task=registry finished")[0].splitlines()
    assert block[0] == "fraud version 1 (aliases: champion)"
    details = dict(line.strip().split(None, 1) for line in block[1:])
    for label in ("path", "stage", "created", "trained", "model", "params", "features", "test"):
        assert label in details, label
    assert details["stage"] == "champion"
    assert details["params"] == "max_depth=2"
    assert "average_precision 0.9347" in details["test"]
    assert "0.9347003386727609" not in shown.stdout

    info = _run(["task=info", f"hydra.run.dir={tmp_path / 'info'}"], tmp_path, timeout=120)
    assert info.returncode == 0, info.stderr
    metrics = json.loads((tmp_path / "info" / "metrics.json").read_text())
    import dask
    import xgboost

    assert metrics["versions"]["dask"] == dask.__version__
    assert metrics["versions"]["xgboost"] == xgboost.__version__
    assert f"xgboost {xgboost.__version__}" in info.stdout
    for run in ("show", "info"):  # neither started a cluster or wrote a performance report
        assert "cluster=local scheduler=" not in (tmp_path / run / "fraud_dask.log").read_text()
        assert not (tmp_path / run / "dask-report.html").exists()


def test_sigterm_stops_a_pipeline_cleanly(tmp_path: Path) -> None:
    import psutil

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraud_dask", *PIPELINE, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = run_dir / "fraud_dask.log"
    deadline = time.monotonic() + 240
    while not (log.exists() and "pipeline 1/4" in log.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the pipeline never started"
        time.sleep(0.2)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers  # the local cluster's processes
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running 180 s after SIGTERM:\n{err[-3000:]}")
    assert proc.returncode == 0, err  # a requested stop, not a failure
    assert not (run_dir / "metrics.json").exists()  # ... and not a finished run either
    assert err.strip().splitlines()[-1] == (
        f"stopped: task=pipeline interrupted by SIGTERM before it finished; "
        f"partial outputs in {run_dir}"
    )
    for noise in ("Traceback", "leaked semaphore", "CommClosedError"):
        assert noise not in out + err, noise
    gone = psutil.wait_procs(workers, timeout=30)[1]
    assert not gone, f"processes left running: {gone}"


def test_default_run_dir_is_under_the_data_home(tmp_path: Path) -> None:
    out = _run(["task=info", "cluster.n_workers=1"], tmp_path)
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "runs").glob("*/*/metrics.json"))
    assert len(runs) == 1


def test_multirun_sweeps_overrides_and_ends_with_a_table(tmp_path: Path) -> None:
    out = _run(["-m", "task=info", "cluster.n_workers=1,2"], tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = sorted(
        json.loads(p.read_text())["n_workers"]
        for p in (tmp_path / "multirun").glob("*/*/*/metrics.json")
    )
    assert metrics == [1, 2]
    (table,) = (tmp_path / "multirun").glob("*/*/multirun_summary.csv")
    rows = list(csv.DictReader(table.open()))
    assert [(r["job"], r["overrides"], r["status"], r["n_workers"]) for r in rows] == [
        ("0", "cluster.n_workers=1", "ok", "1"),
        ("1", "cluster.n_workers=2", "ok", "2"),
    ]
    printed = out.stdout[out.stdout.index("fraud_dask multirun: 2 job(s)") :].splitlines()
    assert printed[1].split()[:4] == ["job", "overrides", "status", "n_workers"]
    assert printed[2].split()[:4] == ["0", "cluster.n_workers=1", "ok", "1"]
    assert printed[-1] == f"table: {table}"


def test_start_cluster_then_attach_with_cluster_existing(tmp_path: Path) -> None:
    sched = tmp_path / "scheduler.json"
    env = _env(tmp_path, FRAUD_DASK_SCHEDULER_FILE=str(sched))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fraud_dask",
            "task=cluster",
            "cluster.n_workers=1",
            f"hydra.run.dir={tmp_path / 'cluster-run'}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not sched.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "scheduler file never appeared"
            time.sleep(0.2)
        address = json.loads(sched.read_text())["address"]
        run_dir = tmp_path / "attached"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "fraud_dask",
                "task=info",
                "cluster=existing",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["scheduler"] == address
        assert metrics["n_workers"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr  # a requested stop
    assert "fraud_dask task=cluster stopped by SIGTERM" in stdout
    assert "Traceback" not in stderr
    assert not sched.exists()  # the file goes away with the cluster
