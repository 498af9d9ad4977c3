"""``task=cluster``: keep the session's cluster up for notebooks and other runs to attach to.

It writes a Dask scheduler file (``cluster.scheduler_file`` or
:func:`fraud_dask.cluster.default_scheduler_file`) and waits until interrupted (or for
``task.lifetime_s`` seconds); the file is removed on the way out. ``scripts/start-cluster`` runs it.
SIGINT (Ctrl-C) and SIGTERM are the way to stop it: the cluster closes and the run ends with
status 0, its summary naming the signal.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraud_dask import console
from fraud_dask.cluster import dashboard_link, default_scheduler_file
from fraud_dask.tasks import ClusterTaskConf, task_conf, task_entry

if TYPE_CHECKING:
    from fraud_dask.config import Config

log = logging.getLogger(__name__)


@task_entry
def run(cfg: Config, client: Any) -> dict[str, Any]:
    """Publish the scheduler address, block until SIGINT/SIGTERM or the lifetime ends."""
    path = Path(cfg.cluster.scheduler_file or default_scheduler_file()).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "address": client.scheduler_info(n_workers=0).get("address"),
        "dashboard": dashboard_link(client),
        "pid": os.getpid(),
    }
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, path)  # readers never see a half-written file
    print(f"scheduler {info['address']}  dashboard {info['dashboard']}", flush=True)
    print(f"scheduler file {path}  (Ctrl-C to stop)", flush=True)
    log.info("cluster up: scheduler file %s", path)

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        console.request_stop(signum)  # the summary says which signal ended it
        stop.set()

    # a requested stop, not an interruption: the task returns and the run ends with status 0
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    lifetime = task_conf(cfg, ClusterTaskConf).lifetime_s
    try:
        stop.wait(lifetime if lifetime > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
    return {
        "address": info["address"],
        "dashboard": info["dashboard"],
        "scheduler_file": str(path),
        "up_s": round(time.monotonic() - started, 1),
    }
