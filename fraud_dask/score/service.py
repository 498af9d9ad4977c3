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
- ``GET /openapi.json``: the OpenAPI 3.1 document of this service, built by
  :func:`fraud_dask.score.api.openapi_document` from the same request definitions that validate
  the bodies (:mod:`fraud_dask.score.api`); a ``422`` names the field at fault in its message
  and in ``field``.

Authentication: when the app has a ``token``, ``POST /score`` and ``POST /label`` need the
header ``Authorization: Bearer <token>`` (else ``401``); a separate ``label_token`` guards
``/label`` alone. ``GET /health`` is open. :func:`tokens_from_env` reads them from environment
variables and refuses a service bound beyond loopback without one.

Every request body is read within ``body_timeout_s`` (a stalled body: ``408``). Each rejected
request logs one line (method, path, status, peer, reason; card numbers redacted) and no
traceback; a bug in a handler answers ``500`` with one ERROR line naming where it happened.

Events are scored one after the other on the event loop (scoring is a few hundred microseconds
and updates shared per-entity state), so the state sees them in arrival order.

Stopping (:func:`serve`): SIGTERM or SIGINT drains the service: it stops accepting connections,
lets the requests in flight finish (at most ``body_timeout_s`` + 5 s), prints one final line of
counts and returns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from fraud_dask.score.api import FieldError, label_request, openapi_document, score_request
from fraud_dask.score.online import redact

log = logging.getLogger(__name__)

