"""task=compare: champion vs challenger on the same rows, paired bootstrap CIs over cards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scoring_world import build_world
from sklearn.metrics import average_precision_score

from fraud_dask.compare import bootstrap_difference


def _frame(n=3000, cards=400, seed=0, edge=1.0):
    """Challenger = champion + signal: its scores separate the classes better by ``edge``."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.05).astype("int8")
    noise = rng.normal(size=n)
    return pd.DataFrame(
        {
            "tx_id": np.arange(n),
            "ts": pd.Timestamp("2025-01-01", tz="UTC")
            + pd.to_timedelta(rng.uniform(0, 3 * 86400, n), unit="s"),
            "card_id": rng.integers(0, cards, n),
            "amount": rng.gamma(2.0, 40.0, n),
            "is_fraud": y,
            "client_id": rng.choice(["a", "b"], n),
            "score_champion": 1 / (1 + np.exp(-(noise + 1.0 * y))),
            "score_challenger": 1 / (1 + np.exp(-(noise + (1.0 + edge) * y))),
        }
    )


def test_point_values_are_the_exact_metrics_and_the_ci_sees_a_real_gain():
    frame = _frame()
    out = bootstrap_difference(frame, n_boot=60, seed=1)
    ap_a = average_precision_score(frame["is_fraud"], frame["score_champion"])
    ap_b = average_precision_score(frame["is_fraud"], frame["score_challenger"])
    assert out["champion"]["average_precision"] == pytest.approx(ap_a, abs=1e-12)
    assert out["difference"]["average_precision"]["value"] == pytest.approx(ap_b - ap_a, abs=1e-12)
    d = out["difference"]["average_precision"]
    assert d["replicates"] == 60 and 0 < d["ci_low"] < d["value"] < d["ci_high"]
    assert d["p_challenger_better"] == 1.0


def test_identical_models_give_zero_difference_and_a_ci_around_it():
    frame = _frame(edge=0.0)
    out = bootstrap_difference(frame, n_boot=40, seed=2)
    for m, d in out["difference"].items():
        assert d["value"] == 0.0, m
        assert d["ci_low"] == 0.0 == d["ci_high"], m  # the same scores in every replicate


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"column\(s\) \['score_challenger'\] missing"):
        bootstrap_difference(_frame().drop(columns=["score_challenger"]))
    with pytest.raises(ValueError, match="0 < ci < 1"):
        bootstrap_difference(_frame(), ci=1.5)


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("compare-world"))


def test_compare_task_writes_report_and_metrics(world, client, tmp_path):
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import score_period
    from fraud_dask.tasks import compare as task

    start = pd.Timestamp("2025-01-10", tz="UTC")

    cfg = OmegaConf.create(
        {
            "data": world.data,
            "run_dir": str(tmp_path),
            "registry": {"path": world.registry, "name": "fraud", "storage_options": {}},
            "compare": {
                "champion": "champion",
                "challenger": "2",
                "start": start.isoformat(),
                "end": None,
                "n_boot": 30,
                "ci": 0.9,
                "k": 20,
                "max_fpr": 0.01,
                "seed": 0,
                "known_compromised": "label_ts",
            },
        }
    )
    out = task.run(cfg, client)
    # the same protocol as evaluation: a row is left out when its card had a fraud whose label
    # was known before the row's day (a plain pandas loop over the whole history)
    feats = world.features
    frauds = feats[feats["is_fraud"] == 1]
    period = feats[feats["ts"] >= start]
    known = [
        bool(((frauds["card_id"] == card) & (frauds["label_ts"] < ts.floor("D"))).any())
        for card, ts in zip(period["card_id"], period["ts"], strict=True)
    ]
    kept = period[~np.array(known)]
    assert 0 < sum(known) < len(period)
    assert out["known_compromised"] == "label_ts"
    assert out["rows_dropped_known_compromised"] == sum(known)
    assert out["rows"] == len(kept) and out["frauds"] == int(kept["is_fraud"].sum()) > 0
    assert (out["champion_version"], out["challenger_version"]) == (1, 2)
    # independent check of the point values: each model's batch scores and scikit-learn's AP
    reg = Registry(world.registry)
    for role, version in (("champion", 1), ("challenger", 2)):
        scored, _ = score_period(world.data, reg.load("fraud", version), start, top=0)
        s = scored.compute()
        s = s[s["tx_id"].isin(kept["tx_id"])]
        assert out[role]["average_precision"] == pytest.approx(
            average_precision_score(s["is_fraud"], s["score"]), abs=1e-12
        )
    assert set(out["per_client"]) == set(period["client_id"].astype(str))
    json.dumps(out)  # metrics.json-ready
    html = (tmp_path / "report.html").read_text()
    assert "challenger v2 vs champion v1" in html and "card_precision_at_k" in html
    cfg.compare.known_compromised = "none"
    every = task.run(cfg, client)
    assert every["rows"] == len(period) and every["rows_dropped_known_compromised"] == 0
    cfg.compare.challenger = "champion"
    with pytest.raises(ValueError, match="both version 1"):
        task.run(cfg, client)


