"""A worker process killed (SIGKILL) mid-run: training retries and completes, or fails clearly
within its bound; features come out identical to an undisturbed run. Each test has its own
cluster (with nannies, which restart a killed worker), so the shared one is never disturbed."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def own_client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _kill_one_worker(client) -> int:
    pids = client.run(os.getpid)
    address, pid = sorted(pids.items())[0]
    os.kill(pid, signal.SIGKILL)
    return pid


def _chaos_fit(rounds: int, retries: int, collective_timeout_s: int, victim: str) -> dict:
    """tests/chaos_fit.py in its own process, so that its end is observed from outside: a
    LocalCluster's scheduler lives in it, and XGBoost's tracker must not (it may abort the process
    it lives in when a worker vanishes, dmlc/xgboost#11804): a signal fails the test."""
    script = Path(__file__).with_name("chaos_fit.py")
    args = [sys.executable, str(script), str(rounds), str(retries), str(collective_timeout_s)]
    done = subprocess.run([*args, victim], capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode >= 0, f"killed by signal {-done.returncode}: {done.stderr[-3000:]}"
    # the result line is printed before the test cluster's own teardown
    lines = done.stdout.strip().splitlines()
    assert lines, f"no result (status {done.returncode}): {done.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.mark.parametrize(
    "victim",
    [
        "peer",  # SIGKILL a worker: the tracker sees a peer vanish
        "abort",  # SIGABRT the tracker's own process: what #11804 does to its host process
    ],
)
def test_training_survives_a_killed_worker_or_tracker(victim):
    out = _chaos_fit(rounds=400, retries=2, collective_timeout_s=60, victim=victim)
    assert out["killed"], "nothing was killed"
    assert out["status"] == "ok", out
    assert out["seconds"] < 300
    assert out["rounds"] == 400
    assert out["ap"] == pytest.approx(out["ap_calm"], abs=0.01)


def test_training_fails_in_one_line_within_its_bound_when_retries_run_out():
    out = _chaos_fit(rounds=400, retries=0, collective_timeout_s=20, victim="peer")
    assert out["killed"], "no worker was killed"
    assert out["status"] == "failed" and out["error"] == "TrainingFailed", out
    assert "failed on all 1 attempt(s)" in out["message"] and "\n" not in out["message"]
    assert out["seconds"] < 120  # the collective's 20 s, a grace and the restart; never a hang


def test_features_are_identical_when_a_worker_dies_mid_compute(own_client):
    import dask.dataframe as dd

    from fraud_dask.config import compose
    from fraud_dask.features.build import build_features

    rng = np.random.default_rng(3)
    n = 120_000
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 40 * 86400, n)), unit="s"
    )
    pdf = pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype="int64"),
            "ts": ts,
            "card_id": rng.integers(0, 3000, n).astype("int64"),
            "terminal_id": rng.integers(0, 500, n).astype("int64"),
            "amount": rng.gamma(2.0, 30.0, n),
            "is_fraud": (rng.uniform(size=n) < 0.01).astype("int8"),
        }
    )
    pdf["label_ts"] = pdf["ts"] + pd.Timedelta(days=7)
    features = compose(["features=handbook"]).features
    frame = dd.from_pandas(pdf, npartitions=8)
    calm = build_features(frame, features).compute().sort_values("tx_id")
    timer = threading.Timer(1.0, _kill_one_worker, args=(own_client,))
    timer.start()
    hit = build_features(frame, features).compute().sort_values("tx_id")
    timer.join()
    pd.testing.assert_frame_equal(hit.reset_index(drop=True), calm.reset_index(drop=True))


def test_batch_scores_and_metrics_are_identical_when_a_worker_dies(own_client):
    """Scoring and evaluation are plain dask graphs: a killed worker's tasks are recomputed."""
    import time

    from test_train import conf, make_frame, to_dask

    from fraud_dask.metrics import evaluate
    from fraud_dask.train import train

    model = train(own_client, to_dask(make_frame(20_000, seed=5), 2), None, conf(), "cpu")
    frame = to_dask(make_frame(300_000, seed=6, days=30), 12)

    def scored_and_metrics():
        scored = model.score(frame)
        return scored.compute(), evaluate(scored, by_day=True, curves=False)

    calm_scores, calm_metrics = scored_and_metrics()
    killed_at: list[float] = []

    def kill() -> None:
        _kill_one_worker(own_client)
        killed_at.append(time.monotonic())

    timer = threading.Timer(0.5, kill)
    timer.start()
    hit_scores, hit_metrics = scored_and_metrics()
    finished = time.monotonic()
    timer.join()
    assert killed_at and killed_at[0] < finished, "the worker died after the work was done"
    pd.testing.assert_frame_equal(
        hit_scores.sort_values("tx_id").reset_index(drop=True),
        calm_scores.sort_values("tx_id").reset_index(drop=True),
    )
    assert hit_metrics == calm_metrics


def test_the_fit_guard_does_not_take_healthy_workers_for_lost():
    """The client's periodic refresh of its scheduler cache (here every 5 ms) must not make a
    healthy fit look as if its workers had left: the guard lets it finish, restarts nothing."""
    import time

    import dask
    from distributed import Client, LocalCluster

    from fraud_dask.train.guard import _attempt, _workers

    with (
        dask.config.set({"distributed.client.scheduler-info-interval": "5ms"}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        assert all(len(_workers(client)) == 2 for _ in range(300))

        def fit() -> str:
            time.sleep(3)
            return "fitted"

        assert _attempt(client, fit, bound_s=60, grace_s=0.3, poll_s=0.01) == "fitted"
        assert client.run(os.getpid) == pids  # no worker was restarted
