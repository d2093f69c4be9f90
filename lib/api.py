"""HTTP routes of the app server: the monitoring alert webhook and a health check.

``server.py`` adds ``routes`` to ``st.App(..., routes=routes)``; they are plain Starlette routes, so
tests serve them with any ASGI server. Endpoints (docs/alerts.md):

* ``POST /api/alerts/alertmanager`` — Prometheus Alertmanager webhook (version 4);
* ``POST /api/alerts/grafana`` — Grafana alerting webhook;
* ``POST /api/alerts`` — either, recognised from the body;
* ``GET /api/health`` — ``{"status": "ok"}`` when the database answers.

The alert endpoints need ``Authorization: Bearer <alert_token>`` (``HELPDESK_ALERT_TOKEN`` or
``alert_token`` under ``[helpdesk]`` in ``.streamlit/secrets.toml``); with no token configured they
answer 503 and write nothing. Parsing and database work run in worker threads (their own small
limiter, so an alert storm cannot take the threads Streamlit serves files with), never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lib import clock
from lib.alerts.intake import AlertIngestError, AlertResult, AlertSettings, ingest_alerts, load_alert_settings
from lib.alerts.parse import MAX_BODY_BYTES, AlertPayloadError, parse_alert_payload
from lib.config import get_secret
from lib.db import get_engine as shared_engine
from lib.db import run_transaction
from lib.errors import HelpdeskError

log = logging.getLogger(__name__)

#: Threads doing alert database work at once (per event loop). SQLite writes one at a time anyway.
DB_THREADS = 4
#: Alerts recorded per transaction (lib.db.run_transaction retries a batch on a deadlock or a busy database).
ALERT_BATCH = 50
#: A post's body must arrive within this many seconds (408 otherwise): no half-open connection is held.
BODY_SECONDS = 15.0
#: Alert posts received at once (per event loop); more are answered 503 at once, so a flood of slow senders
#: cannot take every connection and thread of the app server.
MAX_IN_FLIGHT = 64
_SOURCES = {"alertmanager": "Alertmanager", "grafana": "Grafana"}

T = TypeVar("T")


class _Unset:
    pass


_UNSET: Any = _Unset()


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engine: Engine | None = None
        self.token: Any = _UNSET
        self.alert_settings: AlertSettings | None = None


_state = _State()
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()
_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def configure(engine: Engine | None = None, *, token: str | None | _Unset = _UNSET,
              alert_settings: AlertSettings | None = None) -> None:
    """Use this (migrated) engine, token and alert settings instead of the defaults read from config.

    ``token=None`` means "no token configured" (the webhook answers 503). Call ``reset()`` to go back.
    """
    with _state.lock:
        if engine is not None:
            _state.engine = engine
        if not isinstance(token, _Unset):
            _state.token = token
        if alert_settings is not None:
            _state.alert_settings = alert_settings


def reset() -> None:
    """Forget overrides; the next request builds the default engine from config again."""
    with _state.lock:
        _state.engine = None
        _state.token = _UNSET
        _state.alert_settings = None


def get_engine() -> Engine:
    """The engine given to :func:`configure`, else the process's one engine (lib.db.get_engine)."""
    with _state.lock:
        if _state.engine is None:  # the process's one engine, shared with the pages and the worker
            return shared_engine()
        return _state.engine


def _expected_token() -> str | None:
    token = _state.token
    if isinstance(token, _Unset):
        token = get_secret("alert_token")
    return token or None


def _alert_settings() -> AlertSettings:
    return _state.alert_settings or load_alert_settings()


# --- helpers -----------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(DB_THREADS)
    return limiter


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=_limiter())


