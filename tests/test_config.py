"""Composition of every option of every config group, through the real configs/ and schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from fraud_dask.config import CONFIG_DIR, compose

GROUPS = ["cluster", "data", "features", "model", "split", "task"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert _options(group), f"configs/{group}/ has no options"


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, o) for g in [*GROUPS, "experiment"] for o in _options(g)],
)
def test_every_option_composes_and_resolves(group: str, option: str, tmp_path: Path) -> None:
    cfg = compose([f"{group}={option}"], run_dir=tmp_path)
    # fully resolvable: every interpolation points somewhere real
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True)
    assert isinstance(resolved, dict)
    assert set(GROUPS) <= set(resolved)
    if group == "task":
        assert resolved["task"]["name"] == option
    if group == "cluster":
        assert resolved["cluster"]["kind"] == option.split("_")[0]


def test_defaults_are_the_synthetic_pipeline_on_a_local_cluster() -> None:
    cfg = compose()
    assert cfg.cluster.kind.value == "local"
    assert cfg.task.name.value == "pipeline"
    assert cfg.cluster.dashboard_address.startswith("127.0.0.1")


def test_command_line_overrides_are_typed() -> None:
    cfg = compose(["cluster.n_workers=3", "cluster.memory_limit=2GiB", "seed=7"])
    assert cfg.cluster.n_workers == 3
    assert cfg.cluster.memory_limit == "2GiB"
    assert cfg.seed == 7


def test_misspelt_key_fails_at_composition() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose(["cluster.n_workerz=3"])
    assert isinstance(info.value.__cause__, ConfigKeyError | ValidationError) or "n_workerz" in str(
        info.value
    )


def test_bad_value_fails_at_composition() -> None:
    with pytest.raises(ConfigCompositionException, match="n_workers"):
        compose(["cluster.n_workers=many"])
    with pytest.raises(ConfigCompositionException):
        compose(["cluster.kind=mainframe"])
    with pytest.raises(ConfigCompositionException):
        compose(["task=nonexistent_task"])


@pytest.mark.parametrize(
    ("overrides", "key", "schema"),
    [
        (["cluster=local", "cluster.namespace=x"], "namespace", "LocalClusterConf"),
        (["cluster=existing", "cluster.n_workers=3"], "n_workers", "ExistingClusterConf"),
        (["cluster=gpu", "cluster.address=tcp://h:1"], "address", "GpuClusterConf"),
        (["cluster=kubernetes", "cluster.processes=false"], "processes", "KubernetesClusterConf"),
    ],
)
def test_a_key_of_another_cluster_kind_fails_at_composition(
    overrides: list[str], key: str, schema: str
) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose(overrides)
    assert f"Key '{key}' not in '{schema}'" in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("overrides", "key", "schema"),
    [
        (["task=info", "task.k=5"], "k", "TaskConf"),
        (["task=train", "task.champion=x"], "champion", "FoldsTaskConf"),
        (["task=registry", "task.lifetime_s=5"], "lifetime_s", "RegistryTaskConf"),
    ],
)
def test_an_option_of_another_task_fails_at_composition(
    overrides: list[str], key: str, schema: str
) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose(overrides)
    assert f"Key '{key}' not in '{schema}'" in str(info.value.__cause__)


def test_each_task_option_has_its_schema() -> None:
    from fraud_dask.tasks import TASK_CONFS, TaskName

    for option in _options("task"):
        node = compose([f"task={option}"]).task
        assert OmegaConf.get_type(node) is TASK_CONFS[TaskName(option)]


def test_each_cluster_option_has_its_kind_schema() -> None:
    from fraud_dask.cluster import CLUSTER_CONFS, ClusterKind

    for option in _options("cluster"):
        node = compose([f"cluster={option}"]).cluster
        assert OmegaConf.get_type(node) is CLUSTER_CONFS[ClusterKind(node.kind)]


def test_typed_compose_gives_the_schemas_dataclasses(tmp_path: Path) -> None:
    from fraud_dask.cluster import ExistingClusterConf
    from fraud_dask.config import Config
    from fraud_dask.tasks import RegistryAction, RegistryTaskConf

    cfg = compose(
        ["cluster=existing", "task=registry", "task.action=show"], run_dir=tmp_path, typed=True
    )
    assert isinstance(cfg, Config)
    assert isinstance(cfg.cluster, ExistingClusterConf) and cfg.cluster.timeout == "30s"
    assert isinstance(cfg.task, RegistryTaskConf) and cfg.task.action is RegistryAction.show
    assert cfg.run_dir == str(tmp_path)
    assert "${" not in cfg.paths.data_home  # interpolations resolved


def test_importing_the_package_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fraud_dask; "
        "print(sorted(m for m in ('dask', 'distributed', 'xgboost', 'cupy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
