"""The config is typed once (``as_config``): tasks, models and the registry see dataclasses."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from fraud_dask.cluster import LocalClusterConf
from fraud_dask.config import Config, as_config, compose, redacted
from fraud_dask.data.config import DataConf
from fraud_dask.errors import UserError
from fraud_dask.tasks import FoldsTaskConf, IngestTaskConf, RegistryTaskConf, task_conf
from fraud_dask.train import ModelConf, ModelKind
from fraud_dask.train.config import as_model_conf


def test_the_composed_config_becomes_the_chosen_schemas(tmp_path) -> None:
    cfg = as_config(compose(["task=train", "task.k=50", "data.dedupe=false"], run_dir=tmp_path))
    assert isinstance(cfg, Config)
    assert type(cfg.task) is FoldsTaskConf and cfg.task.k == 50
    assert type(cfg.cluster) is LocalClusterConf
    assert isinstance(cfg.data, DataConf) and cfg.data.dedupe is False
    assert cfg.run_dir == str(tmp_path)
    assert as_config(cfg) is cfg  # typed once: a Config passes through
    assert task_conf(cfg, FoldsTaskConf) is cfg.task
    with pytest.raises(UserError, match="RegistryTaskConf"):
        task_conf(cfg, RegistryTaskConf)


def test_a_partial_mapping_is_merged_onto_the_default_composition(tmp_path) -> None:
    partial = {
        "data": {"name": "client_a", "path": str(tmp_path), "columns": {"client_id": "bank"}},
        "task": {"dedupe": True},
        "run_dir": str(tmp_path / "run"),
    }
    cfg = as_config(OmegaConf.create(partial), task="ingest")
    assert type(cfg.task) is IngestTaskConf and cfg.task.dedupe is True
    assert cfg.data.columns == {"client_id": "bank"}  # an open map takes new keys
    assert cfg.registry.name == "fraud-client_a"  # interpolations resolved on the merged values
    assert cfg.model == compose().model  # what the mapping leaves out is the CLI's default
    with pytest.raises(UserError, match="dedup"):
        as_config({"task": {"dedup": True}}, task="ingest")  # the schema refuses a misspelt key


def test_redacted_hides_secrets_of_the_typed_config(tmp_path) -> None:
    cfg = as_config(compose(["data.pan.key=s3cr3t"], run_dir=tmp_path))
    out = OmegaConf.to_container(redacted(cfg))
    assert out["data"]["pan"]["key"] == "***"
    assert out["data"]["name"] == cfg.data.name


def test_a_model_mapping_is_typed_with_its_maps_taken_whole() -> None:
    conf = as_model_conf({"kind": "logistic", "params": {"C": 0.5}, "num_boost_round": 20})
    assert isinstance(conf, ModelConf) and conf.kind is ModelKind.logistic
    assert conf.params == {"C": 0.5}  # not merged with the XGBoost defaults
    assert conf.num_boost_round == 20 and conf.baseline_params == ModelConf().baseline_params
    typed = ModelConf(num_boost_round=7)
    assert as_model_conf(typed) is typed
    assert dataclasses.replace(typed, refit=False).num_boost_round == 7
    with pytest.raises(UserError, match="rounds"):
        as_model_conf({"rounds": 3})
