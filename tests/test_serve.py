"""task=serve: the aiohttp scoring service over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scoring_world import SCORE_START, build_world
from test_score_online import EVENT, day_events

from fraud_dask.registry import Registry
from fraud_dask.score.online import OnlineScorer
from fraud_dask.score.service import make_app, serve


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("serve-world"))


async def _with_service(app, body):
    """Start ``app`` on 127.0.0.1 (free port), run ``body(session, url)``, stop."""
    import aiohttp

    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(app, "127.0.0.1", 0, on_ready=ready.set_result))
    url = await asyncio.wait_for(ready, 30)
    try:
        async with aiohttp.ClientSession() as session:
            return await body(session, url)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_http_scores_equal_in_process_scores_and_latency(world):
    bundle = Registry(world.registry).load("fraud")
    day = SCORE_START + pd.Timedelta(days=2)
    events = day_events(world.data, day)[:150]
    # the same warm start twice: one scorer behind HTTP, one in process as the reference
    history_scorer = OnlineScorer.from_bundle(bundle, threshold=0.3)
    history_scorer.warm_start_source(world.data, until=day)
    reference = OnlineScorer.from_bundle(bundle, threshold=0.3)
    reference.warm_start_source(world.data, until=day)
    expected = [reference.score(ev) for ev in events]

    async def body(session, url):
        got, lat = [], []
        for ev in events:
            t = time.perf_counter()
            async with session.post(
                f"{url}/score", data=json.dumps(ev), headers={"Content-Type": "application/json"}
            ) as resp:
                assert resp.status == 200, await resp.text()
                got.append(await resp.json())
            lat.append((time.perf_counter() - t) * 1e3)
        async with session.get(f"{url}/health") as resp:
            health = await resp.json()
        return got, lat, health

    got, lat, health = asyncio.run(_with_service(make_app(history_scorer), body))
    for g, e in zip(got, expected, strict=True):
        assert g["tx_id"] == e["tx_id"] and g["score"] == e["score"]
        assert g["decision"] == ("decline" if e["alert"] else "approve")
        assert [r["code"] for r in g["reasons"]] == [r["code"] for r in e["reasons"]]
    assert health["status"] == "ok" and health["events"] == len(events)
    assert health["model"] == {"name": "fraud", "version": bundle.version}
    print(
        f"\nHTTP round trip over 127.0.0.1 ({len(lat)} events, shared machine): "
        f"p50 {np.percentile(lat, 50):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms"
    )


def test_bad_requests_get_4xx_with_a_message(world):
    scorer = OnlineScorer.from_bundle(Registry(world.registry).load("fraud"))

    async def body(session, url):
        out = {}
        cases = {
            "not_json": b"{tx_id: 1",
            "array": b"[1, 2]",
            "missing": json.dumps({k: v for k, v in EVENT.items() if k != "card_id"}).encode(),
            "bad_amount": json.dumps(EVENT | {"amount": -3}).encode(),
            "too_big": b"{" + b" " * 70000 + b"}",
        }
        for name, data in cases.items():
            async with session.post(
                f"{url}/score", data=data, headers={"Content-Type": "application/json"}
            ) as resp:
                out[name] = (resp.status, (await resp.json())["error"])
        async with session.get(f"{url}/score") as resp:
            out["wrong_method"] = (resp.status, None)
        async with session.post(f"{url}/score", data=json.dumps(EVENT)) as resp:
            out["ok_after_errors"] = (resp.status, None)
        labels = {
            "label_ok": {"tx_id": EVENT["tx_id"], "is_fraud": 1, "label_ts": "2025-02-01T11:00Z"},
            "label_unknown": {"tx_id": 5, "is_fraud": 1},
            "label_bad": {"tx_id": EVENT["tx_id"], "is_fraud": "yes"},
            "label_missing": {"tx_id": EVENT["tx_id"]},
        }
        for name, payload in labels.items():
            async with session.post(f"{url}/label", data=json.dumps(payload)) as resp:
                out[name] = (resp.status, await resp.json())
        async with session.get(f"{url}/health") as resp:
            out["health"] = (resp.status, await resp.json())
        return out

    out = asyncio.run(_with_service(make_app(scorer, max_body_bytes=65536), body))
    assert out["not_json"][0] == 400 and "not valid JSON" in out["not_json"][1]
    assert out["array"] == (422, "expected a JSON object (one transaction), got list")
    assert out["missing"][0] == 422 and "['card_id']" in out["missing"][1]
    assert out["bad_amount"][0] == 422 and "'amount'" in out["bad_amount"][1]
    assert out["too_big"][0] == 413 and "limit 65536" in out["too_big"][1]
    assert out["wrong_method"][0] == 405
    assert out["ok_after_errors"][0] == 200  # the service survived every bad request
    assert out["label_ok"][0] == 200 and out["label_ok"][1]["updated"] > 0
    assert out["label_unknown"][0] == 404 and "not scored here" in out["label_unknown"][1]["error"]
    assert out["label_bad"][0] == 422 and "is_fraud must be 0 or 1" in out["label_bad"][1]["error"]
    assert out["label_missing"] == (422, {"error": "label: missing field(s) ['is_fraud']"})
    assert out["health"][1]["labels"] == 1


def test_serve_task_end_to_end(world, client, tmp_path):
    """task=serve loads the champion, warm-starts from the source, serves, stops on time."""
    import urllib.request

    from fraud_dask.tasks import serve as task

    cfg = OmegaConf.create(
        {
            "data": world.data,
            "run_dir": str(tmp_path),
            "registry": {
                "path": world.registry,
                "name": "fraud",
                "version": "champion",
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
                    "lifetime_s": 25.0,
                },
            },
        }
    )
    result = {}
    thread = threading.Thread(target=lambda: result.update(task.run(cfg, client)))
    thread.start()
    deadline = time.monotonic() + 120
    while not (tmp_path / "service.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    url = json.loads((tmp_path / "service.json").read_text())["url"]
    request = urllib.request.Request(
        f"{url}/score",
        data=json.dumps(EVENT).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        scored = json.loads(resp.read())
    with urllib.request.urlopen(f"{url}/health", timeout=30) as resp:
        health = json.loads(resp.read())
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert scored["tx_id"] == EVENT["tx_id"] and 0 <= scored["score"] <= 1
    assert health["events"] == 1 and health["entities"]["card_id"] > 100
    assert result["events"] == 1 and result["model"] == {"name": "fraud", "version": 1}
