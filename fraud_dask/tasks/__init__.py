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

from omegaconf import MISSING


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
    """Schema shared by every option of the ``task`` group: which task runs.

    Each task with options of its own has its schema below; ``configs/task/<name>.yaml`` names
    its schema in its defaults list (``/schema/task/<name>@_here_``), so an option of another
    task (``task=info task.k=5``) fails at composition.
    """

    name: TaskName = MISSING
    # write a Dask performance report of the run into the run directory
    performance_report: bool = True


@dataclass
class FoldsTaskConf(TaskConf):
    """``task=pipeline``, ``train``, ``evaluate``: models over the time-based folds."""

    # which folds (test: the prequential test folds; baseline: one split)
    folds: str = "test"
    # where fold models are saved (null: <run_dir>/models)
    model_dir: str | None = None
    # read features written by task=features instead of building them
    features_path: str | None = None
    # cards per day for card precision@k, and the false-positive rate for recall@FPR
    k: int = 100
    max_fpr: float = 0.01


@dataclass
class OnboardTaskConf(FoldsTaskConf):
    """``task=onboard``: the fold options, and the champion to compare with."""

    name: TaskName = TaskName.onboard
    # the registry model whose champion is compared with the client model (null: the source's
    # own model, registry.name)
    champion: str | None = None


@dataclass
class ClusterTaskConf(TaskConf):
    """``task=cluster``: keep a cluster up for others to attach to."""

    name: TaskName = TaskName.cluster
    # how long to keep it up (0 = until interrupted)
    lifetime_s: float = 0.0


@dataclass
class RegistryTaskConf(TaskConf):
    """``task=registry``: list, show or promote model versions."""

    name: TaskName = TaskName.registry
    # a closed set: another value fails at compose time
    action: RegistryAction = RegistryAction.list


@dataclass
class IngestTaskConf(TaskConf):
    """``task=ingest``: check every row of a source, write kept rows and the quarantine."""

    name: TaskName = TaskName.ingest
    # check duplicate tx_id across the whole source (one extra pass and a shuffle);
    # null: as data.dedupe (default true)
    dedupe: bool | None = None
    # where the dataset goes (null: under the run directory)
    output: str | None = None


@dataclass
class ScoreTaskConf(TaskConf):
    """``task=score``: batch scoring; ``score.output`` wins over ``task.output``."""

    name: TaskName = TaskName.score
    output: str | None = None


#: the schema of each task (tasks without options of their own use :class:`TaskConf`)
TASK_CONFS: dict[TaskName, type[TaskConf]] = {
    **{name: TaskConf for name in TaskName},
    TaskName.pipeline: FoldsTaskConf,
    TaskName.train: FoldsTaskConf,
    TaskName.evaluate: FoldsTaskConf,
    TaskName.onboard: OnboardTaskConf,
    TaskName.cluster: ClusterTaskConf,
    TaskName.registry: RegistryTaskConf,
    TaskName.ingest: IngestTaskConf,
    TaskName.score: ScoreTaskConf,
}


def register_task_schemas() -> None:
    """Register each task's schema as ``schema/task/<name>`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in TASK_CONFS.items():
        store.store(group="schema/task", name=str(name), node=schema)


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
