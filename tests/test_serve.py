"""task=serve: the aiohttp scoring service over a real socket on 127.0.0.1.

Its API is documented (issue 14): ``GET /openapi.json`` is a valid OpenAPI 3.1 document built
from the definitions that validate the requests; every field it documents is accepted with
every type it documents; every answer matches its documented response schema; a 422 names the
field.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from omegaconf import OmegaConf
from openapi_spec_validator import validate as validate_spec
from scoring_world import SCORE_START, build_world
from test_score_online import EVENT, day_events
from test_serve_defence import DAY, known_event, post, running, warm

from fraud_dask.registry import Registry
from fraud_dask.score.online import OnlineScorer
from fraud_dask.score.service import make_app, serve


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("serve-world"))


@pytest.fixture(scope="module")
def bundle(world):
    return Registry(world.registry).load("fraud")


@pytest.fixture(scope="module")
def history(world, bundle):
    """The warm-start rows before DAY, read once."""
    from fraud_dask.score.batch import load_period

    frame, _ = load_period(world.data, bundle.features, DAY, DAY)
    return frame.compute()


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
    assert (
        out["label_bad"][0] == 422 and "'is_fraud' must be 0 or 1" in out["label_bad"][1]["error"]
    )
    assert out["label_bad"][1]["field"] == "is_fraud"
    assert out["label_missing"] == (
        422,
        {
            "error": "label: missing field(s) ['is_fraud']; required: ['tx_id', 'is_fraud']",
            "field": "is_fraud",
        },
    )
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


# -- the documented API --------------------------------------------------------------------


def get(url: str, path: str) -> tuple[int, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{url}{path}", timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def conforms(doc: dict[str, Any], component: str, instance: Any) -> list[str]:
    """Messages of ``instance`` against the document's schema ``component`` (empty: valid)."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    return [e.message for e in Draft202012Validator(schema).iter_errors(instance)]


#: a value of each JSON Schema type, for a documented field of that type
SAMPLES: dict[str, list[Any]] = {
    "integer": [7, 7.0],
    "number": [3.5, 3],
    "string": ["x-7"],
    "null": [None],
}


def test_openapi_document_is_valid_and_describes_the_running_service(bundle, history) -> None:
    scorer = warm(bundle, history)
    with running(make_app(scorer, token="s3cret", max_body_bytes=4096)) as url:
        status, doc = get(url, "/openapi.json")
    assert status == 200
    validate_spec(doc)  # OpenAPI 3.1, with its JSON Schema dialect
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/score", "/label", "/health", "/openapi.json"}
    score = doc["components"]["schemas"]["ScoreRequest"]
    # the model's own inputs: every field the scorer requires, and nothing made up
    assert score["required"] == scorer.required
    assert set(score["properties"]) == {*scorer.required, *scorer.ids}
    assert score["properties"]["tx_id"]["type"] == "integer"  # the history's ids are integers
    label = doc["components"]["schemas"]["LabelRequest"]
    assert label["required"] == ["tx_id", "is_fraud"] and "label_ts" in label["properties"]
    # the token and the limits of this instance
    for path in ("/score", "/label"):
        operation = doc["paths"][path]["post"]
        assert operation["security"] == [{"bearer": []}]
        assert {"401", "422", "413", "408", "400"} <= set(operation["responses"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "4096 bytes" in doc["info"]["description"]
    # without a token: no security requirement documented
    with running(make_app(warm(bundle, history))) as url:
        _, open_doc = get(url, "/openapi.json")
    validate_spec(open_doc)
    assert "security" not in open_doc["paths"]["/score"]["post"]
    assert "securitySchemes" not in open_doc["components"]


def test_every_documented_field_is_accepted_with_every_documented_type(bundle, history) -> None:
    """For each property of ScoreRequest and LabelRequest and each JSON type its schema lists,
    a request holding that value is answered 200 with a body of the documented schema."""
    scorer = warm(bundle, history, max_past_days=None)
    base = known_event(history)
    answers: list[tuple[str, Any, int, Any]] = []
    with running(make_app(scorer)) as url:
        _, doc = get(url, "/openapi.json")
        props = doc["components"]["schemas"]["ScoreRequest"]["properties"]
        for i, (name, schema) in enumerate(props.items()):
            kinds = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
            for kind in kinds:
                values = SAMPLES[kind]
                if name == "ts":
                    values = [(DAY + pd.Timedelta(hours=2, seconds=i)).isoformat()]
                if name == "tx_id":
                    values = [base["tx_id"] + 100 + i]
                for value in values:
                    event = dict(base, tx_id=base["tx_id"] + 1000 * (i + 1) + len(answers))
                    event[name] = value
                    status, answer = post(url, "/score", event)
                    answers.append((name, value, status, answer))
                    assert status == 200, (name, value, answer)
                    assert conforms(doc, "ScoreResponse", answer) == [], (name, value, answer)
        # optional fields may be left out
        for name in set(props) - set(doc["components"]["schemas"]["ScoreRequest"]["required"]):
            event = {k: v for k, v in base.items() if k != name}
            event["tx_id"] = base["tx_id"] + 2 * 10**6 + len(name)
            status, answer = post(url, "/score", event)
            answers.append((name, "(left out)", status, answer))
            assert status == 200, (name, answer)
        # the label: each documented value of each field
        scored = [a["tx_id"] for _, _, s, a in answers if s == 200]
        label_props = doc["components"]["schemas"]["LabelRequest"]["properties"]
        assert label_props["is_fraud"]["enum"] == [0, 1]
        cases = [
            {"tx_id": scored[0], "is_fraud": 1},
            {"tx_id": scored[1], "is_fraud": 0, "label_ts": None},
            {
                "tx_id": scored[2],
                "is_fraud": 1,
                "label_ts": (DAY + pd.Timedelta(hours=5)).isoformat(),
            },
        ]
        for body in cases:
            status, answer = post(url, "/label", body)
            assert status == 200, (body, answer)
            assert conforms(doc, "LabelResponse", answer) == [], answer
        status, health = get(url, "/health")
        assert conforms(doc, "Health", health) == [], health
        # errors: the documented Error object, naming the field
        status, answer = post(url, "/score", dict(base, amount="12"))
        assert status == 422 and answer["field"] == "amount"
        assert conforms(doc, "Error", answer) == []
    assert health["events"] == len(answers)  # each accepted event joined the state
    print(f"\n{len(answers)} documented field values accepted: {[a[:2] for a in answers]}")


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("/score", {"card_id": [1]}, "card_id"),
        ("/score", {"amount": -1}, "amount"),
        ("/score", {"ts": "not a time"}, "ts"),
        ("/score", {"ts": "2030-01-01T00:00:00Z"}, "ts"),  # after the service clock
        ("/score", {"tx_id": "a string"}, "tx_id"),  # the history's ids are integers
        ("/label", {"is_fraud": 2}, "is_fraud"),
        ("/label", {"label_ts": 5}, "label_ts"),
        ("/label", {"label_ts": "never"}, "label_ts"),
        ("/label", {"tx_id": 12345}, "tx_id"),  # not scored here: 404
    ],
)
def test_rejections_name_the_field(bundle, history, path, change, field) -> None:
    scorer = warm(bundle, history)
    base = known_event(history)
    with running(make_app(scorer)) as url:
        assert post(url, "/score", base)[0] == 200
        body = (
            dict(base, tx_id=base["tx_id"] + 1) | change
            if path == "/score"
            else {"tx_id": base["tx_id"], "is_fraud": 1} | change
        )
        status, answer = post(url, path, body)
    assert status in (404, 422), answer
    assert answer["field"] == field, answer
    assert field in answer["error"], answer


