"""The console: summaries, the sweep table, progress bars, quiet logs, --help text (issue 14)."""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from pathlib import Path

import pytest

from fraud_dask import cli_help, console
from fraud_dask.config import CONFIG_DIR
from fraud_dask.tasks import TASK_CONFS, TaskName


@pytest.fixture
def bars_on():
    console.configure(console.ConsoleConf(progress=console.ProgressMode.on, poll_s=0.1))
    yield
    console.configure(console.ConsoleConf())


def _aligned(text: str) -> dict[str, str]:
    """The ``label  value`` lines of a summary, checked to start their values in one column."""
    out = {}
    starts = set()
    for row in text.splitlines()[1:]:
        match = re.match(r"^  (\S.*?)  +(\S.*)$", row)
        if match is None or row.startswith(("  -", "  WARNINGS")):
            continue
        out[match.group(1)] = match.group(2)
        starts.add(match.start(2))
    assert len(starts) == 1, text  # every value starts in the same column
    return out


def test_summary_shows_counts_metrics_to_four_digits_paths_and_warnings(tmp_path: Path) -> None:
    result = {
        "rows_in": 1_234_567,
        "rows_kept": 1_234_000,
        "rows_quarantined": 567,
        "by_reason": {"null_key": 500, "bad_amount": 67, "oversized_value": 0},
        "report": str(tmp_path / "report.html"),
        "device": "cpu",
        "test": {
            "average_precision": 0.9347003386727609,
            "average_precision_std": 0.0123456,
            "roc_auc": 0.99123,
            "per_fold": {"test-0": {"n_fraud": 120}, "test-1": {"n_fraud": 98}},
        },
        "machine": {"cpus": 2, "memory_bytes": 8 * 2**30, "gpus": 0},
        "stages": {"features": 12.3456, "train": 40.0},
        "versions": {"python": "3.11.7", "dask": "2026.7.1", "xgboost": "3.2.0", "tqdm": "4"},
        "warnings": [{"kind": "fold", "message": "fold test-1 holds 98 frauds"}],
        "wall_time_s": 61.25,
    }
    text = console.summary("pipeline", result, tmp_path)
    assert text.splitlines()[0] == f"fraud_dask task=pipeline finished; run directory: {tmp_path}"
    rows = _aligned(text)
    assert rows["rows_in"] == "1,234,567"
    assert rows["rows_quarantined"] == "567"
    assert rows["quarantined by reason"] == "null_key 500, bad_amount 67"
    assert rows["report"] == str(tmp_path / "report.html")
    assert rows["test.average_precision"] == "0.9347 ± 0.0123"  # never 0.9347003386727609
    assert rows["test.roc_auc"] == "0.9912"
    assert rows["test.folds"] == "test-0 (120 frauds), test-1 (98 frauds)"
    assert rows["machine"] == "cpus 2, memory_bytes 8.0 GiB, gpus 0"
    assert rows["stages"] == "features 12.3456, train 40.0000"
    assert rows["versions"] == "python 3.11.7, dask 2026.7.1, xgboost 3.2.0"
    assert rows["wall time"] == "61.2 s"
    assert "  - fold test-1 holds 98 frauds" in text
    assert "0.9347003386727609" not in text


def test_summary_names_the_signal_that_stopped_a_task(tmp_path: Path) -> None:
    import signal

    try:
        console.request_stop(signal.SIGTERM)
        text = console.summary("serve", {"events": 3}, tmp_path)
    finally:
        console.reset_stop()
    assert text.startswith(f"fraud_dask task=serve stopped by SIGTERM; run directory: {tmp_path}")
    assert console.stop_signal() is None


def test_multirun_table_keeps_full_precision_in_csv_and_rounds_on_screen(tmp_path: Path) -> None:
    jobs = [
        {
            "num": 0,
            "overrides": ["model.params.max_depth=4"],
            "status": "ok",
            "result": {"test": {"average_precision": 0.912345678}, "wall_time_s": 10.5},
        },
        {"num": 1, "overrides": ["model.params.max_depth=6"], "status": "error", "result": None},
    ]
    header, rows = console.multirun_table(jobs)
    assert header == ["job", "overrides", "status", "test.average_precision", "wall_time_s"]
    assert rows[0][3] == "0.912345678" and rows[1][3:] == ["-", "-"]
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    back = list(csv.reader(io.StringIO(buf.getvalue())))
    assert float(back[1][3]) == 0.912345678
    table = console.format_table(header, rows).splitlines()
    assert table[1].split()[-2:] == ["0.9123", "10.5000"]
    assert table[2].split()[2:] == ["error", "-", "-"]
    assert len({len(line) for line in table[:2]}) == 1  # aligned columns


