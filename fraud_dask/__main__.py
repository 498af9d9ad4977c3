"""``python -m fraud_dask [overrides]``: compose the config, open one cluster session, run the task.

Every run writes into its Hydra run directory: ``resolved_config.yaml`` and ``overrides.yaml``
(secrets such as PAN hash keys replaced by ``***``), ``fraud_dask.log``, ``metrics.json`` when
the task returns metrics, and ``dask-report.html`` (a Dask performance report of the run).

A mistake in the user's input (a :class:`fraud_dask.errors.UserError`, or a config that Hydra
cannot compose) prints one line ``error: MESSAGE`` on stderr and exits with status 2, without a
traceback and without ``metrics.json`` or a performance report; ``HYDRA_FULL_ERROR=1`` shows the
full traceback instead. Under ``-m`` each failing job prints its line, the other jobs still run,
and the sweep exits with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraud_dask import console
from fraud_dask.config import SECRET_KEYS, redacted
from fraud_dask.errors import RunFailed, UserError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from fraud_dask.config import Config

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

log = logging.getLogger("fraud_dask")

#: exit status of a run that failed because of the user's input (argparse uses 2 as well)
USAGE_ERROR = 2
_FULL_ERROR = "HYDRA_FULL_ERROR"
#: one line per job that failed with a UserError in this process (main() exits 2 if any)
_failed_jobs: list[str] = []
#: the failed jobs whose cause was not the input (RunFailed): main() exits 1 if all are such
_run_failures: list[str] = []
RUN_FAILED = 1
#: the jobs of a multirun (number, overrides, status, result), for the table at its end
_jobs: list[dict[str, Any]] = []
_sweep: dict[str, str] = {}
#: the task and run directory of the job running now (empty once it ended): an interrupt names them
_interrupted: dict[str, str] = {}
#: the name of the table of a sweep's jobs, written into the sweep directory
MULTIRUN_TABLE = "multirun_summary.csv"


def _jsonable(value: Any) -> Any:
    """Make a task's result JSON-serialisable (numpy scalars, paths, enums)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):  # enum
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _summary(task: str, result: dict[str, Any], run_dir: Path) -> str:
    """The aligned block printed when a task ends (:func:`fraud_dask.console.summary`)."""
    return console.summary(task, result, run_dir)


def check_config(cfg: Config) -> None:
    """Fail with a :class:`UserError` on values that can be known before a cluster starts.

    Hydra checks types when composing; each group checks its own ranges here (a worker count,
    a size, a port, a path), because OmegaConf never runs a schema's ``__post_init__``.
    """
    from fraud_dask.cluster import check_cluster_conf
    from fraud_dask.data.config import check_data_conf
    from fraud_dask.monitor.config import check_monitor_conf
    from fraud_dask.score.config import check_serve_conf

    check_cluster_conf(cfg.cluster)
    check_data_conf(cfg.data)
    check_serve_conf(cfg.score.serve)
    check_monitor_conf(cfg.monitor)


def needs_cluster(task: Any) -> bool:
    """Whether a task's ``run`` needs a cluster: its module's ``NEEDS_CLUSTER`` (default True).

    A task that reads a few files (``registry``, ``info``) sets ``NEEDS_CLUSTER = False`` and
    is called with ``client=None``, without the seconds a cluster takes to start."""
    module = sys.modules.get(getattr(task, "__module__", ""), None)
    return bool(getattr(module, "NEEDS_CLUSTER", True))


@contextlib.contextmanager
def _session(cfg: Any, task: Any) -> Iterator[Any]:
    """The task's client: ``connect(cfg.cluster)`` with the cluster's progress bar on the
    console, or None for a task that needs no cluster (:func:`needs_cluster`)."""
    if not needs_cluster(task):
        yield None
        return
    from fraud_dask.cluster import connect
    from fraud_dask.worker_logs import QuietShutdown, QuietUserErrors

    with connect(cfg.cluster) as client:
        client.register_plugin(QuietUserErrors())  # the client reports them, on one line
        client.register_plugin(QuietShutdown())  # no shutdown tracebacks from the workers
        with console.cluster_progress(client):
            yield client


def _check_generated_data(cfg: Any, task: Any) -> None:
    """Synthetic data at ``data.path`` made with other ``data.synthetic`` options ends the run
    with one line before a cluster starts (:func:`~fraud_dask.data.synthetic.manifest.check_reuse`);
    ``task=generate`` replaces it instead, and says so."""
    if str(cfg.data.name) != "synthetic" or not needs_cluster(task):
        return
    if str(cfg.task.name) == "generate":
        return
    from fraud_dask.data.synthetic.manifest import check_reuse

    check_reuse(cfg.data)


