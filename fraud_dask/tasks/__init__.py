"""Tasks: plain functions ``run(cfg, client) -> dict`` that work from Python, a notebook or the CLI.

``python -m fraud_dask task=NAME`` composes the config, opens one cluster session and calls
``fraud_dask.tasks.NAME.run``; the returned dict becomes the run's ``metrics.json``.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class TaskName(enum.Enum):
    pipeline = "pipeline"
    generate = "generate"
    ingest = "ingest"
    features = "features"
    train = "train"
    evaluate = "evaluate"
    registry = "registry"
    score = "score"
    serve = "serve"
    compare = "compare"
    info = "info"
    cluster = "cluster"
    onboard = "onboard"


class RegistryAction(enum.StrEnum):
    """What ``task=registry`` does (``task.action``)."""

    list = "list"
    show = "show"
    promote = "promote"


@dataclass
class TaskConf:
    """Schema of the ``task`` config group: which task runs, and its own options."""

    name: TaskName = TaskName.pipeline
    # cluster: how long to keep a long-lived cluster up (0 = until interrupted)
    lifetime_s: float = 0.0
    # write a Dask performance report of the run into the run directory
    performance_report: bool = True
    # train / evaluate: which folds (test: the prequential test folds; baseline: one split)
    folds: str = "test"
    # train / evaluate: where fold models are saved (null: <run_dir>/models)
    model_dir: str | None = None
    # train / evaluate: read features written by task=features instead of building them
    features_path: str | None = None
    # evaluate: cards per day for card precision@k, and the false-positive rate for recall@FPR
    k: int = 100
    max_fpr: float = 0.01
    # registry: list | show | promote (a closed set: another value fails at compose time)
    action: RegistryAction = RegistryAction.list
    # ingest: check duplicate tx_id across the whole source (one extra pass and a shuffle);
    # null: as data.dedupe (default true)
    dedupe: bool | None = None
    # ingest / features / score: where the task writes its dataset (null: under the run directory)
    output: str | None = None
    # onboard: the registry model whose champion is compared with the client model (null: the
    # source's own model, registry.name)
    champion: str | None = None


def get_task(name: str | TaskName) -> Callable[[Any, Any], dict[str, Any]]:
    """The ``run`` function of a task, imported on demand (this module imports no dask)."""
    value = name.value if isinstance(name, TaskName) else str(name)
    module = importlib.import_module(f"fraud_dask.tasks.{TaskName(value).value}")
    run: Callable[[Any, Any], dict[str, Any]] = module.run
    return run