def test_noise_stays_in_the_log_file_and_off_the_console(tmp_path: Path) -> None:
    stream = io.StringIO()
    screen = logging.StreamHandler(stream)
    screen.addFilter(console.NoiseFilter())
    log_file = tmp_path / "fraud_dask.log"
    file_handler = logging.FileHandler(log_file)
    logger = logging.getLogger("distributed.worker.test_console")
    logger.propagate = False
    logger.addHandler(screen)
    logger.addHandler(file_handler)
    try:
        try:
            raise OSError("Stream is closed")
        except OSError:
            logger.exception("Failed to communicate with scheduler during heartbeat.")
        logger.warning("a warning the user can act on")
        logging.getLogger("distributed.comm.tcp").addHandler(screen)
        logging.getLogger("distributed.comm.tcp").info("closing comm")
    finally:
        logger.removeHandler(screen)
        logger.removeHandler(file_handler)
        logging.getLogger("distributed.comm.tcp").removeHandler(screen)
        file_handler.close()
    shown = stream.getvalue()
    assert "a warning the user can act on" in shown
    assert "heartbeat" not in shown and "Traceback" not in shown
    kept = log_file.read_text()
    assert "Failed to communicate with scheduler during heartbeat" in kept
    assert "Traceback" in kept


def test_progress_bar_counts_a_loop_with_rate_and_eta(bars_on, capsys) -> None:
    assert list(console.progress(range(5), desc="folds", unit="fold")) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "folds: 100%" in err and "5/5" in err and "fold/s" in err


def test_progress_is_off_when_asked_and_on_a_pipe(capsys) -> None:
    console.configure(console.ConsoleConf(progress=console.ProgressMode.off))
    try:
        assert list(console.progress(range(3), desc="folds")) == [0, 1, 2]
        console.configure(console.ConsoleConf(progress=console.ProgressMode.auto))
        assert not console.progress_enabled()  # pytest's stderr is not a terminal
        assert list(console.progress(range(3), desc="folds")) == [0, 1, 2]
    finally:
        console.configure(console.ConsoleConf())
    assert capsys.readouterr().err == ""


def test_cluster_bar_follows_the_schedulers_pending_tasks(bars_on, client, capsys) -> None:
    import dask

    def slow(i: int) -> int:
        time.sleep(0.05)
        return i

    with console.cluster_progress(client):
        values = dask.compute(*[dask.delayed(slow)(i) for i in range(40)], scheduler=client)
        time.sleep(0.5)  # one more poll sees nothing pending and closes the bar
    assert list(values) == list(range(40))
    err = capsys.readouterr().err
    assert "cluster: 100%" in err and "task" in err
    assert client.run_on_scheduler(console.scheduler_pending) == 0


def test_help_overview_fits_one_screen_and_lists_every_task_and_group() -> None:
    text = cli_help.overview(CONFIG_DIR)
    lines = text.splitlines()
    assert len(lines) <= 60 and max(len(line) for line in lines) <= 110
    for task in TaskName:
        line = next(line for line in lines if line.startswith(f"  {task} "))
        assert len(line.split(None, 1)[1]) > 10  # one line that says what it does
    for group in ("cluster", "data", "features", "model", "split", "experiment"):
        assert any(line.startswith(f"  {group}:") for line in lines), group
    assert "  cluster:     local*," in text  # the default first, marked


@pytest.mark.parametrize("task", [str(t) for t in TaskName])
def test_task_help_lists_every_option_of_the_tasks_schema(task: str) -> None:
    import dataclasses

    text = cli_help.task_help(task)
    schema = TASK_CONFS[TaskName(task)]
    options = [f.name for f in dataclasses.fields(schema) if f.name != "name"]
    for option in options:
        assert f"  task.{option} " in text or text.rstrip().endswith(f"task.{option}"), option
    assert f"task={task} --cfg job" in text


def test_task_help_describes_options_from_the_schema_comments() -> None:
    text = cli_help.task_help("registry", {"action": "list", "performance_report": False})
    line = next(line for line in text.splitlines() if line.startswith("  task.action "))
    assert line.split()[1] == "list" and "[list|show|promote]" in line
    report = next(line for line in text.splitlines() if "task.performance_report" in line)
    assert report.split()[1] == "false"  # the task's YAML value, not the schema's default
    assert "performance report" in report


def test_workers_keep_shutdown_noise_off_the_console(client) -> None:
    from fraud_dask.worker_logs import QuietShutdown

    client.register_plugin(QuietShutdown())

    def shown_on_stderr(message: str) -> bool:
        import logging

        record = logging.LogRecord("distributed.worker", logging.ERROR, "", 0, message, (), None)
        handlers = [
            h
            for h in logging.getLogger("distributed").handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        assert handlers  # the worker's stderr handler
        return all(bool(h.filter(record)) for h in handlers)

    heartbeat = "Failed to communicate with scheduler during heartbeat."
    for shown in client.run(shown_on_stderr, heartbeat).values():
        assert shown is False
    for shown in client.run(shown_on_stderr, "Worker is at 95% memory usage.").values():
        assert shown is True
