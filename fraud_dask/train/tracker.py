"""XGBoost's tracker in a process of its own, started next to a worker, never in the scheduler.

``xgboost.dask.train`` starts the collective's tracker (:class:`xgboost.tracker.RabitTracker`)
inside the Dask scheduler's process (``client.run_on_scheduler``). When a worker dies during a
fit the tracker can abort the process it lives in (a ``std::terminate`` in its thread,
dmlc/xgboost#11804), and a :class:`distributed.LocalCluster` keeps its scheduler in the process
that created it: a lost worker could then take the whole run down with SIGABRT, before any
retry. A long-lived scheduler (``cluster=existing``, ``kubernetes``) would die the same way.

:func:`install` makes xgboost.dask start its tracker through :func:`tracker_args` instead: a
child process of one worker (this file run as a script), bound to that worker's
host, which every worker reaches already (the collective connects the workers to each other).
An abort kills that child only; the workers' collective then fails, and the fit guard
(:mod:`fraud_dask.train.guard`) retries it with a new tracker. The child ends with its fit, and
also as soon as the worker that started it is gone (a killed or restarted worker leaves no
tracker behind).

xgboost.dask has no setting for where its tracker runs, so :func:`install` replaces its module
function ``_get_rabit_args`` (same signature, checked; with another xgboost it leaves xgboost
alone and says so). A tracker address the user chose (``coll_cfg.tracker_host_ip`` or the Dask
config ``xgboost.scheduler_address``) keeps xgboost's own placement: that address is the
scheduler's.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import sys
import threading
from typing import Any

from fraud_dask.cluster import scheduler_workers

log = logging.getLogger(__name__)

#: seconds a worker waits for its tracker process to report its address
START_TIMEOUT_S = 120.0
#: on a worker: the tracker processes it started and has not reaped yet, by pid
_CHILDREN: dict[int, asyncio.subprocess.Process] = {}
#: their reapers (held so that they run to the end)
_REAPERS: set[asyncio.Task[None]] = set()
#: on the client: the trackers started for fits, (worker address, pid), until stopped
_STARTED: list[tuple[str, int]] = []
_STARTED_LOCK = threading.Lock()
_INSTALLED: dict[str, Any] = {}


class _Tracker:
    """XGBoost's tracker through its C API (``XGTracker*``, what :class:`xgboost.tracker.
    RabitTracker` calls), loaded from ``lib``: the tracker process starts in a fraction of a
    second, without importing the xgboost package (and scikit-learn with it)."""

    def __init__(self, lib: str, n_workers: int, host: str, timeout: int) -> None:
        import ctypes

        self.lib = ctypes.CDLL(lib)
        self.lib.XGBGetLastError.restype = ctypes.c_char_p
        self.handle = ctypes.c_void_p()
        args = {
            "host": host,
            "n_workers": n_workers,
            "port": 0,
            "dmlc_communicator": "rabit",
            "sortby": 1,  # by task: the ranks xgboost.dask expects
            "timeout": timeout,
        }
        self._call("XGTrackerCreate", self._json(args), ctypes.byref(self.handle))

    @staticmethod
    def _json(args: dict[str, Any]) -> bytes:
        return json.dumps(args).encode()

    def _call(self, name: str, *args: Any) -> None:
        if getattr(self.lib, name)(*args) != 0:
            raise RuntimeError(self.lib.XGBGetLastError().decode(errors="replace"))

    def start(self) -> None:
        self._call("XGTrackerRun", self.handle, self._json({}))

    def wait_for(self) -> None:
        self._call("XGTrackerWaitFor", self.handle, self._json({"timeout": None}))

    def worker_args(self) -> dict[str, Any]:
        import ctypes

        out = ctypes.c_char_p()
        self._call("XGTrackerWorkerArgs", self.handle, ctypes.byref(out))
        assert out.value is not None
        args: dict[str, Any] = json.loads(out.value)
        return args


def serve(lib: str, n_workers: int, host: str, timeout: int, parent: int) -> int:
    """The tracker process's body: start a tracker, print its worker arguments (one JSON line),
    wait for the fit to end; give up as soon as ``parent`` (the worker) is gone.

    Returns the exit status: 0 when the workers shut the tracker down, 1 otherwise.
    """
    tracker = _Tracker(lib, n_workers, host, timeout)
    tracker.start()
    sys.stdout.write(json.dumps(tracker.worker_args()) + "\n")
    sys.stdout.flush()
    done = threading.Event()
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            tracker.wait_for()
        except Exception as exc:  # the fit failed; the workers see it too
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=wait, name="tracker-wait", daemon=True).start()
    while not done.wait(1.0):
        if os.getppid() != parent:
            return 1
    if failed:
        sys.stderr.write(f"fraud_dask tracker: {' '.join(str(failed[0]).split())[:300]}\n")
        return 1
    return 0


async def _reap(proc: asyncio.subprocess.Process) -> None:
    import signal

    code = await proc.wait()
    _CHILDREN.pop(proc.pid, None)
    if code < 0:
        log.warning(
            "XGBoost's tracker process %d ended by %s; the fit it served fails (and is retried)",
            proc.pid,
            signal.Signals(-code).name,
        )
    elif code:
        log.info("XGBoost's tracker process %d ended with status %d", proc.pid, code)


async def start_tracker_process(
    n_workers: int, timeout: int | None, dask_worker: Any = None
) -> dict[str, Any]:
    """Run on a worker (``client.run``): start a tracker process bound to the worker's host.

    Returns the tracker's worker arguments (``dmlc_tracker_uri``, ``dmlc_tracker_port``...) and
    the process's pid (``pid``).
    """
    from distributed.comm import get_address_host
    from xgboost.core import _LIB

    host = get_address_host(dask_worker.address).strip("[]")
    # this file as a script (-P: its folder not on sys.path): only the standard library and
    # the xgboost library file this worker loaded
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",
        os.path.abspath(__file__),
        _LIB._name,
        str(int(n_workers)),
        host,
        str(int(timeout or 0)),
        str(os.getpid()),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        line = b""
    _CHILDREN[proc.pid] = proc
    task = asyncio.ensure_future(_reap(proc))
    _REAPERS.add(task)
    task.add_done_callback(_REAPERS.discard)
    if not line:
        raise RuntimeError(
            f"XGBoost's tracker process on {host} did not start within {START_TIMEOUT_S:.0f} s"
        )
    return {"args": json.loads(line), "pid": proc.pid}


def stop_tracker_process(pid: int) -> bool:
    """Run on a worker: end its tracker process ``pid`` if it still runs (True if it did)."""
    proc = _CHILDREN.get(pid)
    if proc is None or proc.returncode is not None:
        return False
    proc.terminate()
    return True


def stop_trackers(client: Any) -> int:
    """End the tracker processes started for this process's fits that still run.

    A fit that ends normally shuts its tracker down; one that failed may leave it waiting for
    workers that never come (until its worker ends). Called after every attempt.

    Returns how many were still running.
    """
    with _STARTED_LOCK:
        started = list(_STARTED)
        _STARTED.clear()
    if not started:
        return 0
    # a worker that left took its tracker along (asking it would wait for a connect timeout)
    present = set(scheduler_workers(client))
    stopped = 0
    for worker, pid in started:
        if worker not in present:
            continue
        try:
            out = client.run(stop_tracker_process, pid, workers=[worker], on_error="return")
        except Exception:  # the worker is gone, and its tracker with it
            continue
        stopped += out.get(worker) is True
    return stopped


async def tracker_args(
    client: Any, n_workers: int, dconfig: dict[str, Any] | None = None, coll_cfg: Any = None
) -> dict[str, Any]:
    """The collective's arguments, with the tracker in a process of its own next to a worker.

    Same signature and result as ``xgboost.dask._get_rabit_args``, which it replaces.
    """
    from xgboost.collective import Config
    from xgboost.dask.utils import get_address_from_user

    coll_cfg = Config() if coll_cfg is None else coll_cfg
    host, _ = get_address_from_user(dconfig, coll_cfg)
    if host is not None:
        original = _INSTALLED["original"]
        return dict(await original(client, n_workers, dconfig=dconfig, coll_cfg=coll_cfg))
    info = await client.scheduler.identity()
    worker = sorted(info["workers"])[0]
    out = await client.run(
        start_tracker_process, n_workers, coll_cfg.tracker_timeout, workers=[worker]
    )
    with _STARTED_LOCK:
        _STARTED.append((worker, int(out[worker]["pid"])))
    args: dict[str, Any] = coll_cfg.get_comm_config(dict(out[worker]["args"]))
    log.debug("xgboost: tracker next to worker %s at %s", worker, args)
    return args


def install() -> bool:
    """Make ``xgboost.dask`` start its tracker with :func:`tracker_args` (idempotent).

    Returns False, with a warning, when this xgboost has no ``_get_rabit_args`` of the expected
    signature: its own placement (the scheduler's process) is kept.
    """
    import xgboost.dask as dxgb

    current = getattr(dxgb, "_get_rabit_args", None)
    if current is tracker_args:
        return True
    expected = ["client", "n_workers", "dconfig", "coll_cfg"]
    if current is None or list(inspect.signature(current).parameters) != expected:
        if "warned" not in _INSTALLED:
            _INSTALLED["warned"] = True
            log.warning(
                "xgboost %s: no _get_rabit_args(%s); its tracker stays in the scheduler's "
                "process, where a lost worker may abort it (dmlc/xgboost#11804)",
                getattr(sys.modules.get("xgboost"), "__version__", "?"),
                ", ".join(expected),
            )
        return False
    _INSTALLED["original"] = current
    dxgb._get_rabit_args = tracker_args
    return True


def main(argv: list[str]) -> None:
    """``python -P tracker.py LIBXGBOOST N_WORKERS HOST TIMEOUT PARENT_PID``."""
    lib, n_workers, host, timeout, parent = argv
    code = serve(lib, int(n_workers), host, int(timeout), int(parent))
    sys.stdout.flush()
    sys.stderr.flush()
    # no interpreter teardown: freeing a tracker whose thread still runs is what aborts
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
