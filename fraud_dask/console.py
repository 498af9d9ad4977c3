"""What ``python -m fraud_dask`` shows on the console: progress, summaries, quiet logs, signals.

- **Progress** (``console.progress``: ``auto``, ``on``, ``off``): :func:`progress` wraps a loop
  (folds, trials, warm start) in a tqdm bar with a rate and an ETA; :func:`cluster_progress`
  draws one bar of the cluster's own work, polled from the scheduler (the tasks waiting, queued
  and processing there), whatever submitted it. Bars go to stderr; ``auto`` draws them only
  when stderr is a terminal, so CI logs, pipes and subprocess tests see none unless asked.
- **Summaries**: :func:`summary` turns a task's result (its ``metrics.json``) into a short aligned
  block (counts, metrics to 4 digits, paths); :func:`multirun_table` makes one table of a
  sweep's jobs.
- **Quiet console**: :func:`quiet_console` filters known library noise (worker heartbeat and
  closed-connection tracebacks at shutdown, deprecation chatter) from the console handlers;
  the run's ``fraud_dask.log`` keeps every record.
- **Signals**: :func:`install_signal_handlers` makes SIGTERM behave as Ctrl-C (a
  ``KeyboardInterrupt`` in the main thread) and records which signal asked the run to stop
  (:data:`STOP`, :func:`stop_signal`), so that context managers close clusters and servers on
  the way out. A task that runs until stopped (``cluster``, ``serve``) catches the interrupt and
  returns its result: the run ends normally, with status 0. An interrupt that escapes a task
  ends the run with one line naming the task and its run directory, also with status 0 (the
  stop was requested); its outputs are incomplete and it writes no ``metrics.json``.

This module imports no dask at import time (the config schema imports :class:`ConsoleConf`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class ProgressMode(enum.StrEnum):
    """When progress bars are drawn (``console.progress``)."""

    auto = "auto"  # only when stderr is a terminal
    on = "on"
    off = "off"


@dataclass
class ConsoleConf:
    """``console``: what the command line prints besides the task's own output."""

    # progress bars on stderr: auto (only when stderr is a terminal), on, off
    progress: ProgressMode = ProgressMode.auto
    # seconds between two polls of the scheduler for the cluster's progress bar
    poll_s: float = 0.5


_settings = ConsoleConf()


def configure(conf: ConsoleConf | Any) -> None:
    """Take ``cfg.console`` for this process (the entry point calls it once per run)."""
    _settings.progress = ProgressMode(str(conf.progress))
    _settings.poll_s = float(conf.poll_s)