def _authorised(request: Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8"), token.encode("utf-8"))


class _TooLarge(Exception):
    pass


class _Misconfigured(Exception):
    pass


class _TooSlow(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, within ``limit`` bytes and BODY_SECONDS: a sender that stops half-way (a half-open
    connection, a slow drip) is answered 408 and its connection let go, instead of being held for ever."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _TooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise _TooSlow from None
    return b"".join(chunks)


def _ingest_body(body: bytes, expected: str | None) -> AlertResult:
    """Parse, then record in batches of ALERT_BATCH alerts, each its own transaction. Runs in a worker thread."""
    try:
        config = _alert_settings()
    except ValueError as exc:  # a bad alert_* setting
        raise _Misconfigured(str(exc)) from exc
    alerts = parse_alert_payload(body, mapping=config.mapping())
    if not alerts:
        return AlertResult()
    source = alerts[0].source
    if expected is not None and source != expected:
        raise AlertPayloadError(
            f"this endpoint takes {_SOURCES[expected]} webhooks, but the body is a {_SOURCES[source]} one: "
            f"post it to /api/alerts/{source} or /api/alerts"
        )
    # Short transactions: a big post (thousands of alerts) is recorded ALERT_BATCH alerts at a time, so no write
    # lock is held for long and a technician's save between two batches goes through. Alerts are idempotent by
    # fingerprint, so a post cut short by an error is recorded in full when the sender sends it again.
    engine = get_engine()
    now = clock.now()
    result = AlertResult()
    for start in range(0, len(alerts), ALERT_BATCH):
        batch = alerts[start:start + ALERT_BATCH]
        result.add(run_transaction(engine, functools.partial(_ingest_batch, batch, source, config, now),
                                   what="alert post"))
    return result


def _ingest_batch(batch: list, source: str, config: AlertSettings, now: datetime, session: Session) -> AlertResult:
    return ingest_alerts(session, batch, source=source, config=config, now=now)


# --- endpoints ---------------------------------------------------------------------------------


async def _receive(request: Request, expected: str | None) -> Response:
    token = _expected_token()
    if not token:
        return _error(503, "alert webhook disabled: set alert_token (HELPDESK_ALERT_TOKEN, "
                           "or alert_token under [helpdesk] in .streamlit/secrets.toml)")
    if not _authorised(request, token):
        given = "authorization" in request.headers
        return _error(401, "wrong bearer token" if given else "missing bearer token: send 'Authorization: Bearer <token>'",
                      headers={"WWW-Authenticate": 'Bearer realm="helpdesk alerts"'})
    if _in_flight.get(asyncio.get_running_loop(), 0) >= MAX_IN_FLIGHT:
        return _error(503, f"busy: {MAX_IN_FLIGHT} alert posts are being received; send it again",
                      headers={"Retry-After": "5"})
    loop = asyncio.get_running_loop()
    _in_flight[loop] = _in_flight.get(loop, 0) + 1
    try:
        return await _receive_counted(request, expected)
    finally:
        _in_flight[loop] -= 1


async def _receive_counted(request: Request, expected: str | None) -> Response:
    try:
        body = await _read_body(request, MAX_BODY_BYTES)
    except _TooLarge:
        return _error(413, f"body is too large: over {MAX_BODY_BYTES} bytes")
    except _TooSlow:
        return _error(408, f"the body did not arrive within {BODY_SECONDS:g} s", headers={"Connection": "close"})
    except ClientDisconnect:
        return Response(status_code=400)
    started = time.perf_counter()
    try:
        result = await _in_thread(_ingest_body, body, expected)
    except AlertPayloadError as exc:
        log.info("alert post refused: %s", exc)
        return _error(400, str(exc))
    except _Misconfigured as exc:
        log.error("alert settings are invalid: %s", exc)
        return _error(503, f"alert webhook misconfigured: {exc}")
    except AlertIngestError as exc:  # our side (no active category, a ticket changing under us): retry later
        log.error("alert post not recorded: %s", exc)
        return _error(503, f"{exc}; nothing was recorded, send it again")
    except HelpdeskError as exc:
        log.warning("alert post not recorded: %s", exc)
        return _error(422, str(exc))
    except SQLAlchemyError:
        log.exception("alert post not recorded: database error")
        return _error(503, "database unavailable; nothing was recorded, send it again")
    log.info("alert post: %d created, %d updated (%s) in %.0f ms", result.created, result.updated,
             ", ".join(result.tickets) or "no tickets", (time.perf_counter() - started) * 1000)
    return JSONResponse(result.as_json())


async def receive_alerts(request: Request) -> Response:
    """Alertmanager or Grafana, recognised from the body."""
    return await _receive(request, None)


async def receive_alertmanager(request: Request) -> Response:
    return await _receive(request, "alertmanager")


async def receive_grafana(request: Request) -> Response:
    return await _receive(request, "grafana")


def _ping() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


async def health(request: Request) -> Response:
    try:
        await _in_thread(_ping)
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        log.exception("health check: database unavailable")
        return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


routes: list[Route] = [
    Route("/api/alerts", receive_alerts, methods=["POST"], name="alerts"),
    Route("/api/alerts/alertmanager", receive_alertmanager, methods=["POST"], name="alerts_alertmanager"),
    Route("/api/alerts/grafana", receive_grafana, methods=["POST"], name="alerts_grafana"),
    Route("/api/health", health, methods=["GET"], name="health"),
]
