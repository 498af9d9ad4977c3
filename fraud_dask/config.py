"""Hydra structured configs: schemas are dataclasses owned by each stage, values live in YAML.

:func:`register_configs` puts the top-level :class:`Config` in Hydra's ConfigStore (called by the
entry point and by :func:`compose`, never at import time). The YAML files under ``configs/`` are
merged onto these schemas, so a misspelt key or a value of the wrong type fails when the config is
composed, before any cluster starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraud_dask.cluster import ClusterConf
from fraud_dask.compare import CompareConf
from fraud_dask.console import ConsoleConf
from fraud_dask.data.config import DataConf
from fraud_dask.explore.config import ExploreConf
from fraud_dask.features.config import FeaturesConf
from fraud_dask.monitor.config import MonitorConf
from fraud_dask.query.config import SqlConf
from fraud_dask.registry import RegistryConf
from fraud_dask.score.config import ScoreConf
from fraud_dask.split import SplitConf
from fraud_dask.tasks import TaskConf
from fraud_dask.train import ModelConf
from fraud_dask.tune.config import TuneConf, user_config_dir

#: ``configs/`` at the root of the repository (``$FRAUD_DASK_CONFIG_DIR`` overrides).
CONFIG_DIR = Path(
    os.environ.get("FRAUD_DASK_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs")
)


@dataclass
class PathsConf:
    """Where fraud_dask keeps data between runs (generated data, the registry, run dirs)."""

    data_home: str = "${oc.env:FRAUD_DASK_HOME,${oc.env:HOME}/.local/share/fraud_dask}"


@dataclass
class Config:
    """The whole configuration of one run."""

    #: the chosen option's per-kind schema (``LocalClusterConf``, ...), merged in at composition
    cluster: ClusterConf = field(default_factory=ClusterConf)
    data: DataConf = field(default_factory=DataConf)
    features: FeaturesConf = field(default_factory=FeaturesConf)
    model: ModelConf = field(default_factory=ModelConf)
    split: SplitConf = field(default_factory=SplitConf)
    #: the chosen task's schema (``FoldsTaskConf``, ``RegistryTaskConf``, ...)
    task: TaskConf = field(default_factory=TaskConf)
    registry: RegistryConf = field(default_factory=RegistryConf)
    score: ScoreConf = field(default_factory=ScoreConf)
    compare: CompareConf = field(default_factory=CompareConf)
    #: task=monitor: periods, drift measures and alert rules (configs/monitor/)
    monitor: MonitorConf = field(default_factory=MonitorConf)
    #: task=explore: windows, segment columns and the test of emerging risk (configs/explore/)
    explore: ExploreConf = field(default_factory=ExploreConf)
    #: task=sql: the query, its output and the datasets behind its views (configs/sql/)
    sql: SqlConf = field(default_factory=SqlConf)
    #: task=tune: the Optuna study, its budget and search space, screening (configs/tune/)
    tune: TuneConf = field(default_factory=TuneConf)
    paths: PathsConf = field(default_factory=PathsConf)
    #: what the command line shows: progress bars (``console.progress=auto|on|off``)
    console: ConsoleConf = field(default_factory=ConsoleConf)
    #: the run directory; the entry point sets it to Hydra's output directory
    run_dir: str = "${paths.data_home}/runs/interactive"
    seed: int = 42


#: config keys whose values are secrets (matched on the end of the key)
SECRET_KEYS = ("key", "secret", "password", "token", "tls_client_key")


def redacted(cfg: Config | Any) -> Any:
    """The resolved config with secret values (PAN hash keys, credentials) replaced by '***'."""
    from omegaconf import OmegaConf

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: "***" if isinstance(k, str) and k.endswith(SECRET_KEYS) and v else scrub(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    node = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)  # a DictConfig or Config
    plain = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return OmegaConf.create(scrub(plain))


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    from fraud_dask.cluster import register_cluster_schemas
    from fraud_dask.tasks import register_task_schemas

    # Hydra warns on every run about a search-path folder that does not exist (configs/config.yaml
    # names the one task=tune writes experiments into)
    Path(user_config_dir()).mkdir(parents=True, exist_ok=True)
    ConfigStore.instance().store(name="base_config", node=Config)
    register_cluster_schemas()
    register_task_schemas()


def compose(
    overrides: list[str] | None = None, *, run_dir: str | Path | None = None, typed: bool = False
) -> Any:
    """Compose the run config as the CLI would, for notebooks and tests.

    Parameters
    ----------
    overrides : list of str, optional
        Hydra overrides, e.g. ``["data=handbook", "model.device=cpu"]``.
    run_dir : path, optional
        Where the run's artifacts go (the CLI uses Hydra's run directory).
    typed : bool
        Return the :class:`Config` dataclass (``OmegaConf.to_object``: interpolations resolved,
        ``cfg.cluster`` the chosen kind's schema, ``cfg.task`` the task's) instead of the
        DictConfig.

    Returns
    -------
    omegaconf.DictConfig or Config
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(
        config_dir=str(CONFIG_DIR), version_base="1.3", job_name="fraud_dask"
    ):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    if run_dir is not None:
        cfg.run_dir = str(run_dir)
    if typed:
        return as_config(cfg)
    return cfg