def progress_enabled() -> bool:
    """Whether bars are drawn: ``console.progress``, and for ``auto`` whether stderr is a tty."""
    mode = _settings.progress
    if mode == ProgressMode.on:
        return True
    if mode == ProgressMode.off:
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(
    items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Iterate over ``items`` with a bar on stderr: count, percentage, rate and ETA.

    Parameters
    ----------
    items : iterable
        The loop's items (folds, trials, batches).
    desc : str
        What is counted, shown before the bar (``"folds"``).
    total : int, optional
        The number of items when ``len(items)`` does not say.
    unit : str
        The unit after the rate (``"fold"``).

    Yields
    ------
    Each item of ``items``. Without a bar (``console.progress=off``, or ``auto`` when stderr is
    not a terminal) this is ``iter(items)``.
    """
    if not progress_enabled():
        yield from items
        return
    from tqdm import tqdm

    with tqdm(
        items,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
        mininterval=0.5,
    ) as bar:
        yield from bar


@contextlib.contextmanager
def progress_bar(*, desc: str, total: int | None = None, unit: str = "it") -> Iterator[Any]:
    """A bar to ``update(n)`` by hand (when the loop is not a Python ``for``): a tqdm bar, or an
    object whose ``update`` does nothing when bars are off."""
    if not progress_enabled():
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(
        desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5
    ) as bar:
        yield bar


class _NoBar:
    """The bar of a run without bars."""

    def update(self, n: float = 1) -> None:
        """Nothing to draw."""

    def set_postfix_str(self, text: str) -> None:
        """Nothing to draw."""


# ---------------------------------------------------------------------------------------------
# the cluster's progress, polled from the scheduler

_PENDING = ("waiting", "queued", "processing", "no-worker")


def scheduler_pending(dask_scheduler: Any) -> int:
    """Tasks on the scheduler not yet done (waiting, queued, processing, no-worker).

    Runs on the scheduler (``client.run_on_scheduler``); it reads the per-prefix state counts
    the scheduler keeps for its dashboard, so a poll costs one pass over the task prefixes."""
    return int(
        sum(
            prefix.states.get(state, 0)
            for prefix in dask_scheduler.task_prefixes.values()
            for state in _PENDING
        )
    )


class _ClusterBar:
    """One bar per burst of cluster work: it opens when tasks are pending and closes when none
    are. Tasks submitted while it is open raise its total; done = total - pending."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.pending = 0

    def update(self, pending: int) -> None:
        from tqdm import tqdm

        if pending and self.bar is None:
            self.bar = tqdm(
                total=pending,
                desc="cluster",
                unit="task",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5,
            )
            self.pending = pending
            return
        if self.bar is None:
            return
        if pending > self.pending:  # new work arrived
            self.bar.total += pending - self.pending
        self.pending = pending
        self.bar.n = self.bar.total - pending
        self.bar.refresh()
        if pending == 0:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def cluster_progress(client: Any) -> Iterator[None]:
    """Draw the cluster's progress while the block runs (when bars are on).

    A background thread asks the scheduler every ``console.poll_s`` seconds how many tasks are
    pending (:func:`scheduler_pending`) and draws a bar for each burst of work, with its rate
    and ETA. A scheduler that cannot run the poll (one without fraud_dask installed) gets no bar.
    """
    if client is None or not progress_enabled():
        yield
        return
    done = threading.Event()
    interval = _settings.poll_s

    def poll() -> None:
        bar = _ClusterBar()
        try:
            while not done.wait(interval):
                bar.update(int(client.run_on_scheduler(scheduler_pending)))
        except Exception as exc:  # the scheduler is closing, or cannot import fraud_dask
            log.debug("cluster progress stopped: %s", exc)
        finally:
            bar.close()

    thread = threading.Thread(target=poll, name="fraud_dask-cluster-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# summaries

_METRIC_ORDER = (
    "average_precision",
    "roc_auc",
    "card_precision_at_100",
    "recall_at_fpr",
)
_SKIP = {"warnings", "action", "versions", "by_reason", "per_fold", "wall_time_s"}
#: library versions shown by the summary of ``task=info`` (and any result with ``versions``)
_LIBRARIES = (
    "python",
    "fraud_dask",
    "dask",
    "distributed",
    "xgboost",
    "pandas",
    "numpy",
    "pyarrow",
)
_MAX_LINES = 40


def fmt(value: Any, key: str = "") -> str:
    """A value as the summary shows it: floats to 4 digits, integers with thousands separators,
    a size (``key`` ending in ``_bytes``) in GiB."""
    if key.endswith("_bytes") and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value / 2**30:,.1f} GiB"
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4f}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {fmt(v, str(k))}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _short(value: Any) -> bool:
    """A list or mapping of scalars short enough for one line."""
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return False
    return 0 < len(items) <= 8 and all(_scalar(v) for v in items) and len(fmt(value)) <= 100


