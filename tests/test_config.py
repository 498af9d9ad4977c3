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


def test_importing_the_package_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fraud_dask; "
        "print(sorted(m for m in ('dask', 'distributed', 'xgboost', 'cupy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
