"""Workers stay quiet about the user's mistakes: the client reports them, on one line.

A task that raises on a worker is logged there ("Compute Failed", with the task and its
traceback, on the worker's stderr, which a local cluster shares with the console) and then
re-raised on the client. For a :class:`~fraud_dask.errors.UserError` (a PAN with no hash key, a
column that cannot be cast) the client's ``error: ...`` line says everything; the worker's record
would bury it. :class:`QuietUserErrors` drops exactly those records; a bug is still logged.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from fraud_dask.errors import UserError

#: the logger and message start of a worker's record of a failed task
WORKER_LOGGER = "distributed.worker"
COMPUTE_FAILED = "Compute Failed"


def _user_error_names() -> set[str]:
    names: set[str] = set()
    todo: list[type[BaseException]] = [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class UserErrorFilter(logging.Filter):
    """Drops a worker's "Compute Failed" record when the task raised a ``UserError``.

    The record carries the exception as text (its ``repr``), so the class is recognised by name
    among ``UserError`` and its subclasses.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(COMPUTE_FAILED):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        names = _user_error_names()
        return not any(isinstance(arg, str) and arg.split("(", 1)[0] in names for arg in args)


class QuietUserErrors(WorkerPlugin):
    """Worker plugin installing :class:`UserErrorFilter` on the worker's logger (and removing it
    when the worker closes). Register with ``client.register_plugin(QuietUserErrors())``."""

    name = "fraud-dask-quiet-user-errors"

    def __init__(self) -> None:
        self._filter: UserErrorFilter | None = None

    def setup(self, worker: Any) -> None:
        self._filter = UserErrorFilter()
        logging.getLogger(WORKER_LOGGER).addFilter(self._filter)

    def teardown(self, worker: Any) -> None:
        if self._filter is not None:
            logging.getLogger(WORKER_LOGGER).removeFilter(self._filter)
            self._filter = None


class QuietShutdown(WorkerPlugin):
    """Worker plugin: :class:`fraud_dask.console.NoiseFilter` on the worker's stderr handlers.

    A local cluster's workers write to the console's stderr; when a run (or a job of a sweep)
    closes its cluster, a worker may log a heartbeat to the closing scheduler or a closed
    connection, with a traceback, that the user cannot act on. The filter stays until the
    worker process ends (those records come after the plugin's teardown).
    """

    name = "fraud-dask-quiet-shutdown"

    def setup(self, worker: Any) -> None:
        from fraud_dask.console import NoiseFilter

        for logger in (logging.getLogger("distributed"), logging.getLogger()):
            for handler in logger.handlers:
                if not isinstance(handler, logging.StreamHandler) or isinstance(
                    handler, logging.FileHandler
                ):
                    continue
                if not any(isinstance(f, NoiseFilter) for f in handler.filters):
                    handler.addFilter(NoiseFilter())
