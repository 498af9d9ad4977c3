"""Tasks: plain functions ``run(cfg, client) -> dict`` that work from Python, a notebook or the CLI.

``python -m fraud_dask task=NAME`` composes the config, opens one cluster session and calls
``fraud_dask.tasks.NAME.run``; the returned dict becomes the run's ``metrics.json``. A task is
thin: it reads its options here and calls library functions; it never imports another task (or
``__main__``). This module imports no dask.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class TaskName(enum.StrEnum):
    """Which task runs (``task.name``): the module ``fraud_dask.tasks.<name>``."""

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


def task_option(cfg: Any, key: str, default: Any) -> Any:
    """``cfg.task.<key>``, or ``default`` where the task config has no such field."""
    task = cfg.get("task") if hasattr(cfg, "get") else None
    value = task.get(key, default) if task is not None and hasattr(task, "get") else default
    return value


def models_dir(cfg: Any) -> str:
    """Where fold models are saved and read: ``task.model_dir``, else ``<run_dir>/models``."""
    given = task_option(cfg, "model_dir", None)
    return str(given) if given else f"{str(cfg.run_dir).rstrip('/')}/models"


def read_features(cfg: Any, client: Any) -> tuple[Any, Any]:
    """:func:`fraud_dask.train.frame.read_feature_frame` of ``cfg.data`` and ``cfg.features``,
    or of the dataset ``task.features_path`` (written by ``task=features``) when set."""
    from fraud_dask.train.frame import read_feature_frame

    path = task_option(cfg, "features_path", None)
    return read_feature_frame(cfg.data, cfg.features, client, features_path=path)


def get_task(name: str | TaskName) -> Callable[[Any, Any], dict[str, Any]]:
    """The ``run`` function of a task, imported on demand (this module imports no dask)."""
    module = importlib.import_module(f"fraud_dask.tasks.{TaskName(name)}")
    run: Callable[[Any, Any], dict[str, Any]] = module.run
    return run