def as_config(cfg: Config | Mapping[str, Any], *, task: str | None = None) -> Config:
    """The typed :class:`Config` that tasks and library functions take.

    The CLI's :func:`fraud_dask.__main__.execute` calls it once, on the composed config
    (``OmegaConf.to_object``: interpolations resolved, ``cfg.cluster`` the chosen kind's schema,
    ``cfg.task`` the task's). It is also the one converter for Python and notebook callers
    that hold a DictConfig or a mapping: :func:`compose`'s result is converted as it is; a
    partial mapping (e.g. ``{"data": {...}, "run_dir": ...}``) is merged onto the default
    composition, with ``task=<task>`` when given, as the CLI would compose it with those values
    as overrides. A :class:`Config` is returned unchanged.

    Raises
    ------
    UserError
        A value of the mapping does not fit the schema (the key is named).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from fraud_dask.errors import UserError

    try:
        if isinstance(cfg, Config):
            typed: Any = cfg
        elif OmegaConf.is_config(cfg) and OmegaConf.get_type(cfg) is Config:
            typed = OmegaConf.to_object(cfg)
        else:
            base = compose(([f"task={task}"] if task else []) + _options_named(cfg))
            # open maps (``data.columns``, ``model.params``) take new keys, as overrides with
            # ``+`` would; the schema's dataclasses still refuse a key they do not have
            OmegaConf.set_struct(base, False)
            typed = OmegaConf.to_object(OmegaConf.merge(base, cfg))
        if task and str(typed.task.name) != str(task):
            typed = _with_task(typed, str(task))
    except OmegaConfBaseException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"config: {first}") from exc
    assert isinstance(typed, Config)
    return typed


#: the key that names a group's option in its YAML (``features.name: handbook``)
_OPTION_KEYS = {"data": "name", "features": "name", "model": "kind", "cluster": "kind"}


def _options_named(mapping: Mapping[str, Any]) -> list[str]:
    """Overrides choosing the group options a partial mapping names (``features`` with
    ``name: handbook`` composes ``features=handbook``), so that the mapping's group replaces
    that option's values rather than being merged onto the default option's extra keys."""
    chosen = []
    for group, key in _OPTION_KEYS.items():
        node = mapping.get(group) if hasattr(mapping, "get") else None
        value = node.get(key) if node is not None and hasattr(node, "get") else None
        if isinstance(value, str) and (CONFIG_DIR / group / f"{value}.yaml").is_file():
            chosen.append(f"{group}={value}")
    return chosen


def _with_task(cfg: Config, task: str) -> Config:
    """``cfg`` with the options of ``task`` in place of another task's (a Python caller may run
    ``tasks.ingest.run`` on a config composed for the default task): ``task=<task>``'s
    composed options, with the values of the options both tasks have taken from ``cfg.task``."""
    import dataclasses

    from omegaconf import OmegaConf

    own = OmegaConf.to_object(compose([f"task={task}"]).task)
    for option in dataclasses.fields(own):  # type: ignore[arg-type]
        if option.name != "name" and hasattr(cfg.task, option.name):
            setattr(own, option.name, getattr(cfg.task, option.name))
    return dataclasses.replace(cfg, task=own)  # type: ignore[arg-type]
