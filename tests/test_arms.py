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
from scoring_world import SCORE_START, build_world, train_model
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

#: other features than the world's models were trained on (labels read through risk)
SMALL = {
    "name": "arms-small",
    "calendar": {"fields": ["hour"]},
    "windows": [{"entity": ["card_id"], "windows": ["1d", "7d"], "aggs": ["count", "mean"]}],
    "risk": [{"entity": ["card_id"], "windows": ["14d"], "outputs": ["frauds", "risk"]}],
    "recency": [{"entity": ["card_id"]}],
}


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


@pytest.fixture(scope="module")
def small_model(world, client):
    """A model trained on :data:`SMALL` (the world's registry holds two on its own features)."""
    from fraud_dask.data import load_transactions
    from fraud_dask.features.build import build_features

    feats = client.persist(build_features(load_transactions(world.data), SMALL))
    return train_model(client, feats, SCORE_START - pd.Timedelta(days=7))


def _held(state):
    """Every kept row of every entity history: (ts, tx_id, label, label time) per entity."""
    return {
        (st.key, key): list(
            zip(
                h.ts[h.lo : h.n].tolist(),
                h.tx[h.lo : h.n].tolist(),
                h.label[h.lo : h.n].tolist(),
                h.known[h.lo : h.n].tolist(),
                strict=True,
            )
        )
        for st in state.stages
        for key, h in st.entities.items()
    }


def test_arms_with_the_same_features_read_one_state_and_score_as_each_model_alone(
    world, client, small_model, tmp_path
):
    """Two models on the world's features and two arms on other features: two feature states,
    each event added once to each; every arm's score, answer, reasons and labels as each model
    gives them alone through its own warm-started scorer over the same events."""
    from fraud_dask.data import load_transactions

    reg = Registry(world.registry)
    v1, v2 = reg.load("fraud", "1"), reg.load("fraud", "2")

    def make(which):
        if which == "small":
            return OnlineScorer(small_model, SMALL, threshold=0.3, name="small", version=7)
        return OnlineScorer.from_bundle(which, threshold=0.3)

    def warm(scorer):
        return scorer.warm_start_source(world.data, until=DAY)

    plan = [
        (CHAMPION, v1, "champion", 0.0),
        ("challenger-1", v2, "ab", 0.3),
        ("challenger-2", "small", "ab", 0.2),
        ("challenger-3", "small", "shadow", 0.0),
    ]
    # the first arm of each feature state is warm-started; the others read its state
    scorers = {name: make(m) for name, m, _, _ in plan}
    warm(scorers[CHAMPION]), warm(scorers["challenger-2"])
    alone = {name: warm(make(m)) for name, m, _, _ in plan}
    armed = ArmedScorer(
        [Arm(name, scorers[name], mode, share) for name, _, mode, share in plan],
        "one-state",
        DecisionLog(tmp_path / "log", 10_000, 3600.0),
    )
    assert [[a.name for a in g.arms] for g in armed.groups] == [
        [CHAMPION, "challenger-1"],
        ["challenger-2", "challenger-3"],
    ]
    champion_state, small_state = scorers[CHAMPION].state, scorers["challenger-2"].state
    assert scorers["challenger-1"].state is champion_state is not small_state
    assert scorers["challenger-3"].state is small_state
    assert [a["features_of"] for a in armed.describe()] == [CHAMPION, CHAMPION] + 2 * [
        "challenger-2"
    ]

    events = day_events(world.data, DAY)
    truth = load_transactions(world.data, columns=["tx_id", "is_fraud"]).compute()
    fraud = dict(zip(truth["tx_id"].tolist(), truth["is_fraud"].astype(int).tolist(), strict=True))
    labelled = []
    want: dict[str, dict] = {name: {} for name in alone}
    served = set()
    for i, ev in enumerate(events):
        got = armed.score(ev)
        served.add(got["arm"])
        for name, scorer in alone.items():
            want[name][str(ev["tx_id"])] = scorer.score(ev, reasons=name == got["arm"])
        expected = want[got["arm"]][str(ev["tx_id"])]
        assert got["score"] == expected["score"] and got["alert"] == expected["alert"]
        assert got["reasons"] == expected["reasons"] and got["model"] == expected["model"]
        if i >= 30 and i % 5 == 0:  # labels arrive for earlier events, known from now on
            tx = events[i - 30]["tx_id"]  # the true label, and a fraud every fourth label
            y = int(fraud[tx] or i % 20 == 0)
            updated = armed.label(tx, y, ev["ts"])
            counts = {name: s.label(tx, y, ev["ts"]) for name, s in alone.items()}
            assert updated == counts[CHAMPION] > 0
            labelled.append(y)
    assert served == {CHAMPION, "challenger-1", "challenger-2"}
    assert 0 < sum(labelled) < len(labelled)
    armed.close()

    log = read_decisions(str(tmp_path / "log"))
    assert len(log) == len(plan) * len(events) and log["error"].isna().all()
    for name, scores in want.items():
        mine = log[log["arm"] == name].set_index("tx_id")["score"]
        assert {tx: mine[tx] for tx in scores} == {tx: r["score"] for tx, r in scores.items()}

    # each state holds each event once: the histories of a model scored alone, row for row
    for state, name in ((champion_state, CHAMPION), (small_state, "challenger-2")):
        held = _held(state)
        assert held == _held(alone[name].state)
        cards = [rows for (key, _), rows in held.items() if key == ("card_id",)]
        today = [tx for rows in cards for t, tx, _, _ in rows if t >= DAY.value]
        with_card = [ev["tx_id"] for ev in events if ev["card_id"] is not None]
        assert sorted(today) == sorted(with_card)


