"""task=onboard end to end on a client's own source (its column names, time zone, label delay),
checked against pandas and scikit-learn; and the data-aware defaults against the old fixed ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from client_source import data_overrides, make_client_source, write_client_source
from sklearn.metrics import average_precision_score

FAST = [
    "model.baseline=false",
    "model.num_boost_round=80",
    "task.performance_report=false",
]


@pytest.fixture(scope="module")
def client_x(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A 100-day client source with 5 repeated transactions and 3 bad rows."""
    raw = make_client_source(days=100, cards=1200, fraud_rate=0.01, seed=11)
    repeats = raw.sample(5, random_state=1)
    raw = pd.concat([raw, repeats], ignore_index=True)
    raw.loc[[7, 70], "AMT"] = -3.0
    raw.loc[[700], "CARD_REF"] = None
    root = tmp_path_factory.mktemp("client_x") / "export"
    write_client_source(raw, root)
    return root, raw


def _cfg(tmp_path: Path, root: Path, *extra: str):
    from fraud_dask.config import compose

    return compose(
        [*data_overrides(root), f"paths.data_home={tmp_path / 'home'}", *FAST, *extra],
        run_dir=tmp_path / "run",
    )


def test_onboard_profiles_trains_compares_and_reports(client, tmp_path, client_x, capsys):
    from fraud_dask.split import select_test
    from fraud_dask.tasks import onboard
    from fraud_dask.train import Model
    from fraud_dask.train.folds import folds_of
    from fraud_dask.train.frame import read_feature_frame

    root, raw = client_x
    cfg = _cfg(tmp_path, root)
    out = onboard.run(cfg, client)
    json.dumps(out)  # metrics.json material

    # what was read: rows in = kept + quarantined, by reason, against pandas
    assert out["rows_in"] == len(raw)
    assert out["by_reason"]["duplicate_tx_id"] == 5
    assert out["by_reason"]["negative_amount"] == 2 and out["by_reason"]["null_key"] == 1
    # local times that do not exist (the spring-forward hour) cannot be placed in time
    local = raw["EVENT_TIME"].dt.tz_localize("Europe/Paris", nonexistent="NaT", ambiguous="NaT")
    unplaced = int(local.isna().sum())
    assert unplaced > 0  # the source spans 31 March 2024
    assert out["rows_quarantined"] == 8 + unplaced
    assert out["rows_kept"] == len(raw) - 8 - unplaced
    assert out["profile"]["rows"]["in"] == len(raw)
    assert out["profile"]["columns"]["mapped"]["EVENT_TIME"] == "ts"

    # the folds were chosen from the data, and each says why and how many frauds it holds
    split = out["split"]
    assert split["mode"] == "auto" and split["lengths"]["delay_days"] == 14
    assert any("label delay" in r for r in split["reasons"])
    for fold in split["folds"]["test"]:
        flagged = any("split.min_test_frauds" in w for w in split["warnings"])
        assert fold["test_frauds"] >= 100 or flagged

    # the features the source cannot feed are named, with the reason
    assert any("terminal_id" in s for s in out["skipped_features"])

    # the client model's pooled AP is scikit-learn's on the same scored test rows
    frame = read_feature_frame(cfg.data, cfg.features, client)[0]
    folds = folds_of(cfg, frame, "test")
    ys, scores = [], []
    for fold in folds:
        test = select_test(
            frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
        ).compute()
        model = Model.load(str(tmp_path / "run" / "models" / fold.name / "xgboost"))
        ys.append(test["is_fraud"].to_numpy())
        scores.append(model.predict_partition(test))
    model_eval = out["evaluation"]["models"]["client model (xgboost)"]
    y, s = np.concatenate(ys), np.concatenate(scores)
    assert model_eval["n"] == len(y) and model_eval["n_fraud"] == int(y.sum())
    assert model_eval["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert set(model_eval["per_fold"]) == {f.name for f in folds}
    assert sum(m["n_fraud"] for m in model_eval["per_month"].values()) == int(y.sum())
    assert out["test"]["average_precision"] > 0.9
    assert [b["budget"] for b in model_eval["alert_budgets"]]
    # no champion yet: said so
    assert any("no champion" in n for n in out["evaluation"]["notes"])
    assert out["registry"]["name"] == "fraud-client_x"

    html = (tmp_path / "run" / "onboard.html").read_text()
    for heading in ("Summary", "Evaluation", "Split", "Features skipped", "Data profile"):
        assert f"<h2>{heading}</h2>" in html
    assert "client model (xgboost)" in html and "https://" not in html.split("<main>")[1]
    printed = capsys.readouterr().out
    assert "onboard client_x" in printed and "onboard.html" in printed

    # a second onboarding compares with the champion registered by the first, on the same rows
    cfg2 = _cfg(tmp_path, root, f"registry.path={tmp_path / 'home' / 'registry'}")
    cfg2.run_dir = str(tmp_path / "run2")
    again = onboard.run(cfg2, client)
    champ = again["evaluation"]["models"]["champion fraud-client_x v1"]
    assert champ["n"] == model_eval["n"] and champ["n_fraud"] == model_eval["n_fraud"]
    kinds = {w["kind"] for w in again["warnings"]}
    assert "champion_in_sample" in kinds  # v1 saw the newest folds' test days


def test_data_aware_defaults_beat_the_fixed_ones_on_a_client_source(client, tmp_path, client_x):
    """The defaults (split.mode=auto, early stopping sized by frauds) against the fixed 14/7/7-day
    folds with one early-stopping day that a new client used to get."""
    from fraud_dask.tasks import pipeline

    root, _ = client_x
    auto = pipeline.run(_cfg(tmp_path / "a", root, "registry.register=false"), client)
    old = ("registry.register=false", "split=default", "model.valid_days=1")
    fixed = pipeline.run(_cfg(tmp_path / "f", root, *old), client)
    assert auto["split"]["mode"] == "auto"
    # every fold of the defaults holds enough frauds to measure; the fixed folds do not
    assert min(f["n_fraud"] for f in auto["test"]["per_fold"].values()) >= 50
    assert any(w["kind"] == "test_frauds" for w in fixed["warnings"])
    assert any(w["kind"] == "validation_frauds" for w in fixed["warnings"])
    assert auto["test"]["average_precision"] >= fixed["test"]["average_precision"] - 0.005
    assert auto["test"]["average_precision"] > 0.95


@pytest.mark.slow
def test_onboard_from_a_data_yaml_on_the_command_line(tmp_path, client_x):
    """A user's path: the client's data YAML in a config folder of their own, one command."""
    import os
    import subprocess
    import sys

    import yaml
    from client_source import COLUMNS

    root, raw = client_x
    configs = tmp_path / "my_configs" / "data"
    configs.mkdir(parents=True)
    (configs / "client_y.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "client_y",
                "path": str(root),
                "format": "parquet",
                "columns": COLUMNS,
                "timestamp": {"timezone": "Europe/Paris"},
                "label_delay_days": 14,
            }
        )
    )
    run_dir = tmp_path / "run"
    env = dict(os.environ, FRAUD_DASK_HOME=str(tmp_path / "home"))
    env.pop("FRAUD_DASK_PAN_KEY", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraud_dask",
            "task=onboard",
            f"hydra.searchpath=[file://{tmp_path / 'my_configs'}]",
            "data=client_y",
            f"hydra.run.dir={run_dir}",
            "cluster.n_workers=2",
            *FAST,
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["rows_in"] == len(raw)
    assert metrics["rows_in"] == metrics["rows_kept"] + metrics["rows_quarantined"]
    assert metrics["registry"]["name"] == "fraud-client_y"
    assert metrics["test"]["average_precision"] > 0.9
    assert (run_dir / "onboard.html").exists()
    # the console: the onboarding summary and the run summary, no traceback, no xgboost noise
    assert "onboard client_y" in done.stdout and "test.average_precision" in done.stdout
    assert "Traceback" not in done.stderr
    assert "Dataset is empty" not in done.stdout + done.stderr
    assert "fuse_ave_width" not in done.stdout + done.stderr