def _call(task: Any, cfg: Any, client: Any) -> dict[str, Any]:
    """The task's ``run``, with SIGINT/SIGTERM delivered to it (:func:`console.running_task`)."""
    with console.running_task():
        result: dict[str, Any] = task(cfg, client)
    return result


def execute(cfg: Config | DictConfig) -> dict[str, Any]:
    """Run ``cfg.task`` in one cluster session and write the run directory's artifacts.

    ``cfg`` is the composed DictConfig (the CLI, :func:`fraud_dask.config.compose`) or the
    typed :class:`~fraud_dask.config.Config`. It is typed here, once
    (:func:`fraud_dask.config.as_config`: ``OmegaConf.to_object``), and the task gets the
    dataclasses; ``resolved_config.yaml`` is written from the config as composed, secrets
    redacted.
    """
    from omegaconf import OmegaConf

    from fraud_dask.config import as_config
    from fraud_dask.tasks import get_task

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    composed = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    (run_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(redacted(composed)))
    cfg = as_config(cfg)
    task_name = str(cfg.task.name)
    task = get_task(task_name)  # import errors surface before a cluster starts
    check_config(cfg)
    _check_generated_data(cfg, task)

    started = time.perf_counter()
    report = run_dir / "dask-report.html"
    try:
        with _session(cfg, task) as client:
            if cfg.task.performance_report and client is not None:
                from distributed import performance_report

                # inline: BokehJS embedded, so the report renders on an offline machine
                with performance_report(filename=str(report), mode="inline"):
                    result = _call(task, cfg, client)
            else:
                result = _call(task, cfg, client)
    except (UserError, RunFailed):
        # performance_report writes on the way out; a run the user has to fix and redo leaves
        # no report behind (a bug keeps its report, which may help to find it)
        report.unlink(missing_ok=True)
        raise
    result = _jsonable(dict(result or {}))
    if result:
        result.setdefault("wall_time_s", round(time.perf_counter() - started, 3))
        (run_dir / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(_summary(task_name, result, run_dir), flush=True)
    return result


def _redact_override(override: str) -> str:
    key, sep, value = override.partition("=")
    return (
        f"{key}{sep}***" if sep and key.rstrip("~+").endswith(SECRET_KEYS) and value else override
    )


def _hydra_main(cfg: Any) -> Any:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    cfg.run_dir = hc.runtime.output_dir
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Hydra has just set up logging: known library noise stays in fraud_dask.log only
    console.quiet_console()
    console.configure(cfg.console)
    # Hydra's own .hydra/ copy is switched off (it would keep secrets given as overrides)
    overrides = [_redact_override(o) for o in hc.overrides.task]
    (run_dir / "overrides.yaml").write_text(
        "".join(f"- {json.dumps(o)}\n" for o in overrides) or "[]\n"
    )
    job: dict[str, Any] = {"overrides": overrides, "status": "ok"}
    if hc.mode == RunMode.MULTIRUN:
        job["num"] = hc.job.num
        _sweep["dir"] = str(hc.sweep.dir)
        _jobs.append(job)
    _interrupted.update(task=str(cfg.task.name), run_dir=str(run_dir))
    with _HydraReraises.task():
        try:
            job["result"] = execute(cfg)
            _interrupted.clear()
            return job["result"]
        except (UserError, RunFailed) as exc:
            _interrupted.clear()
            job["status"] = "failed" if isinstance(exc, RunFailed) else "error"
            if _full_error_requested():
                raise
            # Returned, not raised: Hydra would add a line of its own ("Error executing job
            # with overrides ..."), and under -m the other jobs of the sweep still run.
            where = ""
            if hc.mode == RunMode.MULTIRUN:
                where = f"job {hc.job.num} ({' '.join(overrides)}): "
            _report(f"{where}{exc}")
            _failed_jobs.append(str(exc))
            if isinstance(exc, RunFailed):
                _run_failures.append(str(exc))
            return None


def _full_error_requested() -> bool:
    """The user asked for full tracebacks (``HYDRA_FULL_ERROR=1``, as Hydra reads it)."""
    return os.environ.get(_FULL_ERROR) == "1"


def _report(message: str) -> None:
    """Print a user error as the one line ``error: MESSAGE`` on stderr."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _config_error_line(exc: BaseException) -> str:
    """One line from a Hydra composition error and the OmegaConf error under it."""
    from hydra.errors import OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    # a missing option lists Hydra's config search path after the options: not the user's concern
    text = " ".join(str(exc).split("Config search path:")[0].split())
    if isinstance(exc, OverrideParseException):
        text = f"override {exc.override!r}: {text}"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        # OmegaConf appends "full_key: ..., object_type=..." lines; the first line says it all
        first = str(cause).strip().splitlines()[0].strip() if str(cause).strip() else ""
        if first and first not in text:
            text = f"{text.rstrip('.')}: {first}"
    return text


class _HydraReraises:
    """Let Hydra raise composition errors to :func:`main` instead of printing them.

    Hydra prints a config error on several lines and exits with status 1; its documented
    ``HYDRA_FULL_ERROR=1`` makes it re-raise instead, so that :func:`main` can print one line.
    The variable is set here only around Hydra's own work: :meth:`task` takes it away while a
    task runs, so that a bug in a task keeps Hydra's usual short traceback.
    """

    active = False

    @classmethod
    @contextlib.contextmanager
    def around_hydra(cls) -> Iterator[None]:
        os.environ[_FULL_ERROR] = "1"
        cls.active = True
        try:
            yield
        finally:
            cls.active = False
            os.environ.pop(_FULL_ERROR, None)

    @classmethod
    @contextlib.contextmanager
    def task(cls) -> Iterator[None]:
        if not cls.active:
            yield
            return
        os.environ.pop(_FULL_ERROR, None)
        try:
            yield
        except BaseException:
            # a bug: Hydra reports it (and anything after it in a sweep) as it always does
            cls.active = False
            raise
        os.environ[_FULL_ERROR] = "1"  # for the next job's composition under -m


def _launch(wrapped: Any) -> None:
    """Run Hydra's main; a config Hydra cannot compose ends with one line and status 2."""
    if _full_error_requested():
        wrapped()  # Hydra's own behaviour: every error with its full traceback
        return
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    with _HydraReraises.around_hydra():
        try:
            wrapped()
        except (CompactHydraException, OmegaConfBaseException) as exc:
            # only Hydra's own work (composing, launching) gets here: a task's exceptions
            # are UserErrors reported by _hydra_main or bugs that Hydra reports itself
            _report(_config_error_line(exc))
            sys.exit(USAGE_ERROR)


def _stopped() -> None:
    """End a run that SIGINT or SIGTERM interrupted: one line on stderr, status 0 (requested).

    The cluster and the task's context managers have closed by now (the interrupt went
    through them). A task that runs until stopped (``cluster``, ``serve``) never gets here:
    it returns its result and the run ends with status 0.
    """
    name = console.stop_signal() or "SIGINT"
    console.STOP.set()
    console.interrupt_seen()  # a second signal from here on is reported, not raised
    if _interrupted:
        where = f"; partial outputs in {_interrupted['run_dir']}"
        what = f"task={_interrupted['task']} interrupted by {name} before it finished{where}"
    else:
        what = f"interrupted by {name} before any task started"
    print(f"\nstopped: {what}", file=sys.stderr, flush=True)
    sys.exit(console.stop_status())


def _multirun_summary() -> None:
    """Print the table of a sweep's jobs and write it as CSV into the sweep directory."""
    import csv

    header, rows = console.multirun_table(_jobs)
    print(f"\nfraud_dask multirun: {len(_jobs)} job(s)", flush=True)
    # the console shows the first metrics; the CSV holds every column
    print(console.format_table(header, rows, max_columns=10), flush=True)
    sweep = Path(_sweep.get("dir", "."))
    if sweep.is_dir():
        path = sweep / MULTIRUN_TABLE
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"table: {path}", flush=True)


def main() -> None:
    """Console entry point (``python -m fraud_dask`` / ``fraud-dask``)."""
    import hydra

    from fraud_dask.config import CONFIG_DIR, register_configs

    register_configs()
    from fraud_dask.cli_help import register_resolver

    register_resolver()  # --help's text (configs/hydra/help/fraud_dask.yaml)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    # every P2P shuffle logs "initialized"/"deactivated" at WARNING from the scheduler plugin
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    wrapped = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(
        _hydra_main
    )
    console.install_signal_handlers()  # SIGTERM as Ctrl-C: clusters close on the way out
    try:
        _launch(wrapped)
    except KeyboardInterrupt:
        _stopped()
    except BrokenPipeError:  # the reader went away (``--help | head``): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if _jobs:
            _multirun_summary()
    if _failed_jobs:
        sys.exit(RUN_FAILED if len(_run_failures) == len(_failed_jobs) else USAGE_ERROR)


if __name__ == "__main__":
    main()
