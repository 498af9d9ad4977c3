"""The default pipeline end to end on small synthetic Parquet data, checked against sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

SMALL = [
    "data.synthetic.n_rows=40000",
    "data.synthetic.n_customers=600",
    "data.synthetic.n_days=80",
    "data.synthetic.n_clients=2",
    "data.synthetic.fraud_rate=0.02",
    "data.synthetic.customers_per_block=300",
    "data.synthetic.rows_per_partition=20000",
    "model.num_boost_round=40",
    "model.early_stopping_rounds=10",
    "model.params.max_depth=4",
    "model.device=cpu",
]


def small_cfg(tmp_path, *extra: str):
    from fraud_dask.config import compose

    return compose(
        [f"paths.data_home={tmp_path / 'home'}", *SMALL, *extra], run_dir=tmp_path / "run"
    )


def test_pipeline_writes_metrics_report_and_models(client, tmp_path):
    from fraud_dask.__main__ import _jsonable
    from fraud_dask.split import split_frame
    from fraud_dask.tasks import pipeline
    from fraud_dask.train import Model
    from fraud_dask.train.folds import folds_of
    from fraud_dask.train.frame import read_feature_frame

    cfg = small_cfg(tmp_path)
    out = pipeline.run(cfg, client)
    json.dumps(_jsonable(out))  # metrics.json material

    folds = folds_of(cfg, read_feature_frame(cfg.data, cfg.features, client)[0], "test")
    # the folds the data-aware split chose (80 days at 2% fraud: room for at least two)
    names = [f.name for f in folds]
    assert len(names) >= 2 and names == [f"test-{i}" for i in range(len(names))]
    assert [f["name"] for f in out["split"]["folds"]["test"]] == names
    per_fold = out["test"]["per_fold"]
    assert list(per_fold) == names
    for key in ("roc_auc", "average_precision", "card_precision_at_100"):
        values = [per_fold[f][key] for f in per_fold]
        assert out["test"][key] == pytest.approx(np.mean(values))
        assert out["test"][f"{key}_std"] == pytest.approx(np.std(values))
    assert out["baseline"]["model"] == "logistic"
    assert set(out["stages"]) >= {"generate", "features", "train", "evaluate", "total"}

    # Independent answer: fold test-1 scored by the reloaded model in pandas, scikit-learn.
    frame = read_feature_frame(cfg.data, cfg.features, client)[0]
    fold = folds[1]
    test = split_frame(frame, fold, cfg.split)[1].compute()  # the configured removal rule
    model = Model.load(str(tmp_path / "run" / "models" / "test-1" / "xgboost"))
    scores = model.predict_partition(test)
    y = test["is_fraud"].to_numpy()
    assert per_fold["test-1"]["n"] == len(test)
    assert per_fold["test-1"]["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-9)
    assert per_fold["test-1"]["average_precision"] == pytest.approx(
        average_precision_score(y, scores), abs=1e-9
    )
    # The data are separable enough for a real model to beat chance clearly.
    assert out["test"]["roc_auc"] > 0.8

    html = (tmp_path / "run" / "report.html").read_text()
    assert out["report"] == str(tmp_path / "run" / "report.html")
    for title in (
        "ROC curve",
        "Precision-recall curve",
        "Score distribution by label",
        "Metrics per test day",
        "Feature importance",
        "Threshold table",
    ):
        assert title in html
    assert (tmp_path / "run" / "models" / "test-0" / "logistic" / "coefficients.json").exists()

    # the newest fold's model is registered, as the first version and so the champion
    from fraud_dask.registry import Registry

    assert out["registry"]["version"] == 1 and out["registry"]["fold"] == "test-0"
    registry = Registry.from_conf(cfg.registry)
    assert str(tmp_path / "home") in str(cfg.registry.path)
    bundle = registry.load(cfg.registry.name, "champion")
    saved = Model.load(str(tmp_path / "run" / "models" / "test-0" / "xgboost"))
    assert bytes(bundle.model.booster.save_raw("json")) == bytes(saved.booster.save_raw("json"))
    assert bundle.model.best_iteration == saved.best_iteration
    assert bundle.manifest["fingerprint"]["rows"] > 0
    assert bundle.features["name"] == cfg.features.name
