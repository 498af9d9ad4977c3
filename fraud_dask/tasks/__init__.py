"""Tasks: plain functions ``run(cfg, client) -> dict`` that work from Python, a notebook or the CLI.

``python -m fraud_dask task=NAME`` composes the config, opens one cluster session and calls
``fraud_dask.tasks.NAME.run``; the returned dict becomes the run's ``metrics.json``. A task is
thin: it reads the typed config (:class:`fraud_dask.config.Config`; its own options through
:func:`task_conf`) and calls library functions; it never imports another task (or ``__main__``).
Each ``run`` is wrapped by :func:`task_entry`, so that a Python caller may pass a DictConfig.
This module imports no dask.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import MISSING

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

#: a task's entry point as :func:`task_entry` leaves it: a typed or an untyped config
TaskRun = Callable[["Config | Mapping[str, Any]", Any], dict[str, Any]]
T = TypeVar("T", bound="TaskConf")


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
    explore = "explore"
    sql = "sql"
    monitor = "monitor"
    tune = "tune"


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
class FeaturesTaskConf(TaskConf):
    """``task=features``: the workers' malloc thresholds while the features are built."""

    name: TaskName = TaskName.features
    # free heap memory each worker keeps for reuse while the features are built (glibc's trim
    # threshold; given back when the task ends). null: Dask's settings, where memory goes back
    # to the system at once at the cost of system time (docs/benchmarks.md, issue 17)
    worker_malloc_trim: str | None = "64MiB"
    # while the features are built, allocations above this size are mapped (glibc's mmap
    # threshold; Dask's setting is 128 KiB)
    worker_malloc_mmap: str | None = "16MiB"


@dataclass
class ScoreTaskConf(TaskConf):
    """``task=score``: batch scoring; ``score.output`` wins over ``task.output``."""

    name: TaskName = TaskName.score
    output: str | None = None


@dataclass
class TuneTaskConf(FoldsTaskConf):
    """``task=tune``: the fold options (``features_path`` to read built features); the study's
    options are the ``tune`` group (:class:`fraud_dask.tune.TuneConf`)."""

    name: TaskName = TaskName.tune


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
    TaskName.features: FeaturesTaskConf,
    TaskName.score: ScoreTaskConf,
    TaskName.tune: TuneTaskConf,
}


def register_task_schemas() -> None:
    """Register each task's schema as ``schema/task/<name>`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in TASK_CONFS.items():
        store.store(group="schema/task", name=str(name), node=schema)


def task_entry(run: Callable[[Config, Client], dict[str, Any]]) -> TaskRun:
    """Mark ``run`` as a task's entry point: it takes the typed :class:`~fraud_dask.config.Config`.

    From the CLI the config is already typed (:func:`fraud_dask.__main__.execute`) and passes
    through unchanged. A Python or notebook caller may hand the task a DictConfig
    (:func:`fraud_dask.config.compose`) or a partial mapping; it is converted once, here, by
    :func:`fraud_dask.config.as_config` (with this task's schema), and nothing below converts
    again.
    """
    name = run.__module__.rsplit(".", 1)[-1]

    @functools.wraps(run)
    def typed(cfg: Config | Mapping[str, Any], client: Any) -> dict[str, Any]:
        from fraud_dask.config import as_config

        return run(as_config(cfg, task=name), client)

    return typed


def task_conf(cfg: Config, schema: type[T]) -> T:
    """``cfg.task`` as ``schema`` (e.g. :class:`FoldsTaskConf`), the task's own options.

    Raises
    ------
    UserError
        The composed task config is of another schema (a task run with another task's options).
    """
    from fraud_dask.errors import UserError

    if not isinstance(cfg.task, schema):
        raise UserError(
            f"task={cfg.task.name}: its config is a {type(cfg.task).__name__}, expected a "
            f"{schema.__name__} (the options of task {cfg.task.name})"
        )
    return cfg.task


def models_dir(cfg: Config) -> str:
    """Where fold models are saved and read: ``task.model_dir``, else ``<run_dir>/models``."""
    given = task_conf(cfg, FoldsTaskConf).model_dir
    return str(given) if given else f"{str(cfg.run_dir).rstrip('/')}/models"


def read_features(cfg: Config, client: Client) -> tuple[Any, Any]:
    """:func:`fraud_dask.train.frame.read_feature_frame` of ``cfg.data`` and ``cfg.features``,
    or of the dataset ``task.features_path`` (written by ``task=features``) when set."""
    from fraud_dask.train.frame import read_feature_frame

    path = task_conf(cfg, FoldsTaskConf).features_path
    return read_feature_frame(cfg.data, cfg.features, client, features_path=path)


def get_task(name: str | TaskName) -> TaskRun:
    """The ``run`` function of a task, imported on demand (this module imports no dask)."""
    module = importlib.import_module(f"fraud_dask.tasks.{TaskName(name)}")
    run: TaskRun = module.run
    return run