def summary_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(label, value)`` lines of a task's summary, in the order they are printed.

    Scalars at the top level (counts, paths, names) and one level down (``test.roc_auc``), the
    headline metrics first with their spread across folds (``0.9512 ± 0.0123``), short lists
    and mappings on one line; long ones are left to ``metrics.json``.
    """
    rows: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        rows.append((label, fmt(value, label)))

    def metrics(prefix: str, node: Mapping[str, Any]) -> None:
        """The numbers of a nested result (``test``): headline metrics first, at most 8."""
        shown = 0
        for key in dict.fromkeys((*_METRIC_ORDER, *node)):
            value = node.get(key)
            if key.endswith(("_std", "_folds")) or not isinstance(value, int | float):
                continue  # a spread or a fold count goes with its metric
            if shown >= 8:
                continue
            if isinstance(value, bool):
                continue
            shown += 1
            std = node.get(f"{key}_std")
            spread = f" ± {fmt(std)}" if isinstance(std, float) and std else ""
            rows.append((f"{prefix}{key}", f"{fmt(value, key)}{spread}"))

    scalars = {k: v for k, v in result.items() if k not in _SKIP and _scalar(v)}
    for key, value in scalars.items():
        add(key, value)
    for key, value in result.items():
        if key in _SKIP or key in scalars:
            continue
        if _short(value):
            add(key, value)
        elif isinstance(value, Mapping):
            metrics(f"{key}.", value)
            per_fold = value.get("per_fold")
            if isinstance(per_fold, Mapping) and per_fold:
                folds = [
                    f"{name} ({fmt(f.get('n_fraud'))} frauds)" if isinstance(f, Mapping) else name
                    for name, f in per_fold.items()
                ]
                add(f"{key}.folds", ", ".join(folds))
        elif isinstance(value, list) and value:
            add(key, f"{len(value):,} items (in metrics.json)")
    reasons = result.get("by_reason")
    if isinstance(reasons, Mapping) and any(reasons.values()):
        add("quarantined by reason", ", ".join(f"{k} {v:,}" for k, v in reasons.items() if v))
    versions = result.get("versions")
    if isinstance(versions, Mapping) and versions:  # library versions (task=info)
        shown = [f"{k} {versions[k]}" for k in _LIBRARIES if versions.get(k)]
        add("versions", ", ".join(shown) or fmt(versions))
    elif isinstance(versions, list):  # registry versions (task=registry)
        add("versions", len(versions))
    if isinstance(result.get("wall_time_s"), int | float):
        rows.append(("wall time", f"{result['wall_time_s']:.1f} s"))
    if len(rows) > _MAX_LINES:
        rows = [
            *rows[: _MAX_LINES - 1],
            ("...", f"{len(rows) - _MAX_LINES + 1} more in metrics.json"),
        ]
    return rows


def summary(task: str, result: Mapping[str, Any], run_dir: Path | str) -> str:
    """The block printed when a task ends: its results aligned, then its warnings."""
    lines = [f"fraud_dask task={task} finished; run directory: {run_dir}"]
    stopped = stop_signal()
    if stopped:
        lines[0] = f"fraud_dask task={task} stopped by {stopped}; run directory: {run_dir}"
    rows = summary_rows(result)
    width = max((len(label) for label, _ in rows), default=0)
    lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
    warnings = result.get("warnings")
    if isinstance(warnings, list) and warnings:
        lines.append(f"  WARNINGS ({len(warnings)}; all in metrics.json):")
        for w in warnings[:8]:
            lines.append(f"  - {w.get('message', w) if isinstance(w, Mapping) else w}")
        if len(warnings) > 8:
            lines.append(f"  - ... and {len(warnings) - 8} more")
    return "\n".join(lines)


def key_metrics(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The few numbers of a job that a sweep's table compares: the headline metrics one level
    down (``test.average_precision``) first, then top-level numbers; no paths or lists."""
    out: dict[str, Any] = {}
    items = list((result or {}).items())
    for key, value in items:  # the headline metrics first
        if isinstance(value, Mapping) and key not in _SKIP:
            for metric in _METRIC_ORDER:
                for name in (metric, f"{metric}_std"):
                    sub = value.get(name)
                    if isinstance(sub, int | float) and not isinstance(sub, bool):
                        out[f"{key}.{name}"] = sub
    for key, value in items:
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in _SKIP:
            out[key] = value
    wall = (result or {}).get("wall_time_s")
    if isinstance(wall, int | float):
        out["wall_time_s"] = wall
    return out