SCORER = web.AppKey("scorer", object)
STATS = web.AppKey("stats", dict)
LIMIT = web.AppKey("limit", int)
AUTH = web.AppKey("auth", dict)
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)
SCORE_BODY = web.AppKey("score_body", object)  # api.Body of POST /score
LABEL_BODY = web.AppKey("label_body", object)  # api.Body of POST /label
OPENAPI = web.AppKey("openapi", dict)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Rejected(Exception):
    """A request answered with a 4xx status and a one-line message."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})
        self.field = field


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


def _error(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    field: str | None = None,
) -> web.Response:
    body = {"error": message} | ({"field": field} if field is not None else {})
    return web.json_response(body, status=status, headers=headers)


#: how the scorer's own messages name a field ("event: field 'ts' ...", "label: tx_id must ...")
_NAMED = re.compile(r"field '([^']+)'|^label: (\w+) must|^label: (label_ts) ")


def _invalid(exc: Exception) -> Rejected:
    """A 422 for the scorer's ValueError, with the field it names."""
    message = str(exc)
    m = _NAMED.search(message)
    field = next((g for g in m.groups() if g), None) if m else None
    return Rejected(422, message, field=field)


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
    stats = request.app[STATS]
    stats["in_flight"] += 1
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
        return _error(exc.status, redact(exc.message), exc.headers, exc.field)
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
    finally:
        stats["in_flight"] -= 1


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
    try:
        request.app[LABEL_BODY].check(body)  # type: ignore[attr-defined]
    except FieldError as exc:
        raise Rejected(422, str(exc), field=exc.field) from None
    try:
        updated = scorer.label(body["tx_id"], int(body["is_fraud"]), body.get("label_ts"))  # type: ignore[attr-defined]
    except KeyError as exc:
        raise Rejected(404, str(exc.args[0]), field="tx_id") from None
    except (ValueError, OverflowError) as exc:  # an integer too large for any id or time
        raise _invalid(exc) from None
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
        request.app[SCORE_BODY].check(event)  # type: ignore[attr-defined]  # definitions
        result = scorer.score(event)  # type: ignore[attr-defined]
    except FieldError as exc:  # a field's presence, JSON type or range (the definitions)
        stats["rejected"] += 1
        raise Rejected(422, str(exc), field=exc.field) from None
    except (ValueError, OverflowError) as exc:  # checked before any state changes
        stats["rejected"] += 1
        raise _invalid(exc) from None
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


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


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
    guarded = {k: v for k, v in (("/score", token), ("/label", label)) if v}
    app[AUTH] = guarded
    app[STATS] = {
        "events": 0,
        "rejected": 0,
        "labels": 0,
        "in_flight": 0,
        "started": time.monotonic(),
    }
    # the request definitions: they validate the bodies and make the OpenAPI document
    body, label_body = score_request(scorer), label_request(scorer)
    app[SCORE_BODY], app[LABEL_BODY] = body, label_body
    app[OPENAPI] = openapi_document(
        body,
        label_body,
        guarded=guarded,
        model={"name": scorer.name, "version": scorer.version},
        max_body_bytes=int(max_body_bytes),
        body_timeout_s=float(body_timeout_s),
    )
    app.router.add_post("/score", _score)
    app.router.add_post("/label", _label)
    app.router.add_get("/health", _health)
    app.router.add_get("/openapi.json", _openapi)
    return app


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    lifetime_s: float = 0.0,
    on_ready: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Serve ``app`` until SIGTERM or SIGINT, cancellation, or ``lifetime_s`` seconds.

    A stop drains the service: the listening socket closes at once (new connections are
    refused), the requests in flight finish and are answered (at most ``body_timeout_s`` + 5 s,
    then they are cancelled), one line of counts is printed, and the counts are returned.
    Signal handlers are installed only when called in the main thread, for the time of the
    call (the handlers found are put back afterwards); a signal is recorded with
    :func:`fraud_dask.console.request_stop`, so that the run's summary names it.

    Parameters
    ----------
    app : aiohttp.web.Application
        From :func:`make_app`.
    host, port : str, int
        Where to listen (port 0: any free port).
    lifetime_s : float
        Stop after this long (0: run until stopped).
    on_ready : callable, optional
        Called with the base URL (``http://host:port``) once the socket listens.

    Returns
    -------
    dict
        ``url``, ``events``, ``rejected`` and ``labels`` counts, ``uptime_s``, ``drain_s`` and
        ``stopped_by`` (``SIGTERM``, ``SIGINT``, ``lifetime`` or ``cancelled``).
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    url = f"http://{host}:{bound}"
    log.info(
        "scoring service listening on %s (POST /score, POST /label, GET /health, "
        "GET /openapi.json)",
        url,
    )
    missing = [path for path in ("/score", "/label") if path not in app[AUTH]]
    if missing:
        log.warning(
            "no bearer token for %s: any local process may call them", " and ".join(missing)
        )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    why = ["lifetime" if lifetime_s and lifetime_s > 0 else "cancelled"]

    def stop_by(signum: int) -> None:
        if stop.is_set():  # a second signal while draining: the drain has a bound anyway
            log.warning("%s: already draining", signal.Signals(signum).name)
            return
        why[0] = signal.Signals(signum).name
        stop.set()
        from fraud_dask.console import request_stop

        request_stop(signum)  # the run's summary says which signal stopped it

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, stop_by, sig)
    if on_ready is not None:
        on_ready(url)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(lifetime_s if lifetime_s and lifetime_s > 0 else None):
                await stop.wait()
    finally:
        stats = app[STATS]
        drain_started = time.monotonic()
        if stop.is_set():
            log.info(
                "%s: draining: new connections refused, %d request(s) in flight",
                why[0],
                stats["in_flight"],
            )
        try:
            await site.stop()  # no new connections
            # the requests in flight finish first: aiohttp's own shutdown drops the body bytes
            # that arrive once it has marked a connection closing
            bound_s = float(app[BODY_TIMEOUT]) + 5.0
            while stats["in_flight"] and time.monotonic() - drain_started < bound_s:
                await asyncio.sleep(0.02)
            await runner.cleanup()
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)  # asyncio leaves SIG_DFL: put the caller's back
    out = {
        "url": url,
        "events": stats["events"],
        "rejected": stats["rejected"],
        "labels": stats["labels"],
        "uptime_s": round(time.monotonic() - stats["started"], 3),
        "drain_s": round(time.monotonic() - drain_started, 3),
        "stopped_by": why[0],
    }
    line = (
        f"fraud_dask scoring service stopped ({out['stopped_by']}): {out['events']} events "
        f"scored, {out['rejected']} rejected, {out['labels']} labels, up {out['uptime_s']:.1f} s, "
        f"drained in {out['drain_s']:.2f} s"
    )
    print(line, flush=True)  # the final line (metrics.json holds the same counts)
    return out
