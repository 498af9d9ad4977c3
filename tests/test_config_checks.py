"""Values that can be known before a cluster starts fail then, as one ``UserError`` line.

OmegaConf never runs a schema's ``__post_init__`` when Hydra composes, so each group's ranges
are checked by ``check_config``, which ``execute`` runs before ``connect``. Without it
``cluster.n_workers=0`` waits forever for a worker, and a bad size or port fails only once the
cluster is up, with a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fraud_dask.__main__ import check_config, execute
from fraud_dask.config import CONFIG_DIR, compose
from fraud_dask.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    ("cluster.n_workers=0", "cluster.n_workers: got 0, expected a positive integer"),
    ("cluster.threads_per_worker=-1", "cluster.threads_per_worker: got -1"),
    ("cluster.memory_limit=lots", "cluster.memory_limit: got 'lots'"),
    ("cluster=existing cluster.timeout=soon", "cluster.timeout: got 'soon'"),
    ("cluster=kubernetes cluster.worker_memory=0", "cluster.worker_memory: got '0'"),
    ("cluster=local cluster.kind=gpu", "cluster.kind: got 'gpu', expected the kind of its option"),
    ("cluster.dashboard_address=127.0.0.1:99999", "cluster.dashboard_address"),
    ("data.synthetic.n_rows=-5", "data.synthetic.n_rows: got -5"),
    ("data.synthetic.fraud_rate=0.5", "data.synthetic.fraud_rate: got 0.5"),
    ("score.serve.port=70000", "score.serve.port: got 70000, expected a TCP port 0-65535"),
    ("score.serve.port=-1", "score.serve.port: got -1"),
    ("data.max_value_length=0", "data.max_value_length: got 0"),
    ("data.rows_per_partition=0", "data.rows_per_partition: got 0"),
    ("data.label_delay_days=-1", "data.label_delay_days: got -1.0"),
    ("data.timestamp.timezone=Mars/Olympus", "data.timestamp.timezone: got 'Mars/Olympus'"),
    ("data.timestamp.unit=minutes", "data.timestamp.unit: got 'minutes'"),
    ("data.start=yesterday-ish", "data.start: got 'yesterday-ish'"),
    ("data.end=2024-01-01", None),  # start (null) .. end: fine on its own
    ("data.synthetic.n_clients=1", None),  # one client: the drift options are off, not wrong
    ("data.pan.key_file=/no/such/key", "data.pan.key_file: got '/no/such/key'"),
    ("task=monitor monitor.bins=1", "monitor.bins: got 1, expected at least 2"),
]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_DASK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FRAUD_DASK_PAN_KEY", raising=False)


@pytest.mark.parametrize(("override", "message"), BAD, ids=[o for o, _ in BAD])
def test_bad_value_is_a_user_error_naming_the_field(
    tmp_path: Path, override: str, message: str | None
) -> None:
    cfg = compose(override.split(), run_dir=tmp_path)
    if message is None:
        check_config(cfg)
        return
    with pytest.raises(UserError) as info:
        check_config(cfg)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_start_after_end_is_refused(tmp_path: Path) -> None:
    cfg = compose(["data.start=2025-02-01", "data.end=2025-01-01"], run_dir=tmp_path)
    with pytest.raises(UserError, match=r"data\.end: got '2025-01-01', expected a time after"):
        check_config(cfg)


@pytest.mark.parametrize("override", ["cluster.n_workers=0", "score.serve.port=70000"])
def test_execute_fails_before_the_cluster_starts(tmp_path: Path, override: str) -> None:
    # n_workers=0 used to hang here: a LocalCluster with no worker waits for one forever
    cfg = compose(["task=info", override], run_dir=tmp_path / "run")
    started = time.perf_counter()
    with pytest.raises(UserError):
        execute(cfg)
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "run" / "dask-report.html").exists()


def test_every_shipped_config_passes(tmp_path: Path) -> None:
    for group in ("cluster", "data"):
        for option in sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")):
            check_config(compose([f"{group}={option}"], run_dir=tmp_path))
    for option in sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")):
        check_config(compose([f"experiment={option}"], run_dir=tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize(
    "override", ["cluster.n_workers=0", "data.synthetic.n_rows=-5", "score.serve.port=70000"]
)
def test_cli_prints_one_line_and_exits_2(tmp_path: Path, override: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["FRAUD_DASK_HOME"] = str(tmp_path / "home")
    out = subprocess.run(
        [sys.executable, "-m", "fraud_dask", "task=generate", override,
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert override.split("=")[0] in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "home" / "synthetic").exists()