# -- a graceful stop ---------------------------------------------------------------------------


def _http_response(sock: socket.socket) -> tuple[int, Any]:
    """Read one HTTP/1.1 response with a Content-Length from ``sock``: (status, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (h.partition(": ") for h in lines[1:])
                  if k.lower() == "content-length")  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), json.loads(body[:length])


@pytest.mark.slow
def test_sigterm_drains_the_service_and_the_run_ends_with_status_0(world, history, tmp_path):
    """``python -m fraud_dask task=serve`` on its own LocalCluster, SIGTERM while a request is
    in flight: new connections are refused at once, the request in flight is answered, one
    final line of counts, metrics.json, exit status 0, and nothing on stderr that a user cannot
    act on (no traceback, no CommClosedError, no leaked semaphores)."""
    run_dir = tmp_path / "run"
    synthetic = OmegaConf.to_container(world.data.synthetic)
    cmd = [
        sys.executable,
        "-m",
        "fraud_dask",
        "task=serve",
        f"hydra.run.dir={run_dir}",
        f"paths.data_home={tmp_path / 'home'}",
        f"data.path={world.data.path}",
        *(f"data.synthetic.{k}={v}" for k, v in synthetic.items()),
        f"registry.path={world.registry}",
        "registry.name=fraud",
        "score.serve.port=0",
        "score.serve.body_timeout_s=120",  # the drain waits for the body we hold back
        "cluster.n_workers=1",
        "cluster.threads_per_worker=1",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_DASK_")}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "service.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        url = json.loads((run_dir / "service.json").read_text())["url"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        first = known_event(history)
        assert post(url, "/score", first)[0] == 200
        # a request in flight: its headers and part of its body sent
        body = json.dumps(known_event(history, tx_id=first["tx_id"] + 1)).encode()
        held = socket.create_connection((host, int(port)), timeout=60)
        held.sendall(
            b"POST /score HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (host.encode(), len(body)) + body[:20]
        )
        time.sleep(0.5)  # let the server read the headers (ordering, not a timed assertion)
        proc.send_signal(signal.SIGTERM)
        # draining: the listening socket is closed, new connections are refused
        refused = False
        while not refused:
            assert time.monotonic() < deadline and proc.poll() is None
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
                time.sleep(0.1)
            except ConnectionRefusedError:
                refused = True
        held.sendall(body[20:])
        status, answer = _http_response(held)
        held.close()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert status == 200 and answer["tx_id"] == first["tx_id"] + 1, answer
    assert proc.returncode == 0, err[-3000:]
    assert "fraud_dask scoring service stopped (SIGTERM): 2 events scored, 0 rejected" in out
    assert "stopped by SIGTERM" in out
    for noise in ("Traceback", "CommClosedError", "leaked semaphore", "KeyboardInterrupt"):
        assert noise not in err, err[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["stopped_by"] == "SIGTERM" and metrics["events"] == 2
