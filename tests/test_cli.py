"""The CLI as a user runs it: ``python -m fraud_dask`` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


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


def test_help_lists_the_config_groups(tmp_path: Path) -> None:
    out = _run(["--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    for group in ("cluster", "data", "features", "model", "split", "task", "experiment"):
        assert f"{group}:" in out.stdout


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
        ["task=info", "cluster.n_workers=1", f"hydra.run.dir={run_dir}", f"data.pan.key={secret}"],
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
    assert metrics["n_workers"] == 1
    assert metrics["device"] == "cpu" or metrics["gpus_per_worker"]
    log = (run_dir / "fraud_dask.log").read_text()
    assert "dashboard=http://127.0.0.1:" in log
    assert "device=auto resolved to" in log
    assert "<html" in (run_dir / "dask-report.html").read_text()[:2000].lower()
    assert _tree(ROOT) == before


def test_default_run_dir_is_under_the_data_home(tmp_path: Path) -> None:
    out = _run(["task=info", "cluster.n_workers=1"], tmp_path)
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "runs").glob("*/*/metrics.json"))
    assert len(runs) == 1


def test_multirun_sweeps_overrides(tmp_path: Path) -> None:
    out = _run(["-m", "task=info", "cluster.n_workers=1,2"], tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = sorted(
        json.loads(p.read_text())["n_workers"]
        for p in (tmp_path / "multirun").glob("*/*/*/metrics.json")
    )
    assert metrics == [1, 2]


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
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not sched.exists()  # the file goes away with the cluster
