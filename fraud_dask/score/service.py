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

Authentication: when the app has a ``token``, ``POST /score`` and ``POST /label`` need the
header ``Authorization: Bearer <token>`` (else ``401``); a separate ``label_token`` guards
``/label`` alone. ``GET /health`` is open. :func:`tokens_from_env` reads them from environment
variables and refuses a service bound beyond loopback without one.

Every request body is read within ``body_timeout_s`` (a stalled body: ``408``). Each rejected
request logs one line (method, path, status, peer, reason; card numbers redacted) and no
traceback; a bug in a handler answers ``500`` with one ERROR line naming where it happened.

Events are scored one after the other on the event loop (scoring is a few hundred microseconds
and updates shared per-entity state), so the state sees them in arrival order.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from fraud_dask.score.online import redact

log = logging.getLogger(__name__)

SCORER = web.AppKey("scorer", object)
STATS = web.AppKey("stats", dict)
LIMIT = web.AppKey("limit", int)
AUTH = web.AppKey("auth", dict)
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Rejected(Exception):
    """A request answered with a 4xx status and a one-line message."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def tokens_from_env(
    host: str,
    token_env: str,
    label_token_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """The bearer tokens of ``/score`` and ``/label`` from environment variables.

    Parameters
    ----------
    host : str
        The bind address: beyond loopback a token is required.
    token_env : str
        Variable holding the token of ``/score`` (and of ``/label`` when it has none of its
        own).
    label_token_env : str, optional
        Variable holding a token for ``/label`` alone.
    environ : mapping, optional
        Default: ``os.environ``.

    Returns
    -------
    (str or None, str or None)
        The ``/score`` token and the ``/label`` token (None: not set).

    Raises
    ------
    UserError
        ``host`` is not a loopback address and no token is set.
    """
    from fraud_dask.errors import UserError

    env = os.environ if environ is None else environ
    token = env.get(token_env) or None
    label = (env.get(label_token_env) or None) if label_token_env else None
    if token is None and not is_loopback(host):
        raise UserError(
            f"score.serve.host={host} is not a loopback address: set a bearer token in "
            f"${token_env} (clients send 'Authorization: Bearer <token>'), or bind 127.0.0.1"
        )
    return token, label


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _reject(request: web.Request, status: int, message: str) -> None:
    """One log line for a rejected request (never the body, card numbers redacted)."""
    log.warning(
        "%s %s -> %d from %s: %s",
        request.method,
        request.path,
        status,
        request.remote,
        redact(message)[:500],
    )


@web.middleware
async def _guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Authentication, then the handler; 4xx and bugs answered as JSON with one log line."""
    auth = request.app[AUTH]
    want = auth.get(request.path) if request.method == "POST" else None
    try:
        if want is not None:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8", "surrogateescape"), want.encode("utf-8")
            ):
                raise Rejected(
                    401,
                    "missing or wrong bearer token (header 'Authorization: Bearer <token>')",
                    {"WWW-Authenticate": 'Bearer realm="fraud_dask"'},
                )
        return await handler(request)
    except Rejected as exc:
        _reject(request, exc.status, exc.message)
        return _error(exc.status, redact(exc.message), exc.headers)
    except web.HTTPException as exc:  # routing: 404, 405
        if exc.status >= 400:
            _reject(request, exc.status, exc.reason)
        raise
    except ConnectionError as exc:  # the client went away mid-request
        _reject(request, 499, f"connection lost ({exc.__class__.__name__})")
        return _error(499, "connection lost")
    except Exception as exc:  # a bug: one line with where it happened, and a 500
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "%s %s -> 500 from %s: %s: %s (%s:%d)",
            request.method,
            request.path,
            request.remote,
            exc.__class__.__name__,
            redact(str(exc))[:300],
            os.path.basename(frame.filename),
            frame.lineno,
        )
        return _error(500, f"internal error ({exc.__class__.__name__})")


async def _json_object(request: web.Request, what: str) -> dict[str, Any]:
    """The request body as a JSON object; :class:`Rejected` says what is wrong."""
    limit = request.app[BODY_TIMEOUT]
    try:
        async with asyncio.timeout(limit):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        size = request.content_length
        raise Rejected(
            413, f"request body too large: {size} bytes, limit {request.app[LIMIT]}"
        ) from None
    except TimeoutError:
        raise Rejected(408, f"request body not received within {limit:g} s") from None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Rejected(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Rejected(422, f"expected a JSON object ({what}), got {type(value).__name__}")
    return value


async def _label(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    body = await _json_object(request, "a label")
    missing = [k for k in ("tx_id", "is_fraud") if k not in body]
    if missing:
        raise Rejected(422, f"label: missing field(s) {missing}")
    try:
        updated = scorer.label(body["tx_id"], body["is_fraud"], body.get("label_ts"))  # type: ignore[attr-defined]
    except KeyError as exc:
        raise Rejected(404, str(exc.args[0])) from None
    except (ValueError, OverflowError) as exc:  # an integer too large for any id or time
        raise Rejected(422, str(exc)) from None
    request.app[STATS]["labels"] += 1
    return web.json_response({"tx_id": redact_id(body["tx_id"]), "updated": updated})


def redact_id(value: Any) -> Any:
    """An id echoed back: a string with card numbers redacted, other values as given."""
    return redact(value) if isinstance(value, str) else value


async def _score(request: web.Request) -> web.Response:
    scorer = request.app[SCORER]
    stats = request.app[STATS]
    event = await _json_object(request, "one transaction")
    try:
        result = scorer.score(event)  # type: ignore[attr-defined]
    except (ValueError, OverflowError) as exc:  # checked before any state changes
        stats["rejected"] += 1
        raise Rejected(422, str(exc)) from None
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


def make_app(
    scorer: Any,
    *,
    max_body_bytes: int = 65536,
    token: str | None = None,
    label_token: str | None = None,
    body_timeout_s: float = 10.0,
) -> web.Application:
    """The aiohttp application around an :class:`~fraud_dask.score.online.OnlineScorer`.

    Parameters
    ----------
    scorer : OnlineScorer
        A warm-started scorer.
    max_body_bytes : int
        Largest accepted request body (larger: ``413``).
    token : str, optional
        Bearer token required by ``POST /score`` and ``POST /label`` (None: none required).
    label_token : str, optional
        Bearer token required by ``POST /label`` instead of ``token``.
    body_timeout_s : float
        Time allowed to receive a request body (longer: ``408``).

    Returns
    -------
    aiohttp.web.Application
    """
    app = web.Application(client_max_size=int(max_body_bytes), middlewares=[_guard])
    app[SCORER] = scorer
    app[LIMIT] = int(max_body_bytes)
    app[BODY_TIMEOUT] = float(body_timeout_s)
    label = label_token or token
    app[AUTH] = {k: v for k, v in (("/score", token), ("/label", label)) if v}
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
    missing = [path for path in ("/score", "/label") if path not in app[AUTH]]
    if missing:
        log.warning(
            "no bearer token for %s: any local process may call them", " and ".join(missing)
        )
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
