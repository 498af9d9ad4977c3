"""Train XGBoost on a fresh local cluster and kill one worker (or the tracker) while it trains.

Run as a script by tests/test_chaos.py and scripts/chaos-train, so that whatever happens to this
process (a LocalCluster's scheduler lives in it) is observed from outside: with the tracker in a
process of its own (:mod:`fraud_dask.train.tracker`) it must end with a result or one clear
failure, never a signal. Prints one JSON line: ``status`` ("ok" with
``rounds``, ``ap`` and ``ap_calm``, or "failed" with ``error`` and ``message``), ``killed``,
``seconds`` and ``seconds_calm`` (the same fit undisturbed, before).

    python tests/chaos_fit.py ROUNDS RETRIES COLLECTIVE_TIMEOUT_S [VICTIM]

VICTIM is ``peer`` (default: SIGKILL the worker that does not host XGBoost's tracker process,
which then sees a peer vanish), ``tracker`` (SIGKILL the worker whose child process is the
tracker) or ``abort`` (SIGABRT the tracker process itself: what dmlc/xgboost#11804 does to the
process the tracker lives in).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _tracker_process(worker_pid: int) -> int:
    """The pid of XGBoost's tracker process, a child of the worker ``worker_pid``."""
    import psutil

    for child in psutil.Process(worker_pid).children():
        if any(part.endswith("tracker.py") for part in child.cmdline()):
            return int(child.pid)
    raise RuntimeError(f"no tracker process under worker {worker_pid}")


def main() -> None:
    from distributed import Client, LocalCluster
    from sklearn.metrics import average_precision_score
    from test_train import PARAMS, conf, make_frame, to_dask

    from fraud_dask.train import train
    from fraud_dask.train.guard import TrainingFailed

    rounds, retries, collective = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    victim = sys.argv[4] if len(sys.argv) > 4 else "peer"
    logging.basicConfig(level=logging.WARNING)
    pdf = make_frame(60_000, seed=21)
    y = pdf["is_fraud"].to_numpy()
    c = conf(
        num_boost_round=rounds,
        params=PARAMS | {"max_depth": 8},
        retries=retries,
        collective_timeout_s=collective,
    )
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
        t0 = time.monotonic()
        calm = train(client, to_dask(pdf, 4), None, c, "cpu")
        calm_seconds = round(time.monotonic() - t0, 1)
        killed: list[int] = []

        def killer() -> None:
            # kill as soon as XGBoost's training tasks run (their keys start with "fn-")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = [k for keys in client.processing().values() for k in keys]
                if any(str(k).startswith("fn-") for k in busy):
                    time.sleep(0.5)
                    # the tracker runs next to the first worker by address
                    pids = sorted(client.run(os.getpid).items())
                    if victim == "abort":
                        pid = _tracker_process(pids[0][1])
                        os.kill(pid, signal.SIGABRT)
                    else:
                        pid = pids[0 if victim == "tracker" else -1][1]
                        os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.05)

        threading.Thread(target=killer, daemon=True).start()
        started = time.monotonic()
        try:
            model = train(client, to_dask(pdf, 4), None, c, "cpu")
        except Exception as exc:  # the outcome is the test's to judge
            out = {"status": "failed", "error": type(exc).__name__, "message": str(exc)}
            if not isinstance(exc, TrainingFailed):
                out["where"] = traceback.format_exc()[-2000:]
        else:
            out = {
                "status": "ok",
                "rounds": model.booster.num_boosted_rounds(),
                "ap": float(average_precision_score(y, model.predict_partition(pdf))),
                "ap_calm": float(average_precision_score(y, calm.predict_partition(pdf))),
            }
        out |= {
            "killed": bool(killed),
            "victim": victim,
            "seconds": round(time.monotonic() - started, 1),
            "seconds_calm": calm_seconds,
        }
        # before the cluster's teardown, which a loaded machine may time out (its own failure)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