def test_serve_task_scores_a_shadow_challenger_on_the_champions_feature_state(
    world, client, tmp_path
):
    """task=serve with a shadow challenger on the champion's features: the challenger reads the
    champion's state (it is not warm-started itself), the answers are the champion's and the
    log holds both models' scores as each gives them alone."""
    import json
    import threading
    import time
    import urllib.request

    from omegaconf import OmegaConf

    from fraud_dask.tasks import serve as task

    arms = {
        "challengers": [{"version": "2", "name": None, "mode": "shadow", "share": 0.0}],
        "salt": "serve-test",
        "log_dir": str(tmp_path / "log"),
        "log_rows_per_file": 10_000,
        "log_max_age_s": 3600.0,
    }
    cfg = OmegaConf.create(
        {
            "data": world.data,
            "run_dir": str(tmp_path),
            "registry": {
                "path": world.registry,
                "name": "fraud",
                "version": "1",
                "storage_options": {},
            },
            "score": {
                "threshold": 0.5,
                "top_reasons": 3,
                "exact_recency": True,
                "serve": {
                    "host": "127.0.0.1",
                    "port": 0,
                    "warm_start_days": None,
                    "max_body_bytes": 65536,
                    "lifetime_s": 15.0,
                    "arms": arms,
                },
            },
        }
    )
    # new events after the source's last day: the last day's, a day later, other tx ids
    last = SCORE_START + pd.Timedelta(days=3)
    events = []
    for ev in day_events(world.data, last)[:40]:
        ts = pd.Timestamp(ev["ts"]) + pd.Timedelta(days=1)
        events.append(ev | {"ts": ts.isoformat(), "tx_id": ev["tx_id"] + 10**9})
    alone = {}
    for arm, version in ((CHAMPION, "1"), ("challenger-1", "2")):
        bundle = Registry(world.registry).load("fraud", version)
        scorer = OnlineScorer.from_bundle(bundle, threshold=0.5)
        alone[arm] = scorer.warm_start_source(world.data)
    want = {arm: [s.score(ev) for ev in events] for arm, s in alone.items()}

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(task.run(cfg, client)))
    thread.start()
    deadline = time.monotonic() + 120
    while not (tmp_path / "service.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    url = json.loads((tmp_path / "service.json").read_text())["url"]
    answers = []
    for ev in events:
        request = urllib.request.Request(
            f"{url}/score",
            data=json.dumps(ev).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            answers.append(json.loads(resp.read()))
    thread.join(timeout=120)
    assert not thread.is_alive()

    assert [a["features_of"] for a in result["arms"]] == [CHAMPION, CHAMPION]
    assert result["served_by"] == {CHAMPION: len(events), "challenger-1": 0}
    for got, expected in zip(answers, want[CHAMPION], strict=True):
        assert got["arm"] == CHAMPION and got["score"] == expected["score"]
    log = read_decisions(str(tmp_path / "log"))
    assert [str(f) for f in sorted((tmp_path / "log").glob("*.parquet"))] == result["decision_log"]
    for arm, scores in want.items():
        mine = log[log["arm"] == arm].set_index("tx_id")["score"]
        assert [mine[str(e["tx_id"])] for e in scores] == [e["score"] for e in scores]
