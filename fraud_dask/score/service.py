"""The HTTP scoring service (aiohttp): JSON transaction in, score, decision and reasons out.

Routes:

- ``POST /score``: body is one transaction as a JSON object (see
  :meth:`fraud_dask.score.online.OnlineScorer.score`); answers ``200`` with ``tx_id``,
  ``score``, ``decision`` (``decline`` when ``score >= threshold``, else ``approve``),
  ``threshold``, ``reasons``, ``model`` and ``latency_ms``. The body is parsed as JSON whatever
  its content type (``curl -d`` sends a form type). A body that is not JSON answers
  ``400``; a JSON value with a missing or bad field ``422``; a body over the size limit ``413``;
  every error is a JSON object ``{"error": message}``.
- ``POST /label``: body ``{"tx_id": ..., "is_fraud": 0 or 1, "label_ts": ISO time (optional)}``
  records the label of an event scored earlier (:meth:`~fraud_dask.score.online.OnlineScorer.
  label`): from ``label_ts`` on it counts in later events' risk features. ``200`` with
  ``tx_id`` and ``updated`` (entity histories changed); ``404`` for an unknown ``tx_id``;
  ``400`` / ``422`` for a bad body.
- ``GET /health``: ``200`` with ``status``, ``model``, ``events`` (scored so far), ``entities``
  (held per key) and ``uptime_s``.

Events are scored one after the other on the event loop (scoring is a few hundred microseconds
and updates shared per-entity state), so the state sees them in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

SCORER = web.AppKey("scorer", object)
STATS = web.AppKey("stats", dict)
LIMIT = web.AppKey("limit", int)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request, what: str) -> dict | web.Response:
    """The request body as a JSON object, or the 4xx response that says what is wrong."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        size = request.content_length
        return _error(413, f"request body too large: {size} bytes, limit {request.app[LIMIT]}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(value, dict):
        return _error(422, f"expected a JSON object ({what}), got {type(value).__name__}")
    return value


async def _label(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    body = await _json_object(request, "a label")
    if isinstance(body, web.Response):
        return body
    missing = [k for k in ("tx_id", "is_fraud") if k not in body]
    if missing:
        return _error(422, f"label: missing field(s) {missing}")
    try:
        updated = scorer.label(body["tx_id"], body["is_fraud"], body.get("label_ts"))  # type: ignore[attr-defined]
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(422, str(exc))
    request.app[STATS]["labels"] += 1
    return web.json_response({"tx_id": body["tx_id"], "updated": updated})


async def _score(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    stats = request.app[STATS]
    event = await _json_object(request, "one transaction")
    if isinstance(event, web.Response):
        return event
    try:
        result = scorer.score(event)  # type: ignore[attr-defined]
    except ValueError as exc:
        stats["rejected"] += 1
        return _error(422, str(exc))
    stats["events"] += 1
    result["decision"] = "decline" if result.pop("alert") else "approve"
    return web.json_response(result)


async def _health(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    stats = request.app[STATS]
    return web.json_response(
        {
            "status": "ok",
            "model": {"name": scorer.name, "version": scorer.version},  # type: ignore[attr-defined]
            "threshold": scorer.threshold,  # type: ignore[attr-defined]
            "events": stats["events"],
            "rejected": stats["rejected"],
            "labels": stats["labels"],
            "entities": scorer.entities,  # type: ignore[attr-defined]
            "uptime_s": round(time.monotonic() - stats["started"], 3),
        }
    )


def make_app(scorer: Any, *, max_body_bytes: int = 65536) -> web.Application:
    """The aiohttp application around an :class:`~fraud_dask.score.online.OnlineScorer`.

    Parameters
    ----------
    scorer : OnlineScorer
        A warm-started scorer.
    max_body_bytes : int
        Largest accepted request body (larger: ``413``).

    Returns
    -------
    aiohttp.web.Application
    """
    app = web.Application(client_max_size=int(max_body_bytes))
    app[SCORER] = scorer
    app[LIMIT] = int(max_body_bytes)
    app[STATS] = {"events": 0, "rejected": 0, "labels": 0, "started": time.monotonic()}
    app.router.add_post("/score", _score)
    app.router.add_post("/label", _label)
    app.router.add_get("/health", _health)
    return app


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    lifetime_s: float = 0.0,
    on_ready: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Serve ``app`` until cancelled, interrupted, or ``lifetime_s`` seconds have passed.

    Parameters
    ----------
    app : aiohttp.web.Application
        From :func:`make_app`.
    host, port : str, int
        Where to listen (port 0: any free port).
    lifetime_s : float
        Stop after this long (0: run until cancelled).
    on_ready : callable, optional
        Called with the base URL (``http://host:port``) once the socket listens.

    Returns
    -------
    dict
        ``url``, ``events`` and ``rejected`` counts when the service stopped.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    url = f"http://{host}:{bound}"
    log.info("scoring service listening on %s (POST /score, POST /label, GET /health)", url)
    if on_ready is not None:
        on_ready(url)
    try:
        if lifetime_s and lifetime_s > 0:
            await asyncio.sleep(lifetime_s)
        else:
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    stats = app[STATS]
    return {"url": url, "events": stats["events"], "rejected": stats["rejected"]}
