"""The online scorer: warm start from Parquet, then a day replayed event by event = batch."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scoring_world import SCORE_START, build_world

from fraud_dask.registry import Registry
from fraud_dask.score.online import OnlineScorer

EVENT = {
    "tx_id": 10**9,
    "ts": "2025-02-01T10:00:00Z",
    "card_id": 1,
    "amount": 12.5,
    "terminal_id": 3,
    "merchant_id": 4,
    "device_id": 5,
    "ip": "x",
    "client_id": "c1",
}


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("online-world"))


def day_events(data, day):
    """The source's rows of one day as JSON-like dicts, in (ts, tx_id) order, without labels."""
    from fraud_dask.data import load_transactions

    rows = load_transactions(data, start=day, end=day + pd.Timedelta(days=1)).compute()
    rows = rows.sort_values(["ts", "tx_id"]).drop(columns=["is_fraud", "label_ts", "scenario"])
    events = []
    for rec in rows.to_dict("records"):
        rec["ts"] = rec["ts"].isoformat()
        events.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        )
    return events


def test_replaying_a_day_gives_the_batch_features_and_scores(world, client):
    import dask.dataframe as dd

    from fraud_dask.score.batch import score_features

    bundle = Registry(world.registry).load("fraud")
    day = SCORE_START + pd.Timedelta(days=1)
    scorer = OnlineScorer.from_bundle(bundle, threshold=0.5, top=3)
    scorer.warm_start_source(world.data, until=day)
    assert scorer.entities["card_id"] > 100

    events = day_events(world.data, day)
    assert len(events) > 200
    names = scorer.plan.feature_names
    feats, scores = [], []
    for ev in events:
        feats.append(scorer.features(ev))
        scores.append(scorer.score(ev)["score"])
    got = pd.DataFrame(feats, index=[e["tx_id"] for e in events])[names].to_numpy(float)
    batch = world.features.set_index("tx_id")
    want = batch.loc[[e["tx_id"] for e in events], names].to_numpy(float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    diff = np.nanmax(np.abs(got - want) / np.maximum(1.0, np.abs(want)))
    print(f"\nparity: {len(events)} events x {len(names)} features, max rel diff {diff:.3g}")
    assert diff <= 1e-9

    rows = world.features[world.features["tx_id"].isin([e["tx_id"] for e in events])]
    ref = score_features(dd.from_pandas(rows, npartitions=1), bundle.model).compute()
    ref = ref.set_index("tx_id").loc[[e["tx_id"] for e in events], "score"].to_numpy()
    online = np.asarray(scores, np.float32)
    print(
        f"parity: max score diff {np.max(np.abs(online - ref)):.3g}, "
        f"identical {np.mean(online == ref):.4f}"
    )
    assert np.max(np.abs(online - ref)) <= 1e-6


def test_one_event_result_and_state(world):
    bundle = Registry(world.registry).load("fraud", 2)
    scorer = OnlineScorer.from_bundle(bundle, threshold=0.0, top=2)
    out = scorer.score(EVENT)
    assert out["model"] == {"name": "fraud", "version": 2}
    assert out["alert"] is True and 0 < out["score"] < 1
    assert len(out["reasons"]) <= 2
    assert all(r["contribution"] > 0 and r["code"].isupper() for r in out["reasons"])
    # the second event of a new card sees the first one
    second = dict(EVENT, tx_id=10**9 + 1, ts="2025-02-01T10:30:00Z", amount=7.5)
    f = scorer.features(second)
    assert f["card_id_count_1h"] == 2 and f["card_id_sum_1h"] == 20.0
    assert f["card_id_secs_since_prev"] == 1800.0
    assert f["card_id_min_1d"] == 7.5 and f["card_id_max_1d"] == 12.5
    assert f["card_id_distinct_terminal_id_1h"] == 1
    assert f["tx_hour"] == 10 and f["tx_weekend"] == 1  # 2025-02-01 is a Saturday


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ts": None}, "'ts' must be an ISO 8601 time"),
        ({"ts": "yesterday-ish"}, "'ts' is not a time"),
        ({"amount": -1}, "'amount' must be a finite number >= 0"),
        ({"amount": "12"}, "'amount' must be a finite number >= 0"),
        ({"tx_id": 1.5}, "'tx_id' must be an integer"),
    ],
)
def test_bad_events_name_the_field(world, change, message):
    scorer = OnlineScorer.from_bundle(Registry(world.registry).load("fraud"))
    with pytest.raises(ValueError, match=message):
        scorer.score(EVENT | change)
    with pytest.raises(ValueError, match=r"missing field\(s\) \['terminal_id'\]"):
        scorer.score({k: v for k, v in EVENT.items() if k != "terminal_id"})


def test_labels_fed_back_count_from_their_label_time_like_the_batch(world):
    """A chargeback recorded with ``label`` enters the risk and target-encoding features of
    later events from its label_ts on, exactly as the batch kernels count a known label."""
    from fraud_dask.features.batch import features_frame

    bundle = Registry(world.registry).load("fraud")
    scorer = OnlineScorer.from_bundle(bundle)
    base = dict(EVENT, card_id=777_777, merchant_id=4, terminal_id=3)
    times = ["2025-02-01T10:00:00Z", "2025-02-01T11:00:00Z", "2025-02-01T12:00:00Z"]
    events = [dict(base, tx_id=2 * 10**9 + i, ts=ts) for i, ts in enumerate(times)]
    for ev in events[:2]:
        scorer.score(ev)
    assert scorer.label(events[0]["tx_id"], 1, "2025-02-01T11:30:00Z") > 0
    online = scorer.features(events[2])
    assert online["card_id_risk_frauds_14d"] == 1.0 and online["card_id_risk_count_14d"] == 1.0

    # the batch kernels on the same three rows: the first is a fraud known at 11:30, the others'
    # labels are not known yet
    rows = pd.DataFrame(events).assign(
        ts=lambda d: pd.to_datetime(d["ts"], utc=True),
        is_fraud=[1, 0, 0],
        label_ts=pd.to_datetime(
            ["2025-02-01T11:30:00Z", "2100-01-01T00:00:00Z", "2100-01-01T00:00:00Z"]
        ),
    )
    batch = features_frame(rows, bundle.features).set_index("tx_id").loc[events[2]["tx_id"]]
    names = [n for n in scorer.plan.feature_names if "risk" in n or "_te_" in n or "merchant" in n]
    assert names
    for name in names:
        want, got = batch[name], online[name]
        assert (np.isnan(want) and np.isnan(got)) or abs(got - want) <= 1e-9 * max(1, abs(want))

    # before its label time the fraud does not count
    early = scorer.features(dict(base, tx_id=3 * 10**9, ts="2025-02-01T11:15:00Z"))
    assert early["card_id_risk_count_14d"] == 0.0
    with pytest.raises(KeyError, match="was not scored here"):
        scorer.label(123, 1)
    with pytest.raises(ValueError, match="is_fraud must be 0 or 1"):
        scorer.label(events[1]["tx_id"], 2)
