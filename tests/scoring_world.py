"""A small real world for the scoring tests: synthetic Parquet, a trained model, a registry.

Not a test module: ``test_score*.py``, ``test_serve*.py`` and ``test_compare*.py`` build it once
per session through :func:`build_world` (real generator, real data layer, real feature builder,
real distributed XGBoost training, real registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

#: A small spec that exercises every kind of feature the features package offers.
FEATURES: dict[str, Any] = {
    "name": "scoring-test",
    "calendar": {"fields": ["hour", "weekday", "weekend", "night"]},
    "windows": [
        {
            "entity": ["card_id"],
            "windows": ["1h", "1d", "7d"],
            "aggs": ["count", "sum", "mean", "std", "min", "max"],
            "distinct": ["terminal_id"],
        },
        {
            "entity": ["terminal_id"],
            "windows": ["1d"],
            "aggs": ["count", "mean"],
            "include_current": False,
        },
        {
            "entity": ["terminal_id"],
            "windows": ["1d"],
            "aggs": ["count", "sum"],
            "offset": "1d",
            "names": {"count": "terminal_id_count_1d_lag", "sum": "terminal_id_sum_1d_lag"},
        },
    ],
    "risk": [
        {"entity": ["card_id"], "windows": ["14d"], "outputs": ["count", "frauds", "risk"]},
        {"entity": ["terminal_id"], "windows": ["7d"], "delay": "7d", "outputs": ["count", "risk"]},
    ],
    "recency": [{"entity": ["card_id"]}, {"entity": ["device_id"]}],
    "amount_relative": [{"entity": ["card_id"], "window": "7d"}],
    "frequency": [{"column": ["ip"], "window": "7d"}],
    "target_encoding": [{"column": ["merchant_id"], "window": "14d", "smoothing": 5.0}],
}

MODEL: dict[str, Any] = {
    "kind": "xgboost",
    "device": "cpu",
    "params": {"max_depth": 4, "learning_rate": 0.3},
    "num_boost_round": 25,
    "early_stopping_rounds": None,
    "valid_days": 0,
    "refit": False,
    "imbalance": "scale_pos_weight",
    "categorical": ["client_id"],
    "baseline": False,
}

START = "2025-01-01"
DAYS = 28
SCORE_START = pd.Timestamp("2025-01-25", tz="UTC")  # the last 4 days are scored


@dataclass
class World:
    data: Any  # the data config (DictConfig)
    registry: str
    features: pd.DataFrame  # build_features over the whole data, computed
    tmp: Path


def data_conf(path: Path, n_rows: int = 12000, seed: int = 7) -> Any:
    return OmegaConf.create(
        {
            "name": "synthetic",
            "path": str(path),
            "format": "parquet",
            "pii_columns": ["email", "ip"],
            "label_delay_days": 7,
            "client_id": "default",
            "synthetic": {
                "n_rows": n_rows,
                "n_customers": 250,
                "n_days": DAYS,
                "start_date": START,
                "n_clients": 3,
                "seed": seed,
            },
        }
    )


def generate(client: Any, path: Path, **kw: Any) -> Any:
    from fraud_dask.tasks import generate as gen

    data = data_conf(path, **kw)
    gen.run(OmegaConf.create({"data": data, "run_dir": str(path.parent), "seed": 7}), client)
    return data


def train_model(client: Any, features: Any, end: pd.Timestamp, params: dict | None = None):
    from fraud_dask.train import train

    conf = dict(MODEL)
    if params:
        conf = conf | {"params": MODEL["params"] | params}
    rows = features[features["ts"] < end]
    return train(client, rows, None, conf, "cpu", seed=3)


def build_world(client: Any, tmp: Path) -> World:
    from fraud_dask.data import load_transactions
    from fraud_dask.features.build import build_features
    from fraud_dask.registry import Registry, data_fingerprint

    data = generate(client, tmp / "tx")
    frame = load_transactions(data)
    feats = client.persist(build_features(frame, FEATURES))
    train_end = SCORE_START - pd.Timedelta(days=7)
    reg = Registry(str(tmp / "registry"))
    for version, params in ((1, None), (2, {"max_depth": 2, "learning_rate": 0.1})):
        model = train_model(client, feats, train_end, params)
        reg.register(
            "fraud",
            model,
            features=FEATURES,
            config={"data": OmegaConf.to_container(data), "model": MODEL},
            metrics={},
            fingerprint=data_fingerprint(feats[feats["ts"] < train_end]),
        )
        assert reg.versions("fraud")[-1] == version
    return World(data=data, registry=str(tmp / "registry"), features=feats.compute(), tmp=tmp)
