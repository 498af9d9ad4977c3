"""XGBoost's tracker runs in a process of its own next to a worker, never in the scheduler (a
LocalCluster's scheduler is this process): when it aborts (dmlc/xgboost#11804) only that process
ends. The fits that go through it, killed workers and an aborted tracker included, are in
tests/test_chaos.py."""

from __future__ import annotations

import os
import signal
import time

import xgboost.dask as dxgb


def _trackers() -> list[int]:
    """Run on a worker: its child processes that are XGBoost trackers."""
    import psutil

    found = []
    for child in psutil.Process(os.getpid()).children():
        try:
            if any(part.endswith("tracker.py") for part in child.cmdline()):
                found.append(child.pid)
        except psutil.ZombieProcess:
            found.append(child.pid)  # ended, not yet reaped by the worker: still listed
        except psutil.NoSuchProcess:
            pass  # ended and reaped between the listing and the look
    return found


def _wait_gone(client, worker: str, pid: int) -> None:
    deadline = time.monotonic() + 60
    while pid in client.run(_trackers)[worker] and time.monotonic() < deadline:
        time.sleep(0.2)


def test_xgboost_dask_starts_its_tracker_next_to_a_worker_and_its_abort_ends_only_that(client):
    from fraud_dask.train.tracker import install, stop_trackers

    assert install()
    workers = client.run(os.getpid)
    host_worker = sorted(workers)[0]
    before = client.run(_trackers)
    args = client.sync(dxgb._get_rabit_args, client, 2)
    assert args["dmlc_tracker_uri"] == "127.0.0.1" and args["dmlc_tracker_port"] > 0
    started = {w: set(pids) - set(before[w]) for w, pids in client.run(_trackers).items()}
    assert {w: len(p) for w, p in started.items()} == {w: int(w == host_worker) for w in workers}
    (tracker,) = started[host_worker]
    assert tracker not in workers.values() and tracker != os.getpid()

    os.kill(tracker, signal.SIGABRT)
    _wait_gone(client, host_worker, tracker)
    assert tracker not in client.run(_trackers)[host_worker]  # ended, and reaped by its worker
    assert client.run(os.getpid) == workers  # the workers and this process live on

    # a tracker left waiting (a failed fit's) is ended after the fit; an ended one is left be
    client.sync(dxgb._get_rabit_args, client, 2)
    (waiting,) = set(client.run(_trackers)[host_worker]) - set(before[host_worker])
    assert stop_trackers(client) == 1
    _wait_gone(client, host_worker, waiting)
    assert client.run(_trackers) == before