def multirun_table(jobs: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a sweep's table: job number, overrides, status, key metrics.

    Each job is a mapping with ``num``, ``overrides`` (list of str), ``status`` (``ok``,
    ``error``, ``failed``) and ``result`` (the task's result or None). Metric columns are the
    union of the jobs' :func:`key_metrics`, in the order first seen; a job without one has ``-``.
    Values are raw (full precision) for the CSV; :func:`format_table` rounds for the console.
    """
    metrics = [key_metrics(job.get("result")) for job in jobs]
    columns: list[str] = []
    for row in metrics:
        columns.extend(c for c in row if c not in columns)
    # the overrides every job shares say nothing about the difference between them
    common = set.intersection(*(set(job.get("overrides") or []) for job in jobs)) if jobs else set()
    if len(jobs) < 2:
        common = set()
    header = ["job", "overrides", "status", *columns]
    rows = [
        [
            str(job["num"]),
            " ".join(o for o in job.get("overrides") or [] if o not in common),
            str(job["status"]),
            *(repr(m[c]) if isinstance(m.get(c), float) else str(m.get(c, "-")) for c in columns),
        ]
        for job, m in zip(jobs, metrics, strict=True)
    ]
    return header, rows


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], max_columns: int | None = None
) -> str:
    """An aligned plain-text table; numbers right-aligned and floats to 4 digits.

    ``max_columns`` keeps the first columns only (the console's width; the CSV keeps all)."""
    if max_columns is not None and len(header) > max_columns:
        header = list(header[:max_columns])
        rows = [list(r[:max_columns]) for r in rows]

    def cell(text: str) -> str:
        try:
            number = float(text)
        except ValueError:
            return text
        return fmt(number) if "." in text or "e" in text else fmt(int(number))

    shown = [[cell(c) for c in row] for row in rows]
    numeric = [
        all(_is_number(row[i]) or row[i] == "-" for row in rows) and bool(rows)
        for i in range(len(header))
    ]
    width = [max([len(h), *(len(r[i]) for r in shown)]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(width[i]) if numeric[i] else v.ljust(width[i]) for i, v in enumerate(values)
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in shown)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# a console without noise the user cannot act on

#: messages (or their logger) that reach the console but need no action: kept in fraud_dask.log
NOISE = (
    "Failed to communicate with scheduler during heartbeat",
    "CommClosedError",
    "StreamClosedError",
    "Stream is closed",
    "leaked semaphore objects",
    "Connection to the scheduler was lost",
    "Event loop was unresponsive",
    "Worker process still alive after",
    "Closing dangling stream",
    "Attempted to run task",
    "Unclosed client session",
    "Perhaps you already have a cluster running",  # the dashboard's port: the log names the link
    "exception=AllExit()",  # asyncio: a gather the stop cancelled ("never retrieved")
)
_NOISY_LOGGERS = ("distributed.comm", "distributed.batched", "tornado.application")


class NoiseFilter(logging.Filter):
    """Drop known library noise (:data:`NOISE`) from a console handler; file handlers keep it.

    A record is noise when its text or its exception's text holds one of :data:`NOISE`, when it
    comes from a library's connection plumbing (:data:`_NOISY_LOGGERS`) below ERROR, or when it
    is a library's DeprecationWarning/FutureWarning routed through ``py.warnings``."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__} {record.exc_info[1]}"
        if any(marker in text for marker in NOISE):
            return False
        if record.name.startswith(_NOISY_LOGGERS) and record.levelno < logging.ERROR:
            return False
        if record.name == "py.warnings" and (
            "DeprecationWarning" in text or "FutureWarning" in text
        ):
            return "fraud_dask" in text.split(":", 1)[0]  # ours stay visible
        return True


def quiet_console() -> None:
    """Add :class:`NoiseFilter` to the root logger's console handlers (not its file handlers),
    and route Python warnings through logging so that they land in ``fraud_dask.log`` too."""
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            if not any(isinstance(f, NoiseFilter) for f in handler.filters):
                handler.addFilter(NoiseFilter())


# ---------------------------------------------------------------------------------------------
# signals

#: set once SIGINT or SIGTERM asked the run to stop
STOP = threading.Event()
_stopped_by: list[str] = []


def stop_signal() -> str | None:
    """The name of the signal that asked this run to stop (``"SIGTERM"``), or None."""
    return _stopped_by[0] if _stopped_by else None


def stop_status() -> int:
    """The exit status of a run whose task SIGINT or SIGTERM interrupted: 0, a requested stop.

    An orchestrator (systemd, Kubernetes, a shell script) that sends SIGTERM asked for the stop
    and should not see it as a failure. What tells an interrupted run from a finished one is
    the ``stopped: ...`` line on stderr and the missing ``metrics.json`` in its run directory.
    """
    return 0


def request_stop(signum: int) -> None:
    """Record a stop request (for code that handles SIGINT/SIGTERM itself, e.g. in an event
    loop): :func:`stop_signal` names it and the summary says the task was stopped."""
    if not _stopped_by:
        _stopped_by.append(signal.Signals(signum).name)
    STOP.set()


#: the interrupt reached the entry point (or the task returned): no more re-raising
_delivered = threading.Event()
#: the main thread is inside a task's ``run`` (see :func:`running_task`)
_in_task = threading.Event()
_extra: list[int] = []
#: seconds after which an interrupt that never reached the entry point is raised again
REINTERRUPT_S = 10.0


def interrupt_seen() -> None:
    """Say that the stop request was received: a task that catches the ``KeyboardInterrupt``
    to stop gracefully (a server's drain) calls it, so that it is not interrupted again."""
    _delivered.set()


@contextlib.contextmanager
def running_task() -> Iterator[None]:
    """Around a task's ``run``: an interrupt that leaves it is recorded as received; one that
    never shows up (raised inside a finalizer or a callback, where Python ignores exceptions)
    is raised again by :func:`_watchdog` while the task still runs."""
    _in_task.set()
    try:
        yield
    except KeyboardInterrupt:
        _delivered.set()
        raise
    finally:
        _in_task.clear()
        if STOP.is_set():
            _delivered.set()  # the task returned after a stop request: it handled it


def _watchdog() -> None:
    while not _delivered.wait(REINTERRUPT_S):
        if _in_task.is_set():
            import _thread

            log.info("the stop request has not reached the task yet: interrupting again")
            _thread.interrupt_main(signal.SIGINT)  # _on_signal again, in the main thread


def _on_signal(signum: int, frame: FrameType | None) -> None:
    first = not STOP.is_set()
    request_stop(signum)
    if not _delivered.is_set():
        if first:
            threading.Thread(target=_watchdog, name="fraud_dask-stop", daemon=True).start()
        raise KeyboardInterrupt
    # a second signal while the run closes its cluster: say so once more, a third one forces
    _extra.append(signum)
    if len(_extra) >= 2:
        os._exit(128 + signum)
    print(
        f"\n{signal.Signals(signum).name}: still shutting down the cluster; "
        "send it again to exit at once (without cleanup)",
        file=sys.stderr,
        flush=True,
    )


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` in the main thread until it reaches the
    entry point (then a second signal during the shutdown is reported, a third exits at once)
    and set :data:`STOP`."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


def reset_stop() -> None:
    """Forget a stop request (between the jobs of a sweep, and in tests)."""
    STOP.clear()
    _stopped_by.clear()
    _extra.clear()
    _delivered.clear()
