"""A/B and shadow scoring in task=serve (fraud_dask.score.arms) and task=compare on its log.

The split is stable per card and matches the configured shares within binomial error; a shadow
challenger's scores never reach a response (every answer is the champion's, as a champion-only
reference scorer gives it); every arm's decision is logged, and the log read back by task=compare
gives each arm's metrics as scikit-learn computes them on the labelled rows.
"""

from __future__ import annotations

import pandas as pd
import pytest
from scipy.stats import binomtest
from scoring_world import SCORE_START, build_world
from sklearn.metrics import average_precision_score
from test_score_online import day_events

from fraud_dask.registry import Registry
from fraud_dask.score.arms import (
    CHAMPION,
    Arm,
    ArmedScorer,
    ArmsConf,
    ChallengerConf,
    DecisionLog,
    Router,
    build_armed,
    read_decisions,
)
from fraud_dask.score.online import OnlineScorer

DAY = SCORE_START + pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("arms_world"))


def test_the_split_is_stable_per_card_and_matches_the_shares():
    arms = [
        Arm(CHAMPION, None, "champion", 0.0),
        Arm("challenger-1", None, "ab", 0.3),
        Arm("challenger-2", None, "ab", 0.1),
        Arm("challenger-3", None, "shadow", 0.0),
    ]
    router = Router(arms, "salt-1")
    cards = [f"tok_{i:06x}" for i in range(20_000)]
    first = [router.arm_of(c) for c in cards]
    # the same card, asked again in another order and by another router, lands in the same arm
    again = Router(arms, "salt-1")
    assert [again.arm_of(c) for c in reversed(cards)] == first[::-1]
    counts = pd.Series(first).value_counts()
    assert "challenger-3" not in counts  # a shadow challenger answers for no card
    for arm, share in ((CHAMPION, 0.6), ("challenger-1", 0.3), ("challenger-2", 0.1)):
        assert binomtest(int(counts[arm]), len(cards), share).pvalue > 1e-3, (arm, counts[arm])
    # another salt draws another split of the same cards
    other = [Router(arms, "salt-2").arm_of(c) for c in cards]
    moved = sum(a != b for a, b in zip(first, other, strict=True)) / len(cards)
    assert 0.3 < moved < 0.7


def _scorers(world, version: str, n: int = 1):
    bundle = Registry(world.registry).load("fraud", version)
    out = []
    for _ in range(n):
        s = OnlineScorer.from_bundle(bundle, threshold=0.3)
        s.warm_start_source(world.data, until=DAY)
        out.append(s)
    return out


def test_shadow_never_answers_and_the_log_round_trips_into_compare(world, client, tmp_path):
    from fraud_dask.config import compose
    from fraud_dask.tasks import compare

    champion, reference = _scorers(world, "1", 2)
    shadow, shadow_reference = _scorers(world, "2", 2)
    conf = ArmsConf(
        challengers=[ChallengerConf(version="2", mode="shadow")],
        log_dir=str(tmp_path / "log"),
        log_rows_per_file=90,  # rotated: several files
    )
    armed = build_armed(conf, champion, lambda name, v: None, lambda b: shadow, str(tmp_path))
    events = day_events(world.data, DAY)[:160]
    got = [armed.score(ev) for ev in events]
    expected = [reference.score(ev) for ev in events]
    shadow_expected = [shadow_reference.score(ev, reasons=False) for ev in events]
    for g, e in zip(got, expected, strict=True):
        assert g["arm"] == CHAMPION and g["model"] == e["model"]
        assert g["score"] == e["score"] and g["alert"] == e["alert"]
        assert [r["code"] for r in g["reasons"]] == [r["code"] for r in e["reasons"]]
    files = armed.close()
    assert len(files) == 4  # 320 rows, 90 per file

    log = read_decisions(str(tmp_path / "log"))
    assert len(log) == 2 * len(events)
    assert set(log.loc[log["served"], "arm"]) == {CHAMPION}
    side = log[log["arm"] == "challenger-1"].set_index("tx_id")
    assert not side["served"].any() and (side["version"] == 2).all()
    for ev, e in zip(events, shadow_expected, strict=True):
        assert side.loc[str(ev["tx_id"]), "score"] == pytest.approx(e["score"])

    cfg = compose(
        [
            "task=compare",
            f"compare.decisions={tmp_path / 'log'}",
            "compare.n_boot=50",
        ],
        run_dir=tmp_path / "run",
    )
    cfg.data.path = str(world.data["path"])  # the world's transactions and their labels
    out = compare.run(cfg, client)
    from fraud_dask.data import load_transactions

    labels = load_transactions(world.data, columns=["tx_id", "is_fraud"]).compute()
    labels = labels.set_index(labels["tx_id"].astype(str))["is_fraud"]
    assert out["events_logged"] == len(events) == out["events_labelled"]
    for arm, scores in ((CHAMPION, expected), ("challenger-1", shadow_expected)):
        y = [int(labels[str(e["tx_id"])]) for e in scores]
        s = [e["score"] for e in scores]
        if sum(y):
            want = average_precision_score(y, s)
            assert out["shadow"][arm]["average_precision"] == pytest.approx(want)
    assert list(out["arms"]) == [CHAMPION]  # the shadow answered for no one


def test_ab_answers_by_card_and_compare_reports_the_sample_size_still_needed(world, tmp_path):
    from fraud_dask.score.arms import compare_arms

    champion, reference = _scorers(world, "1", 2)
    challenger, challenger_reference = _scorers(world, "2", 2)
    armed = ArmedScorer(
        [
            Arm(CHAMPION, champion, "champion", 0.0),
            Arm("challenger-1", challenger, "ab", 0.5),
        ],
        "ab-test",
        DecisionLog(tmp_path / "log", 10_000, 3600.0),
    )
    events = day_events(world.data, DAY)[:160]
    arm_of_card: dict = {}
    for ev in events:
        got = armed.score(ev)
        want = reference.score(ev)
        other = challenger_reference.score(ev)
        assert arm_of_card.setdefault(ev["card_id"], got["arm"]) == got["arm"]
        assert got["score"] == (want if got["arm"] == CHAMPION else other)["score"]
    assert set(arm_of_card.values()) == {CHAMPION, "challenger-1"}
    armed.close()

    log = read_decisions(str(tmp_path / "log"))
    served = log[log["served"]]
    assert served["tx_id"].is_unique and len(served) == len(events)
    # every fifth transaction a fraud: labels as they would arrive later
    labels = pd.DataFrame(
        {"tx_id": served["tx_id"], "is_fraud": [int(i % 5 == 0) for i in range(len(served))]}
    )
    out = compare_arms(log, labels, n_boot=60)
    diff = out["differences"]["challenger-1"]
    assert diff["n"] == min(out["arms"][CHAMPION]["rows"], out["arms"]["challenger-1"]["rows"])
    assert diff["n_needed"] is None or diff["n_still_needed"] == max(
        diff["n_needed"] - diff["n"], 0
    )
    lo, hi = out["arms"][CHAMPION]["ci"]
    assert lo <= out["arms"][CHAMPION]["average_precision"] <= hi
