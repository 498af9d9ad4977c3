"""A worker process killed (SIGKILL) mid-run: training retries and completes, or fails clearly
within its bound; features come out identical to an undisturbed run. Each test has its own
cluster (with nannies, which restart a killed worker), so the shared one is never disturbed."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score
from test_train import PARAMS, conf, make_frame, to_dask

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


class _KillWhen(logging.Handler):
    """Kill a worker ``delay`` seconds after a log line starting with ``prefix``."""

    def __init__(self, client, prefix: str, delay: float) -> None:
        super().__init__()
        self.client, self.prefix, self.delay, self.killed = client, prefix, delay, []

    def emit(self, record: logging.LogRecord) -> None:
        if self.killed or not record.getMessage().startswith(self.prefix):
            return
        self.killed.append(None)

        def kill() -> None:
            time.sleep(self.delay)
            self.killed[0] = _kill_one_worker(self.client)

        threading.Thread(target=kill, daemon=True).start()


def _fit(client, frame, **kw):
    from fraud_dask.train import train

    c = conf(num_boost_round=kw.pop("rounds", 150), params=PARAMS | {"max_depth": 6}, **kw)
    return train(client, to_dask(frame, 4), None, c, "cpu")


def test_training_survives_a_killed_worker(own_client, caplog):
    pdf = make_frame(60_000, seed=21)
    calm = _fit(own_client, pdf)
    handler = _KillWhen(own_client, "xgboost:", delay=1.5)
    logging.getLogger("fraud_dask").addHandler(handler)
    caplog.set_level(logging.INFO, logger="fraud_dask")
    try:
        started = time.monotonic()
        model = _fit(own_client, pdf)
        seconds = time.monotonic() - started
    finally:
        logging.getLogger("fraud_dask").removeHandler(handler)
    assert handler.killed and handler.killed[0], "no worker was killed"
    assert seconds < 300
    assert any("attempt 1 of 3 stopped" in r.getMessage() for r in caplog.records)
    assert model.booster.num_boosted_rounds() == 150
    y = pdf["is_fraud"].to_numpy()
    ap_calm = average_precision_score(y, calm.predict_partition(pdf))
    ap_retried = average_precision_score(y, model.predict_partition(pdf))
    assert ap_retried == pytest.approx(ap_calm, abs=0.01)


def test_training_fails_in_one_line_within_its_bound_when_retries_run_out(own_client, caplog):
    from fraud_dask.train.guard import TrainingFailed

    caplog.set_level(logging.INFO, logger="fraud_dask")
    pdf = make_frame(60_000, seed=22)
    handler = _KillWhen(own_client, "xgboost:", delay=1.5)
    logging.getLogger("fraud_dask").addHandler(handler)
    try:
        started = time.monotonic()
        with pytest.raises(TrainingFailed, match=r"failed on all 1 attempt\(s\).*left the cluster"):
            _fit(own_client, pdf, rounds=400, retries=0, collective_timeout_s=20)
        seconds = time.monotonic() - started
    finally:
        logging.getLogger("fraud_dask").removeHandler(handler)
    assert seconds < 120  # the collective's 20 s, a grace and the restart; never a hang


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
