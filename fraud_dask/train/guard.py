"""A distributed fit that cannot hang: bounded, watched, retried on the workers that remain.

XGBoost's collective has no failure detection of its own: when a worker process dies during
``xgboost.dask.train`` its peers wait in an allreduce forever (dmlc/xgboost #9419, #9420). Three
layers make a fit end, one way or the other:

1. the collective runs with a timeout (``dmlc_timeout``, :func:`collective_config`), so a peer
   waiting on a dead worker raises instead of waiting;
2. the client watches the fit from a second thread (:func:`run_guarded`): when a worker that was
   there at the start leaves, the fit gets the collective timeout (plus a grace) to fail, after
   which the surviving workers are restarted (that unblocks any peer still stuck); a fit that
   outlives its bound (``model.timeout_s``, by default derived from the rows and rounds) is
   stopped the same way;
3. a failed attempt is retried up to ``model.retries`` times once the cluster is back to its
   size (the nanny restarts a killed worker; lost partitions are recomputed from their graph),
   then the run fails with one line naming the fold and what happened.

XGBoost's tracker, which may abort the process it lives in when a worker vanishes
(dmlc/xgboost#11804), runs in a process of its own next to a worker
(:mod:`fraud_dask.train.tracker`), not in the scheduler: a LocalCluster's scheduler lives in the
run's process. Its abort fails the attempt (the workers lose their tracker), which is retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fraud_dask.errors import RunFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds a peer may wait in one collective operation (model.collective_timeout_s)
COLLECTIVE_TIMEOUT_S = 60
#: seconds the client waits for the cluster to come back to its size before a retry
WAIT_WORKERS_S = 120.0


class TrainingFailed(RunFailed):
    """A fit failed on every attempt (a lost worker, or a fit past its bound); one line."""


class _Stop(Exception):
    """Why the watcher stopped an attempt."""


def collective_config(timeout_s: float | None) -> Any:
    """XGBoost's collective configuration with a per-operation timeout (None: no timeout)."""
    from xgboost.collective import Config

    if timeout_s is None:
        return Config()
    return Config(timeout=max(1, int(timeout_s)))


def default_bound(rows: int, rounds: int, workers: int) -> float:
    """Seconds a fit may take before it is stopped: generous for the data size (a backstop for
    hangs the other layers miss, not a performance target)."""
    per_worker = rows / max(1, workers)
    return 600.0 + rounds * per_worker / 50_000.0


def _lost_worker_error(error: BaseException) -> bool:
    """Errors a lost worker causes (a task's worker died, a connection closed mid-collective)."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    if isinstance(error, KilledWorker | CommClosedError | ConnectionError):
        return True
    text = str(error).lower()
    return type(error).__name__ == "XGBoostError" and any(
        word in text for word in ("socket", "timeout", "connect", "peer", "collective", "tracker")
    )


def _brief(error: BaseException, limit: int = 300) -> str:
    """The error's message without XGBoost's native stack trace, on one short line."""
    text = " ".join(str(error).split("Stack trace:")[0].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _workers(client: Any) -> set[str]:
    from fraud_dask.cluster import scheduler_workers

    return set(scheduler_workers(client))


def _attempt(
    client: Any, fit: Callable[[], T], *, bound_s: float, grace_s: float, poll_s: float
) -> T:
    """One attempt of ``fit`` under watch; raises :class:`_Stop` when it had to be stopped."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fit()
        except BaseException as exc:  # handed to the watching thread, which re-raises it
            box["error"] = exc

    start_workers = _workers(client)
    thread = threading.Thread(target=target, name="fraud_dask-fit", daemon=True)
    started = time.monotonic()
    thread.start()
    lost_at: float | None = None
    why = ""
    while thread.is_alive():
        thread.join(poll_s)
        if not thread.is_alive():
            break
        now = time.monotonic()
        if lost_at is None:
            gone = start_workers - _workers(client)
            if gone:
                lost_at = now
                why = f"worker(s) {sorted(gone)} left the cluster during the fit"
                log.warning("training: %s; waiting up to %.0f s for the fit to fail", why, grace_s)
        if lost_at is not None and now - lost_at > grace_s:
            break
        if now - started > bound_s:
            why = f"the fit ran past its bound of {bound_s:.0f} s (model.timeout_s)"
            break
    if thread.is_alive():
        # peers still blocked in a collective: restarting them ends the blocked calls (their
        # partitions are recomputed from the graph when needed)
        survivors = sorted(start_workers & _workers(client))
        log.warning("training: %s; restarting workers %s", why, survivors)
        if survivors:
            client.restart_workers(survivors, timeout=WAIT_WORKERS_S, raise_for_error=False)
        thread.join(grace_s)
        raise _Stop(why)
    if "error" in box:
        error = box["error"]
        gone = start_workers - _workers(client)
        if lost_at is None and gone:
            why = f"worker(s) {sorted(gone)} left the cluster during the fit"
        if lost_at is not None or gone or _lost_worker_error(error):
            raise _Stop(f"{why or 'a worker was lost'}: {type(error).__name__}: {_brief(error)}")
        raise error
    return box["result"]


def run_guarded(
    client: Any,
    fit: Callable[[], T],
    *,
    what: str,
    retries: int,
    bound_s: float,
    collective_timeout_s: float | None = COLLECTIVE_TIMEOUT_S,
    poll_s: float = 1.0,
) -> T:
    """Run ``fit()`` (a blocking call that trains on the cluster) so that it cannot hang.

    Parameters
    ----------
    client : distributed.Client
        The cluster session.
    fit : callable
        The whole fit: rebalancing, matrices and training (a retry starts it again).
    what : str
        What is fitted, for messages (e.g. ``"fold test-0"``).
    retries : int
        Attempts after the first one when a worker is lost or the bound passes.
    bound_s : float
        Seconds one attempt may take.
    collective_timeout_s : float or None
        The collective's own timeout: how long the watcher lets a fit fail by itself after a
        worker left, before restarting the survivors.
    poll_s : float
        How often the cluster's workers are checked.

    Returns
    -------
    The result of ``fit()``.

    Raises
    ------
    TrainingFailed
        Every attempt was stopped; the message names ``what``, the attempts and the last cause.
    """
    size = len(_workers(client))
    grace = (collective_timeout_s or 0) + 15.0
    last = ""
    for attempt in range(retries + 1):
        try:
            return _attempt(client, fit, bound_s=bound_s, grace_s=grace, poll_s=poll_s)
        except _Stop as stop:
            last = str(stop)
        if attempt < retries:
            log.warning(
                "training %s: attempt %d of %d stopped (%s); retrying once %d workers are up",
                what,
                attempt + 1,
                retries + 1,
                last,
                size,
            )
            try:
                client.wait_for_workers(size, timeout=WAIT_WORKERS_S)
            except TimeoutError:
                have = len(_workers(client))
                raise TrainingFailed(
                    f"training {what}: the cluster did not come back to {size} workers within "
                    f"{WAIT_WORKERS_S:.0f} s (it has {have}) after: {last}"
                ) from None
    raise TrainingFailed(
        f"training {what} failed on all {retries + 1} attempt(s) (model.retries={retries}); "
        f"last: {last}"
    )
