"""task=explore end to end on a real cluster: an injected pattern is found first, a stationary
source flags nothing, the counts are pandas', and the champion's misses are the scores'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from fraud_dask.data.synthetic import Scenario

START = "2025-01-01"
RECENT = pd.Timestamp("2025-02-12", tz="UTC")  # the last 14 of 56 days
SYNTHETIC = {
    "n_rows": 40_000,
    "n_days": 56,
    "start_date": START,
    "n_clients": 3,
    "customers_per_block": 100,
    # terminal compromises start and end inside the data: each is a real emerging risk of its
    # own, so they are left out here to keep the source stationary but for the injected pattern
    "scenarios": {"compromised_terminal": 0.0},
    "seed": 21,
}
PATTERN = {"start_date": "2025-02-10", "category": "pharmacy", "rate": 0.01}


def _data(path, drift=None):
    synthetic = {**SYNTHETIC, "drift": {"new_pattern": drift}} if drift else SYNTHETIC
    return OmegaConf.create(
        {"name": "synthetic", "path": str(path), "format": "parquet", "synthetic": synthetic}
    )


def _explore(client, data, tmp_path, **explore):
    from fraud_dask.tasks import generate, get_task

    generate.run({"data": data, "run_dir": str(tmp_path / "gen")}, client)
    cfg = {
        "data": data,
        "run_dir": str(tmp_path / "run"),
        "registry": {"path": str(tmp_path / "registry")},
        "explore": explore,
    }
    return get_task("explore")(cfg, client)


def _expected_counts(data, column: str) -> pd.DataFrame:
    """Per-segment rows and fraud cards in the two windows, with pandas."""
    from fraud_dask.data.synthetic import generate

    df = generate(data.synthetic).compute(scheduler="sync")
    df["hour_band"] = (df["ts"].dt.hour // 6).map({0: "00-05", 1: "06-11", 2: "12-17", 3: "18-23"})
    df["w"] = np.where(df["ts"] >= RECENT, "recent", "base")
    df["value"] = df[column].astype(str)
    n = df.groupby(["value", "w"]).size().unstack(fill_value=0)
    frauds = df[df["is_fraud"] == 1]
    cards = frauds.groupby(["value", "w"])["card_id"].nunique().unstack(fill_value=0)
    return n.join(cards, suffixes=("_n", "_cards"), how="left").fillna(0)


def test_an_injected_pattern_is_ranked_first(client, tmp_path):
    data = _data(tmp_path / "tx", PATTERN)
    out = _explore(client, data, tmp_path, misses=False)
    assert out["windows"]["recent_start"] == RECENT.isoformat()
    assert out["columns"] == ["terminal_id", "merchant_id", "client_id", "category", "hour_band"]
    from fraud_dask.data.synthetic import generate

    rows = generate(data.synthetic).compute(scheduler="sync")
    injected = rows[rows["scenario"] == Scenario.emerging_pattern]
    # first: the pattern's category, or one of its merchants or terminals (this small world
    # has few pharmacy merchants); every flagged segment holds the pattern
    flagged = [r for r in out["emerging"] if r["significant"]]
    assert flagged and flagged[0] is out["emerging"][0]
    assert ("category", "pharmacy") in {(r["column"], r["value"]) for r in flagged}
    for r in flagged:
        if r["column"] == "category":
            assert r["value"] == "pharmacy"
        else:
            assert r["column"] in ("merchant_id", "terminal_id"), r
            assert int(r["value"]) in set(injected[r["column"]]), r
    assert out["rows_in"] == out["rows_kept"] == 40_000
    # the counts are pandas' (rows and fraud cards per segment and window)
    expected = _expected_counts(data, "category")
    for r in out["emerging"]:
        if r["column"] == "category":
            e = expected.loc[r["value"]]
            assert (r["n_base"], r["n_recent"]) == (e["base_n"], e["recent_n"])
            assert (r["frauds_base"], r["frauds_recent"]) == (e["base_cards"], e["recent_cards"])
    html = (tmp_path / "run" / "explore.html").read_text()
    assert "pharmacy" in html and "Emerging risk" in html


def test_a_stationary_source_flags_nothing(client, tmp_path):
    out = _explore(client, _data(tmp_path / "tx"), tmp_path, misses=False, report=False)
    assert out["tested"] > 20
    assert out["significant"] == 0
    assert not any(r["significant"] for r in out["emerging"])
    assert out["misses"] is None and "report" not in out


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    from scoring_world import build_world

    return build_world(client, tmp_path_factory.mktemp("explore-world"))


@pytest.mark.slow  # the scoring world trains two models (about a minute)
def test_misses_are_the_champions_scores_by_segment(world, client, tmp_path):
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import score_period
    from fraud_dask.tasks import get_task

    cfg = {
        "data": world.data,
        "run_dir": str(tmp_path / "run"),
        "registry": {"path": world.registry, "name": "fraud", "version": "2"},
        "score": {"threshold": 0.2},
        # the world's last frauds are on its days 19 to 21 (of 28)
        "explore": {"recent_days": 10, "baseline_days": 14, "columns": ["category", "client_id"]},
    }
    out = get_task("explore")(cfg, client)
    assert out["model"] == {"name": "fraud", "version": 2}
    recent = pd.Timestamp(out["windows"]["recent_start"])
    end = pd.Timestamp(out["windows"]["recent_end"])
    bundle = Registry(world.registry).load("fraud", "2")
    scored, _ = score_period(world.data, bundle, recent, end, top=0, threshold=0.2)
    scored = scored.compute()
    fraud = scored[scored["is_fraud"] == 1]
    assert len(fraud) >= 5 and out["misses"]
    for r in out["misses"]:
        if r["column"] != "client_id":
            continue
        seg = fraud[fraud["client_id"].astype(str) == r["value"]]
        assert r["frauds"] == len(seg)
        assert r["caught"] == int(seg["alert"].sum())
        assert r["fraud_value"] == pytest.approx(seg["amount"].sum())
        missed = seg.loc[~seg["alert"], "amount"].sum()
        assert r["missed_value"] == pytest.approx(missed)
    values = [r["missed_value"] for r in out["misses"]]
    assert values == sorted(values, reverse=True)
    assert {r["column"] for r in out["misses"]} == {"category", "client_id"}
