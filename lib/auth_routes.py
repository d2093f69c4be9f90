"""The two HTTP routes that set and clear the session cookie, so that it is HttpOnly (no page script can read
it), SameSite=Strict, and Secure when the desk is served over TLS.

* ``GET /auth/session?code=…&next=/ticket?id=5`` exchanges the one-time code the login form just issued
  (lib.sessions.claim) for the cookie and goes on to ``next`` (a path of this site only);
* ``GET /auth/logout`` ends the cookie's session in the database, clears the cookie and goes to the login form.

Served by ``server.py`` beside the Streamlit app (plain Starlette routes, database work in a worker thread).
"""

from __future__ import annotations

import logging
import unicodedata
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from lib import sessions
from lib.config import get_secret, get_settings
from lib.db import get_engine, transaction

log = logging.getLogger(__name__)


def cookie_key() -> str:
    key = get_secret("cookie_key", generate=True) or ""
    if len(key.encode()) < 32:
        raise RuntimeError("the cookie key must be at least 32 bytes: set HELPDESK_COOKIE_KEY or [helpdesk] cookie_key")
    return key


def safe_next(value: str | None) -> str:
    """A path on this site to go on to after signing in; anything else (another site, a scheme, a control
    character) becomes ``/``."""
    path = value or ""
    if (not path.startswith("/") or path.startswith(("//", "/\\"))
            or any(unicodedata.category(ch) == "Cc" for ch in path) or len(path) > 2000):
        return "/"
    return quote(path, safe="/?=&%#:+,;@-._~")


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    public = get_settings().public_url or ""
    return request.url.scheme == "https" or forwarded == "https" or public.startswith("https://")


def _claim(code: str) -> str | None:
    with transaction(get_engine()) as s:
        return sessions.claim(s, code=code)


def _revoke(token: str) -> None:
    with transaction(get_engine()) as s:
        sessions.revoke(s, token=token, reason="logout")


async def begin_session(request: Request) -> Response:
    nxt = safe_next(request.query_params.get("next"))
    token = await anyio.to_thread.run_sync(_claim, request.query_params.get("code") or "")
    response = RedirectResponse(nxt, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    if token is None:
        log.info("sign-in hand-over refused (used, late or unknown code)")
        return response
    settings = get_settings()
    response.set_cookie(settings.cookie_name, sessions.sign(token, cookie_key()),
                        max_age=settings.session_lifetime_hours * 3600, path="/", httponly=True,
                        samesite="strict", secure=_secure(request))
    return response


async def end_session(request: Request) -> Response:
    settings = get_settings()
    token = sessions.unsign(request.cookies.get(settings.cookie_name), cookie_key())
    if token:
        await anyio.to_thread.run_sync(_revoke, token)
    response = RedirectResponse("/", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(settings.cookie_name, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))
    return response


routes: list[Route] = [
    Route("/auth/session", begin_session, methods=["GET"], name="auth_session"),
    Route("/auth/logout", end_session, methods=["GET", "POST"], name="auth_logout"),
]