# -- champion and challenger must come from the same source, with the same inputs ------------

SMALL_FEATURES = {
    "name": "small",
    "windows": [{"entity": ["card_id"], "windows": ["1d", "7d"], "aggs": ["count", "mean"]}],
}


def _bundle(version, columns, source=None, config=None):
    from fraud_dask.registry import ModelBundle

    manifest = {"model": {"columns": columns}}
    if source is not None:
        manifest["source"] = {"name": source, "path": f"/data/{source}"}
    return ModelBundle("m", version, "", None, {}, config or {}, {}, manifest)


def test_incompatibilities_name_the_versions_and_what_differs():
    from fraud_dask.compare import incompatibilities

    a = _bundle(1, ["x", "y", "client_id"], "synthetic")
    assert incompatibilities(a, _bundle(2, ["client_id", "y", "x"], "synthetic")) == []
    assert incompatibilities(a, _bundle(2, ["x", "y", "client_id"], "handbook")) == [
        "source 'synthetic' (v1) vs 'handbook' (v2)"
    ]
    assert incompatibilities(a, _bundle(3, ["x", "z", "client_id"], "synthetic")) == [
        "feature names differ (only v1 takes y; only v3 takes z)"
    ]
    assert incompatibilities(a, _bundle(2, ["x", "y", "client_id"], "synthetic"), "handbook") == [
        "the replay source data.name='handbook' is not the models' ['synthetic']"
    ]
    # an older bundle: the source comes from its config, or is unknown (then not a difference)
    old = _bundle(2, ["x", "y", "client_id"], config={"data": {"name": "handbook"}})
    assert incompatibilities(a, old) == ["source 'synthetic' (v1) vs 'handbook' (v2)"]
    assert incompatibilities(a, _bundle(2, ["x", "y", "client_id"])) == []


@pytest.fixture(scope="module")
def mixed_registry(world, client, tmp_path_factory):
    """v1: the world's champion, from synthetic; v2: fewer inputs, recorded as from handbook."""
    from scoring_world import MODEL, SCORE_START

    from fraud_dask.data import load_transactions
    from fraud_dask.features.build import build_features
    from fraud_dask.registry import Registry
    from fraud_dask.train import train

    path = str(tmp_path_factory.mktemp("mixed") / "registry")
    reg = Registry(path)
    champion = Registry(world.registry).load("fraud", 1)
    reg.register("fraud", champion.model, features=champion.features, config=champion.config)
    feats = build_features(load_transactions(world.data), SMALL_FEATURES)
    rows = feats[feats["ts"] < SCORE_START - pd.Timedelta(days=7)]
    small = train(client, rows, None, MODEL, "cpu", seed=3)
    reg.register(
        "fraud",
        small,
        features=SMALL_FEATURES,
        config=champion.config,
        source={"name": "handbook", "path": "/elsewhere"},
    )
    return path, champion.model.columns, small.columns


def test_compare_refuses_incompatible_versions_unless_told(world, mixed_registry, client, tmp_path):
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import score_period
    from fraud_dask.tasks import compare as task

    path, champion_inputs, challenger_inputs = mixed_registry
    only_champion = [c for c in champion_inputs if c not in challenger_inputs]
    assert only_champion and not set(challenger_inputs) - set(champion_inputs)
    start = pd.Timestamp("2025-01-18", tz="UTC")
    cfg = OmegaConf.create(
        {
            "data": world.data,
            "run_dir": str(tmp_path),
            "registry": {"path": path, "name": "fraud", "storage_options": {}},
            "compare": {
                "champion": "champion",
                "challenger": "latest",
                "start": start.isoformat(),
                "end": None,
                "n_boot": 10,
                "ci": 0.9,
                "k": 20,
                "max_fpr": 0.01,
                "seed": 0,
                "known_compromised": "none",
            },
        }
    )
    with pytest.raises(ValueError) as info:
        task.run(cfg, client)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "compare: champion v1 and challenger v2 of 'fraud' are not comparable: "
        "source 'synthetic' (v1) vs 'handbook' (v2); feature names differ (only v1 takes "
        f"{only_champion[0]}, "
    )
    assert message.endswith("set compare.allow_incompatible=true to compare them anyway")
    assert not (tmp_path / "report.html").exists()

    cfg.compare.allow_incompatible = True
    out = task.run(cfg, client)
    assert (out["champion_version"], out["challenger_version"]) == (1, 2)
    assert [d.split(" ")[0] for d in out["incompatibilities"]] == ["source", "feature"]
    # each model scored with its own feature spec: scikit-learn's AP of its batch scores
    reg = Registry(path)
    for role, version in (("champion", 1), ("challenger", 2)):
        scored = score_period(world.data, reg.load("fraud", version), start, top=0)[0].compute()
        assert out[role]["average_precision"] == pytest.approx(
            average_precision_score(scored["is_fraud"], scored["score"]), abs=1e-12
        )
    assert out["rows"] == len(scored) and out["frauds"] == int(scored["is_fraud"].sum()) > 0
